"""Settings, read from the environment in one place.

Nothing here runs at import time: call :func:`load_settings` when a command starts. The same variable
names are used locally, in CI and on OpenShift (where they come from a ConfigMap).
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catdog import CatdogError

# Microsoft's public copy of the Kaggle "Dogs vs. Cats" photos (PetImages/Cat, PetImages/Dog; ~786 MB).
# Microsoft publishes no hash for it, so none is checked unless CATDOG_DATA_SHA256 gives one.
PETIMAGES_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
)
# Keras' own download location for MobileNet's ImageNet weights; a mirror can stand in for it.
MOBILENET_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
MOBILENET_V2_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
MIB = 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES = 10 * MIB
# 40 megapixels is more than any phone camera; an RGB decode of it takes ~120 MB.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
# The embedded broker's address (`catdog broker start`); on OpenShift a ConfigMap sets the real one.
DEFAULT_BROKER_PORT = 9092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_BROKER_PORT}"
# The file that marks a lab folder (the repository, or the image's home): relative paths resolve there,
# so a kernel that JupyterLab starts in notebooks/ finds the same data/ and models/ as the CLI.
LAB_MARKER = Path("notebooks") / "01-cat-dog-lab.ipynb"
# PLAINTEXT: the embedded broker; SSL: TLS, optionally with a KafkaUser certificate; SASL_SSL: a room's
# Kafka, TLS and a SCRAM user (SASL_PLAINTEXT only for a broker on loopback).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
MAX_LEARNER_CHARS = 64
# `catdog wall`: its port locally (JupyterLab 8888, the classifier's metrics 8000), and the shortest room
# code it accepts (the code is all that stands between a public Route and an anonymous upload service).
DEFAULT_WALL_PORT = 8001
MIN_ROOM_CODE_CHARS = 8
MIN_MODERATOR_KEY_CHARS = 16
MIN_WALL_SECRET_CHARS = 32  # what signs the phones' cookies: 256 bits of `catdog room`'s randomness


class ConfigError(CatdogError, ValueError):
    """A setting in the environment has a value that cannot be used."""


def make_room_code() -> str:
    """A room code, for when none is given: ten characters nobody misreads on a projector (no 0/O, 1/l/I),
    about 50 bits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


WALL_SECRET_BYTES = 32  # signs the phones' cookies (CATDOG_WALL_SECRET)
MODERATOR_KEY_BYTES = 18  # the instructor's key to the wall's moderator page (24 characters)


def new_wall_secret() -> str:
    """The wall's secret, for a room (``catdog room``) or a laptop's wall that was given none."""
    return secrets.token_hex(WALL_SECRET_BYTES)


def new_moderator_key() -> str:
    """The instructor's key to the moderator's page: made here only, for a room or a laptop's wall."""
    return secrets.token_urlsafe(MODERATOR_KEY_BYTES)


@dataclass(frozen=True)
class Settings:
    lab_dir: Path  # every relative path below was resolved against it
    data_source: str
    data_sha256: str | None
    data_dir: Path
    models_dir: Path
    weights_source: str | None  # a local folder or a base URL holding Keras' MobileNet .h5 files
    cache_dir: Path
    max_image_bytes: int
    max_image_pixels: int
    kafka: KafkaSettings
    eval_source: str  # photos for notebook 02's evaluation (default: the data source)
    metrics_url: str  # the classifier service's Prometheus metrics, for the notebooks
    model_reload_seconds: int = 10  # how often the service looks for a new model file; 0: never
    # The folder the classifier service serves, where this machine sees it (`make lab` sets it); None where
    # the classifier runs elsewhere (a cluster): a model promoted here is then not the one it serves.
    classifier_models_dir: Path | None = None
    wall: WallSettings | None = None
    s3: S3Settings = field(default_factory=lambda: S3Settings())

    @property
    def classifier_serves_models_dir(self) -> bool:
        """Whether the classifier service serves this lab's models folder (`make lab`): a model promoted
        here is then served within its reload period."""
        return (
            self.classifier_models_dir is not None and self.classifier_models_dir.resolve() == self.models_dir.resolve()
        )


@dataclass(frozen=True)
class S3Settings:
    """Object storage for `--source s3://bucket/prefix`: an OpenShift AI data connection's variables
    (AWS_S3_ENDPOINT, AWS_S3_BUCKET, AWS_DEFAULT_REGION, the key pair), else an ObjectBucketClaim's
    (BUCKET_HOST, BUCKET_PORT, BUCKET_NAME, BUCKET_REGION, the same key pair)."""

    endpoint: str | None = None  # None: AWS itself
    bucket: str | None = None  # used when the source names none (s3:///prefix)
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class WallSettings:
    """`catdog wall`: where it listens, the room code uploads need, and how much one client may send."""

    host: str
    port: int
    room_code: str | None = field(default=None, repr=False)  # None: `catdog wall` makes one and prints it
    url: str | None = None  # the wall's public address, for links and the QR code (default: as requested)
    cards: int = 8  # cards on the projector at once (the page never holds more)
    uploads_per_minute: int = 10  # per phone (a joined browser)
    uploads_per_address_per_minute: int = 120  # per client address: a room's phones may share one NAT
    # Proxies in front that each add one X-Forwarded-For entry (OpenShift's router: 1). The client is the
    # entry the nearest of them added, counted from the right; 0: the peer's own address, no header read.
    forwarded_hops: int = 0
    # Signs the phones' cookies (with the room code): a Secret `catdog room` generates, never the code itself.
    # None: a fresh one per process (a restarted wall asks phones to join again).
    secret: str | None = field(default=None, repr=False)
    uploads_in_flight: int = 2  # photos read and checked at once (the flood test's best); more wait, then 503
    streams: int = 400  # event streams open at once (projectors and phones); more get 503
    streams_per_phone: int = 4  # per joined browser
    # The instructor's key to the moderator page (a Secret `catdog room` generates; never the room's code).
    # None: a fresh one per process, printed by `catdog wall`.
    moderator_key: str | None = field(default=None, repr=False)
    # The room's challenge: the answers only the wall holds (`catdog challenge make`; on OpenShift an
    # optional Secret). None, or no file there: no challenge, no leaderboard, no submissions read.
    challenge_answers: Path | None = None


@dataclass(frozen=True)
class KafkaSettings:
    """Where the Kafka cluster is and how the pipeline uses it (same names locally and on OpenShift)."""

    bootstrap_servers: str
    security_protocol: str
    ssl_cafile: Path | None
    # A client certificate (a Strimzi KafkaUser's user.crt / user.key) for listeners that require one.
    ssl_certfile: Path | None
    ssl_keyfile: Path | None
    images_topic: str
    predictions_topic: str
    dlq_topic: str
    group_id: str
    # One limit for the whole pipeline: producer max_request_size and consumer fetch sizes derive from it.
    max_image_bytes: int
    max_image_pixels: int
    batch_size: int
    metrics_port: int
    broker_state_dir: Path
    # How long the broker may hold a fetch open while no data is waiting. Kafka answers a waiting fetch
    # as soon as data arrives, so its 500 ms costs nothing there (the OpenShift ConfigMap sets it). The
    # embedded broker answers only when the wait ends: there every hop waits half of it on average.
    fetch_wait_ms: int = 10
    # Kafka's own consumer defaults (KIP-735): a member may miss heartbeats for 45 s before the group
    # moves its partitions. The embedded broker completes a join only after half the session timeout, so
    # where it runs (scripts/lab-env.sh, `catdog broker start`'s exports, the tests) 6 s / 2 s are set.
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 3_000
    # The service decodes in this many threads (0: one per CPU of the container's limit, catdog.threads),
    # with at most this many bytes of full-size decodes in flight (one 40-megapixel WebP, or two PNGs).
    decode_threads: int = 0
    decode_memory_bytes: int = 640 * MIB
    # SASL (a room's Kafka: every listener authenticates; a Strimzi KafkaUser of type scram-sha-512).
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    # Who sends: a header on every photo, copied into its results, so a room sees whose photo is whose.
    learner: str = ""
    # A room's learner signs what they send with a key of their own (catdog.identity); the services that
    # name senders (the classifier, the retraining) read the room's table of keys.
    learner_key: str | None = field(default=None, repr=False)
    learner_keys: Path | None = None
    # Right/wrong verdicts from the room (the wall's buttons): compacted, keyed by the image's key.
    feedback_topic: str = "feedback"
    # The instructor's moderation of the wall (hidden photos, pause, the room's code, blocked phones):
    # compacted, one partition, read by every wall replica from the beginning. Only the wall's user may
    # read or write it.
    moderation_topic: str = "wall-moderation"
    # The room's challenge: its photos, unlabelled (every learner reads them), and the learners' verdicts
    # (they write, only the wall reads).
    challenge_topic: str = "challenge"
    submissions_topic: str = "challenge-submissions"
    # Each learner's lab reports here (heartbeats, exercise checks, a raised hand), signed: learners may write
    # it, never read it; the wall reads it for the instructor's board.
    progress_topic: str = "room-progress"

    @property
    def max_message_bytes(self) -> int:
        """Room for one image plus its key, headers and record framing."""
        return self.max_image_bytes + 64 * 1024


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _whole_number(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name}={env[name].strip()!r} must be greater than zero")
    return value


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    value = _whole_number(env, name, default)
    if value < 0:
        raise ConfigError(f"{name}={env[name].strip()!r} must be 0 (off) or more seconds")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port; 0 asks the system for a free one (as ``--metrics-port 0`` does)."""
    value = _whole_number(env, name, default)
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={env[name].strip()!r} must be a port from 0 (any free one) to 65535")
    return value


def _bootstrap(env: Mapping[str, str]) -> str:
    """host:port[,host:port…] with the spaces people put after commas taken out."""
    servers = [part.strip() for part in env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",") if part.strip()]
    return ",".join(servers) or DEFAULT_BOOTSTRAP


def _topic(env: Mapping[str, str], name: str, default: str) -> str:
    """A topic name Kafka accepts (checked here: clients refuse others with a bare ValueError)."""
    topic = env.get(name, "").strip() or default
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
        raise ConfigError(f"{name}={topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return topic


def _optional_path(env: Mapping[str, str], name: str, base: Path | None = None) -> Path | None:
    """The path in ``name``; a relative one is taken from ``base`` (the lab folder) when given."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def find_lab_dir(env: Mapping[str, str], cwd: Path) -> Path:
    """``$CATDOG_LAB_DIR``, else the nearest folder from ``cwd`` up that holds the lab notebooks, else ``cwd``.

    JupyterLab starts each kernel in its notebook's folder; without this, ``data`` and ``models`` would
    become ``notebooks/data`` and ``notebooks/models`` there and the lab would not find its models.
    """
    configured = _optional_path(env, "CATDOG_LAB_DIR", cwd)
    if configured is not None:
        return configured
    for folder in (cwd, *cwd.parents):
        if (folder / LAB_MARKER).is_file():
            return folder
    return cwd


def _source(env: Mapping[str, str], name: str, base: Path) -> str | None:
    """A source setting: a URL as given, a local path resolved against the lab folder."""
    raw = env.get(name, "").strip()
    if not raw or "://" in raw:
        return raw or None
    return str(_optional_path(env, name, base))


def _kafka_settings(
    env: Mapping[str, str], max_image_bytes: int, max_image_pixels: int, cache_dir: Path, lab_dir: Path
) -> KafkaSettings:
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol!r} must be one of {', '.join(SECURITY_PROTOCOLS)}")
    sasl = _sasl(env, protocol)
    files = {
        name: _optional_path(env, name, lab_dir)
        for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")
    }
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}={path} does not exist (from Strimzi: ca.crt, user.crt, user.key)")
    return KafkaSettings(
        bootstrap_servers=_bootstrap(env),
        security_protocol=protocol,
        ssl_cafile=files["KAFKA_SSL_CAFILE"],
        ssl_certfile=files["KAFKA_SSL_CERTFILE"],
        ssl_keyfile=files["KAFKA_SSL_KEYFILE"],
        images_topic=_topic(env, "CATDOG_IMAGES_TOPIC", "images"),
        predictions_topic=_topic(env, "CATDOG_PREDICTIONS_TOPIC", "predictions"),
        dlq_topic=_topic(env, "CATDOG_DLQ_TOPIC", "images-dlq"),
        feedback_topic=_topic(env, "CATDOG_FEEDBACK_TOPIC", "feedback"),
        moderation_topic=_topic(env, "CATDOG_MODERATION_TOPIC", "wall-moderation"),
        challenge_topic=_topic(env, "CATDOG_CHALLENGE_TOPIC", "challenge"),
        submissions_topic=_topic(env, "CATDOG_SUBMISSIONS_TOPIC", "challenge-submissions"),
        progress_topic=_topic(env, "CATDOG_PROGRESS_TOPIC", "room-progress"),
        group_id=env.get("CATDOG_GROUP_ID", "").strip() or "catdog-classifier",
        max_image_bytes=max_image_bytes,
        max_image_pixels=max_image_pixels,
        batch_size=_positive_int(env, "CATDOG_BATCH_SIZE", 16),
        fetch_wait_ms=_positive_int(env, "CATDOG_FETCH_WAIT_MS", 10),
        session_timeout_ms=_positive_int(env, "CATDOG_SESSION_TIMEOUT_MS", KafkaSettings.session_timeout_ms),
        heartbeat_interval_ms=_positive_int(env, "CATDOG_HEARTBEAT_INTERVAL_MS", KafkaSettings.heartbeat_interval_ms),
        decode_threads=_whole_number(env, "CATDOG_DECODE_THREADS", 0),
        decode_memory_bytes=_positive_int(env, "CATDOG_DECODE_MEMORY_MB", KafkaSettings.decode_memory_bytes // MIB)
        * MIB,
        metrics_port=_port(env, "CATDOG_METRICS_PORT", 8000),
        broker_state_dir=_optional_path(env, "CATDOG_BROKER_DIR", lab_dir) or cache_dir / "broker",
        **sasl,
        learner=_learner(env, sasl["sasl_username"]),
        learner_key=_learner_key(env),
        learner_keys=_existing_file(env, "CATDOG_LEARNER_KEYS", lab_dir),
    )


def _sasl(env: Mapping[str, str], protocol: str) -> dict:
    """SASL settings: required with a SASL_* protocol, refused without one (a typo must not go unnoticed)."""
    names = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
    given = {name: env.get(name, "").strip() for name in names}
    if not protocol.startswith("SASL_"):
        stray = [name for name, value in given.items() if value]
        if stray:
            raise ConfigError(f"{', '.join(stray)} set, but KAFKA_SECURITY_PROTOCOL={protocol}: use SASL_SSL")
        return {"sasl_mechanism": None, "sasl_username": None, "sasl_password": None}
    mechanism = given["KAFKA_SASL_MECHANISM"].upper() or "SCRAM-SHA-512"
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(f"KAFKA_SASL_MECHANISM={mechanism!r} must be one of {', '.join(SASL_MECHANISMS)}")
    missing = [name for name in names[1:] if not given[name]]
    if missing:
        raise ConfigError(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs {' and '.join(missing)} (a KafkaUser's "
            "name and the password in its Secret)"
        )
    return {
        "sasl_mechanism": mechanism,
        "sasl_username": given["KAFKA_SASL_USERNAME"],
        "sasl_password": env["KAFKA_SASL_PASSWORD"].strip(),
    }


def _learner(env: Mapping[str, str], username: str | None) -> str:
    """CATDOG_LEARNER, else the Kafka user name, else the login name: printable, at most 64 characters."""
    name = env.get("CATDOG_LEARNER", "").strip() or username or ""
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # a random UID without a passwd entry, as OpenShift runs containers
            name = ""
    if len(name) > MAX_LEARNER_CHARS or not name.isprintable():
        raise ConfigError(f"CATDOG_LEARNER={name!r} must be printable and at most {MAX_LEARNER_CHARS} characters")
    return name


def _learner_key(env: Mapping[str, str]) -> str | None:
    key = env.get("CATDOG_LEARNER_KEY", "").strip() or None
    if key is not None and not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ConfigError("CATDOG_LEARNER_KEY must be 64 hex digits (the key `catdog room` wrote for you)")
    return key


def _existing_file(env: Mapping[str, str], name: str, lab_dir: Path) -> Path | None:
    path = _optional_path(env, name, lab_dir)
    if path is not None and not path.is_file():
        raise ConfigError(f"{name}={path} does not exist")
    return path


def _s3_settings(env: Mapping[str, str]) -> S3Settings:
    value = lambda name: env.get(name, "").strip() or None  # noqa: E731 - a one-line reader, local to this function
    endpoint = value("AWS_S3_ENDPOINT")
    if endpoint is None and value("BUCKET_HOST"):  # an ObjectBucketClaim's ConfigMap
        port = value("BUCKET_PORT") or "443"
        endpoint = f"{'https' if port == '443' else 'http'}://{value('BUCKET_HOST')}:{port}"
    if endpoint is not None and not re.fullmatch(r"https?://\S+", endpoint):
        raise ConfigError(f"AWS_S3_ENDPOINT={endpoint!r} must be an http(s) address")
    return S3Settings(
        endpoint=endpoint,
        bucket=value("AWS_S3_BUCKET") or value("BUCKET_NAME"),
        region=value("AWS_DEFAULT_REGION") or value("BUCKET_REGION"),
        access_key=value("AWS_ACCESS_KEY_ID"),
        secret_key=value("AWS_SECRET_ACCESS_KEY"),
    )


def _wall_settings(env: Mapping[str, str], lab_dir: Path) -> WallSettings:
    code = env.get("CATDOG_ROOM_CODE", "").strip() or None
    if code is not None and (len(code) < MIN_ROOM_CODE_CHARS or not code.isprintable() or not code.isascii()):
        raise ConfigError(f"CATDOG_ROOM_CODE must be at least {MIN_ROOM_CODE_CHARS} printable ASCII characters")
    url = env.get("CATDOG_WALL_URL", "").strip().rstrip("/") or None
    if url is not None and not re.fullmatch(r"https?://[^\s#?]+", url):
        raise ConfigError(f"CATDOG_WALL_URL={url!r} must be an http(s) address without a query or fragment")
    return WallSettings(
        host=env.get("CATDOG_WALL_HOST", "").strip() or "127.0.0.1",
        port=_port(env, "CATDOG_WALL_PORT", DEFAULT_WALL_PORT),
        room_code=code,
        url=url,
        cards=_positive_int(env, "CATDOG_WALL_CARDS", WallSettings.cards),
        uploads_per_minute=_positive_int(env, "CATDOG_WALL_UPLOADS_PER_MINUTE", WallSettings.uploads_per_minute),
        uploads_per_address_per_minute=_positive_int(
            env, "CATDOG_WALL_UPLOADS_PER_ADDRESS_PER_MINUTE", WallSettings.uploads_per_address_per_minute
        ),
        forwarded_hops=_whole_number(env, "CATDOG_WALL_FORWARDED_HOPS", 0),
        secret=_wall_secret(env),
        uploads_in_flight=_positive_int(env, "CATDOG_WALL_UPLOADS_IN_FLIGHT", WallSettings.uploads_in_flight),
        streams=_positive_int(env, "CATDOG_WALL_STREAMS", WallSettings.streams),
        streams_per_phone=_positive_int(env, "CATDOG_WALL_STREAMS_PER_PHONE", WallSettings.streams_per_phone),
        moderator_key=_moderator_key(env, code),
        challenge_answers=_optional_path(env, "CATDOG_CHALLENGE_ANSWERS", lab_dir),
    )


def _moderator_key(env: Mapping[str, str], code: str | None) -> str | None:
    key = env.get("CATDOG_WALL_MODERATOR_KEY", "").strip() or None
    if key is not None and (len(key) < MIN_MODERATOR_KEY_CHARS or not key.isascii() or not key.isprintable()):
        raise ConfigError(
            f"CATDOG_WALL_MODERATOR_KEY must be at least {MIN_MODERATOR_KEY_CHARS} printable ASCII characters"
        )
    if key is not None and key == code:
        raise ConfigError("CATDOG_WALL_MODERATOR_KEY must not be the room's code: the code is on the projector")
    return key


def _wall_secret(env: Mapping[str, str]) -> str | None:
    secret = env.get("CATDOG_WALL_SECRET", "").strip() or None
    if secret is not None and len(secret) < MIN_WALL_SECRET_CHARS:
        raise ConfigError(f"CATDOG_WALL_SECRET must be at least {MIN_WALL_SECRET_CHARS} characters")
    return secret


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Read every catdog setting from ``env`` (default: ``os.environ``).

    Relative paths, given or default, resolve against the lab folder (:func:`find_lab_dir`), so the
    CLI in the repository and a kernel in ``notebooks/`` use the same ``data/`` and ``models/``.
    """
    env = os.environ if env is None else env
    lab_dir = find_lab_dir(env, (cwd or Path.cwd()).absolute())
    cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    max_image_bytes = _positive_int(env, "CATDOG_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES)
    max_image_pixels = _positive_int(env, "CATDOG_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)
    cache_dir = _optional_path(env, "CATDOG_CACHE_DIR", lab_dir) or cache_home / "catdog"
    kafka = _kafka_settings(env, max_image_bytes, max_image_pixels, cache_dir, lab_dir)
    data_source = _source(env, "CATDOG_DATA_SOURCE", lab_dir) or PETIMAGES_URL
    return Settings(
        lab_dir=lab_dir,
        data_source=data_source,
        data_sha256=env.get("CATDOG_DATA_SHA256", "").strip().lower() or None,
        data_dir=_optional_path(env, "CATDOG_DATA_DIR", lab_dir) or lab_dir / "data",
        models_dir=_optional_path(env, "CATDOG_MODELS_DIR", lab_dir) or lab_dir / "models",
        weights_source=_source(env, "CATDOG_WEIGHTS_DIR", lab_dir) or env.get("CATDOG_WEIGHTS_URL", "").strip() or None,
        cache_dir=cache_dir,
        max_image_bytes=max_image_bytes,
        max_image_pixels=max_image_pixels,
        kafka=kafka,
        eval_source=_source(env, "CATDOG_EVAL_SOURCE", lab_dir) or data_source,
        metrics_url=env.get("CATDOG_METRICS_URL", "").strip() or f"http://127.0.0.1:{kafka.metrics_port}/metrics",
        model_reload_seconds=_seconds(env, "CATDOG_MODEL_RELOAD_SECONDS", 10),
        classifier_models_dir=_optional_path(env, "CATDOG_CLASSIFIER_MODELS_DIR", lab_dir),
        wall=_wall_settings(env, lab_dir),
        s3=_s3_settings(env),
    )
