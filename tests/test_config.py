"""Settings come from the environment, in one place, with clear errors for unusable values."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from catdog.config import LAB_MARKER, PETIMAGES_URL, ConfigError, load_settings


def test_defaults_need_no_environment(tmp_path):
    settings = load_settings({"HOME": "/home/learner"}, cwd=tmp_path)
    assert settings.data_source == PETIMAGES_URL == settings.eval_source
    assert settings.data_dir == tmp_path / "data" and settings.models_dir == tmp_path / "models"
    assert settings.metrics_url == "http://127.0.0.1:8000/metrics"
    assert settings.weights_source is None
    assert settings.max_image_bytes == 10 * 1024 * 1024
    assert settings.kafka.images_topic == "images"
    assert settings.kafka.predictions_topic == "predictions"
    assert settings.kafka.dlq_topic == "images-dlq"
    assert settings.kafka.security_protocol == "PLAINTEXT"


def test_environment_overrides_each_setting(tmp_path):
    ca, cert, key = tmp_path / "ca.crt", tmp_path / "user.crt", tmp_path / "user.key"
    for path in (ca, cert, key):
        path.write_text("pem")
    settings = load_settings(
        {
            "CATDOG_DATA_SOURCE": "/photos",
            "CATDOG_DATA_DIR": str(tmp_path / "d"),
            "CATDOG_WEIGHTS_DIR": "/w",
            "CATDOG_MAX_IMAGE_BYTES": "2048",
            "CATDOG_MAX_IMAGE_PIXELS": "99",
            "KAFKA_BOOTSTRAP_SERVERS": "lab-kafka-bootstrap:9092",
            "KAFKA_SECURITY_PROTOCOL": "ssl",
            "KAFKA_SSL_CAFILE": str(ca),
            "KAFKA_SSL_CERTFILE": str(cert),
            "KAFKA_SSL_KEYFILE": str(key),
            "CATDOG_IMAGES_TOPIC": "pets",
            "CATDOG_GROUP_ID": "g1",
            "CATDOG_FETCH_WAIT_MS": "500",
        }
    )
    assert settings.data_source == "/photos" and settings.data_dir == tmp_path / "d"
    assert settings.weights_source == "/w"
    assert (settings.max_image_bytes, settings.max_image_pixels) == (2048, 99)
    # One size limit for the whole pipeline: Kafka's message limit follows the image limit.
    assert settings.kafka.max_image_bytes == 2048 and settings.kafka.max_message_bytes > 2048
    assert settings.kafka.max_image_pixels == 99
    assert settings.kafka.bootstrap_servers == "lab-kafka-bootstrap:9092"
    assert settings.kafka.security_protocol == "SSL" and settings.kafka.ssl_cafile == ca
    assert (settings.kafka.ssl_certfile, settings.kafka.ssl_keyfile) == (cert, key)
    from catdog.kafka.clients import client_config

    assert client_config(settings.kafka)["ssl_keyfile"] == str(key)
    assert (settings.kafka.images_topic, settings.kafka.group_id) == ("pets", "g1")
    from catdog.kafka.clients import make_consumer

    # What the consumers are built with (no broker needed to build one that subscribes to nothing).
    assert (
        make_consumer(
            replace(settings.kafka, bootstrap_servers="127.0.0.1:1", security_protocol="PLAINTEXT"), api_version=(2, 8)
        ).config["fetch_max_wait_ms"]
        == 500
    )


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CATDOG_MAX_IMAGE_BYTES", "ten", "not a whole number"),
        ("CATDOG_MAX_IMAGE_PIXELS", "0", "greater than zero"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SCRAM", "PLAINTEXT, SSL, SASL_SSL"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ("KAFKA_SASL_USERNAME", "alice", "use SASL_SSL"),
        ("CATDOG_LEARNER", "x" * 65, "at most 64 characters"),
        ("KAFKA_SSL_CAFILE", "/nowhere/ca.crt", "does not exist"),
        ("CATDOG_METRICS_PORT", "70000", "a port from 0"),
        ("CATDOG_DLQ_TOPIC", "bad topic!", "not a Kafka topic name"),
        ("CATDOG_MODEL_RELOAD_SECONDS", "-1", "0 \\(off\\) or more seconds"),
        ("CATDOG_FETCH_WAIT_MS", "0", "greater than zero"),
        ("CATDOG_LEARNER_KEY", "my-password", "64 hex digits"),
        ("CATDOG_LEARNER_KEYS", "/nowhere/keys.json", "does not exist"),
    ],
)
def test_unusable_values_name_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings({name: value})
    assert name in str(caught.value)


def test_a_rooms_learner_connects_with_scram_over_tls_as_their_kafka_user(tmp_path):
    """The settings a room's notebook gets (deploy/openshift/room/learner): the client speaks SCRAM-SHA-512
    over TLS with the room's CA, and names the learner on every photo."""
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    kafka = load_settings(
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SSL_CAFILE": str(ca),
            "KAFKA_SASL_USERNAME": "learner-ada",
            "KAFKA_SASL_PASSWORD": "s3cret ",
            "CATDOG_LEARNER": "Ada Lovelace",
        }
    ).kafka
    from catdog.kafka.clients import client_config

    config = client_config(kafka)
    assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (config["sasl_plain_username"], config["sasl_plain_password"], config["ssl_cafile"]) == (
        "learner-ada",
        "s3cret",
        str(ca),
    )
    assert "s3cret" not in repr(kafka)  # settings are logged and printed: never the password
    assert kafka.learner == "Ada Lovelace"
    # Without CATDOG_LEARNER the Kafka user names the sender; a plain lab, the login name.
    assert (
        load_settings(
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "learner-bo", "KAFKA_SASL_PASSWORD": "p"}
        ).kafka.learner
        == "learner-bo"
    )
    assert load_settings({}).kafka.sasl_mechanism is None


def test_metrics_port_zero_means_any_free_port_as_on_the_command_line():
    assert load_settings({"CATDOG_METRICS_PORT": "0"}).kafka.metrics_port == 0


def test_bootstrap_servers_written_with_spaces_after_commas():
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": " kafka-0:9092, kafka-1:9092 ,kafka-2:9092, "})
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092,kafka-2:9092"


def make_lab(folder: Path) -> Path:
    (folder / LAB_MARKER).parent.mkdir(parents=True)
    (folder / LAB_MARKER).write_text("{}")
    return folder


@pytest.mark.parametrize("start", [".", "notebooks", "notebooks/deeper"])
def test_a_kernel_anywhere_in_the_lab_uses_the_labs_folders(tmp_path, start):
    """JupyterLab starts kernels in the notebook's folder: data/ and models/ must not move with it."""
    lab = make_lab(tmp_path / "lab")
    cwd = lab / start
    cwd.mkdir(parents=True, exist_ok=True)
    settings = load_settings({"CATDOG_DATA_SOURCE": "photos", "CATDOG_CACHE_DIR": ".cache"}, cwd=cwd)
    assert settings.lab_dir == lab
    assert (settings.data_dir, settings.models_dir) == (lab / "data", lab / "models")
    # Relative paths given in the environment are the lab's too; URLs stay URLs.
    assert settings.data_source == str(lab / "photos") == settings.eval_source
    assert settings.cache_dir == lab / ".cache"
    assert (
        load_settings({"CATDOG_EVAL_SOURCE": "https://mirror/pets.zip"}, cwd=cwd).eval_source
        == "https://mirror/pets.zip"
    )


def test_catdog_lab_dir_names_the_lab_folder(tmp_path):
    """The image sets it to its home; relative settings then resolve there wherever the command runs."""
    lab = tmp_path / "home"
    settings = load_settings({"CATDOG_LAB_DIR": str(lab), "CATDOG_MODELS_DIR": "work/models"}, cwd=tmp_path)
    assert settings.data_dir == lab / "data" and settings.models_dir == lab / "work" / "models"


def test_outside_a_lab_relative_paths_are_the_working_folders(tmp_path):
    settings = load_settings({"CATDOG_DATA_DIR": "mine"}, cwd=tmp_path)
    assert settings.lab_dir == tmp_path and settings.data_dir == tmp_path / "mine"
