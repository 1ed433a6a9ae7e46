"""The hashed lock files: what the image and `make` install is exactly what CI tested."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(path.read_text())}


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """Each locked package: its version and how many hashes follow it."""
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        match = PIN.match(block)
        if match:
            entries[match.group(1).lower().replace("_", "-")] = (match.group(2), block.count("--hash=sha256:"))
    return entries


def test_every_pin_is_locked_at_its_version_with_hashes():
    runtime, dev = locked(REPO / "requirements.lock"), locked(REPO / "requirements-dev.lock")
    for name, version in pins(REPO / "requirements.txt").items():
        assert runtime[name][0] == version and dev[name][0] == version, name
    for name, version in pins(REPO / "requirements-dev.txt").items():
        assert dev[name][0] == version, name
    assert len(runtime) > 100  # the transitive packages too, not only the pins
    assert all(hashes for _, hashes in runtime.values()) and all(hashes for _, hashes in dev.values())
    # The test environment runs the image's stack: every runtime package at the same version.
    assert {name: version for name, (version, _) in runtime.items()} == {
        name: dev[name][0] for name in runtime if name in dev
    }


def test_the_image_and_make_install_only_from_the_locks_with_hashes_required():
    containerfile, makefile = (REPO / "Containerfile").read_text(), (REPO / "Makefile").read_text()
    assert "--require-hashes -r /tmp/requirements.lock" in containerfile
    assert "requirements.txt" not in re.sub(r"#.*", "", containerfile)
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert re.search(r"^lock:", makefile, re.MULTILINE)
