"""`.ci/run` on a machine where nothing was installed before: its preamble (the shared folder, a fresh
KERAS_HOME, the disk report) must reach `make test` however bare the machine is. A fake Makefile stands in
for the suite (this very suite is what `make test` runs); the rest is the real script under bash."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO

# What the script itself calls, and nothing else: no podman, no Python, no apt on this PATH.
TOOLS = ("bash", "sh", "df", "awk", "make", "mktemp", "date", "dirname", "cat", "id")
FAKE_MAKEFILE = 'test:\n\t@echo "make test: CATDOG_SHARED=$$CATDOG_SHARED KERAS_HOME=$$KERAS_HOME"\n'


def bare_checkout(tmp_path: Path, shared: bool = True) -> tuple[Path, Path]:
    """A checkout holding only .ci/run and a Makefile whose `test` says what it was given; ../shared beside
    it (or not); a bin folder with only the tools the script needs."""
    checkout = tmp_path / "main"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", checkout / ".ci" / "run")
    (checkout / "Makefile").write_text(FAKE_MAKEFILE)
    if shared:
        (tmp_path / "shared").mkdir()
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not on this machine"
        (tools / tool).symlink_to(found)
    return checkout, tools


def run_on_a_fresh_machine(checkout: Path, tools: Path) -> subprocess.CompletedProcess:
    """`bash .ci/run` where /var/lib holds nothing (a tmpfs over it in a private mount namespace: no
    /var/lib/containers, as before podman is installed), with CI's variables and only ``tools`` on PATH."""
    hide = f"{shutil.which('mount')} -t tmpfs fresh /var/lib && exec bash {checkout}/.ci/run"
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    env = {"PATH": str(tools), "CI": "true", "HOME": str(checkout.parent), "TMPDIR": str(checkout.parent)}
    command = [shutil.which("unshare"), *user, "--mount", "--propagation", "private", str(tools / "sh"), "-c", hide]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_ci_run_reaches_the_suite_on_a_machine_with_nothing_installed(tmp_path):
    checkout, tools = bare_checkout(tmp_path)
    result = run_on_a_fresh_machine(checkout, tools)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"make test: CATDOG_SHARED={tmp_path / 'shared'} KERAS_HOME={tmp_path}/" in result.stdout
    assert ".ci/run: disk at the start:" in result.stdout and ".ci/run: disk at the end:" in result.stdout
    assert "/var/lib/containers" not in result.stdout + result.stderr  # not there yet: not reported
    assert "the whole suite took" in result.stdout


def test_ci_run_without_the_shared_folder_stops_and_says_where_it_looked(tmp_path):
    checkout, tools = bare_checkout(tmp_path, shared=False)
    result = run_on_a_fresh_machine(checkout, tools)
    assert result.returncode == 1
    assert f"../shared (photos, weights, schemas) is missing beside the checkout: {checkout}/../shared" in result.stderr
    assert "make test:" not in result.stdout  # the suite never starts without its photos and weights


def test_the_old_disk_report_is_what_stopped_it(tmp_path):
    """The regression, shown: the landed script's report (df on every folder, under pipefail) ends the run
    on such a machine before `make test`, with no message; this script's does not."""
    checkout, tools = bare_checkout(tmp_path)
    script = checkout / ".ci" / "run"
    old = "disk() { df -h \"$(pwd)\" /var/lib/containers /tmp 2>/dev/null | awk 'NR == 1 || !seen[$1]++'; }\n"
    text = script.read_text()
    start, end = text.index("disk() {"), text.index('echo ".ci/run: disk at the start:')
    script.write_text(text[:start] + old + text[end:])
    result = run_on_a_fresh_machine(checkout, tools)
    assert result.returncode == 1 and "make test:" not in result.stdout
