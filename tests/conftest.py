"""Shared fixtures: photos from ../shared (never copied into the repo), prepared data sets, trained models.

Keras reads KERAS_HOME when it is first imported, so the weights cache is pointed at a temporary folder
here, before any test module imports keras: tests never touch ~/.keras and always fetch the ImageNet
weights through Keras' own mechanism from the local weights folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from catdog.broker import free_port  # noqa: F401  (tests import the helpers they share from here)
from processes import Service, kafka_env  # noqa: F401  (kafka_env: for tests that import it from here)

os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="catdog-keras-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared").resolve()


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read photos and weights from ../shared (or $CATDOG_SHARED)")
    return path


# `make test` runs the suite on two pytest-xdist workers: much of it waits on Kafka, on containers starting
# and on pages loading. Each module stays on one worker, so its fixtures are built once; the image's tests
# and the `make lab` walk are one unit, so at most one of them loads both cores at a time. Units go out
# largest first, as xdist's loadscope does (measured: 21.5 min of pytest; the heavy unit first, 26).
# (xdist's own --dist loadgroup marks do not take under pytest 9: it renames
# node ids through an attribute pytest 9 no longer reads.) The manifests' checks (render, validate, the
# recorded cluster) ride in that unit too: light on CPU, they even out the two workers (the other carried
# ~500 s more, DEVELOPERS "CI time").
HEAVY_MODULES = {"test_image", "test_lab_browser", "test_deploy", "test_room", "test_doctor"}


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return "the-heavy-unit" if Path(module).stem in HEAVY_MODULES else module

    return ByModule(config, log)


@pytest.fixture(scope="session")
def ocp_lab() -> Path:
    return shared_path("datasets", "ocp-lab")


@pytest.fixture(scope="session")
def kaggle_dev() -> Path:
    return shared_path("datasets", "kaggle-dev")


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return shared_path("models", "imagenet")


@pytest.fixture(scope="session")
def cat_photos(kaggle_dev: Path) -> list[Path]:
    return sorted((kaggle_dev / "cat").glob("*.jpg"))


@pytest.fixture(scope="session")
def dog_photos(kaggle_dev: Path) -> list[Path]:
    return sorted((kaggle_dev / "dog").glob("*.jpg"))


@pytest.fixture(scope="session")
def lab_data(ocp_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original lab's photos, prepared as `catdog data prepare` does by default."""
    from catdog.data import prepare

    out = tmp_path_factory.mktemp("lab-data")
    prepare(str(ocp_lab), out, 50, cache_dir=out / "cache", progress=False)
    return out


@pytest.fixture(scope="session")
def kaggle_data(kaggle_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 Kaggle photos of each class: 60 to train the pretrained head, 60 it never sees (validation)."""
    from catdog.data import prepare

    out = tmp_path_factory.mktemp("kaggle-data")
    prepare(str(kaggle_dev), out, 120, validation_fraction=0.5, seed=11, cache_dir=out / "cache", progress=False)
    return out


@pytest.fixture(scope="session")
def unseen_kaggle(kaggle_data: Path, kaggle_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another 200 Kaggle photos of each class, none of them in `kaggle_data`, to score models on."""
    from catdog.data import read_manifest

    used = {row["source"] for row in read_manifest(kaggle_data)}
    out = tmp_path_factory.mktemp("unseen") / "validation"
    for label in ("cat", "dog"):
        (out / label).mkdir(parents=True)
        fresh = [p for p in sorted((kaggle_dev / label).glob("*.jpg")) if f"{label}/{p.name}" not in used]
        for path in fresh[-200:]:
            (out / label / path.name).symlink_to(path)
    return out.parent


@pytest.fixture(scope="session")
def models_dir(lab_data: Path, kaggle_data: Path, weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both models, trained for real but briefly: the quick CNN on the lab photos, the head on Kaggle ones."""
    from catdog import training, transfer

    out = tmp_path_factory.mktemp("models")
    training.train_cnn(lab_data, out / "quick.keras", epochs=3, verbose=0)
    transfer.train_pretrained(kaggle_data, out / "pretrained.keras", weights_dir=weights_dir, verbose=0, progress=False)
    return out


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    """A real Kafka-protocol broker (the embedded tansu) on a free port, for the whole session."""
    from catdog import broker as embedded

    state = tmp_path_factory.mktemp("broker")
    info = embedded.start(state, free_port())
    yield info
    embedded.stop(state)


@pytest.fixture
def kafka(broker, request):
    """Settings for this test alone: its own topics and consumer group on the session's broker."""
    from dataclasses import replace

    from catdog.broker import CLIENT_ENV
    from catdog.config import load_settings

    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]
    return replace(
        load_settings(CLIENT_ENV).kafka,
        bootstrap_servers=broker.bootstrap,
        images_topic=f"{name}-images",
        predictions_topic=f"{name}-predictions",
        dlq_topic=f"{name}-dlq",
        feedback_topic=f"{name}-feedback",
        moderation_topic=f"{name}-moderation",
        challenge_topic=f"{name}-challenge",
        submissions_topic=f"{name}-submissions",
        progress_topic=f"{name}-progress",
        group_id=f"{name}-group",
        batch_size=8,
    )


@pytest.fixture
def services():
    """`catdog classify` processes a test started (processes.start_service): killed if still running."""
    started: list[Service] = []
    yield started
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()
