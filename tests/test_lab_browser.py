"""The learner's path, walked in a real browser: `make lab` on a fresh copy of this checkout, then
headless Chromium opens the printed URL with its token and runs every notebook through JupyterLab's own
Run menu ("Run All Cells"), exactly as a learner clicks it.

Fails on an error output, on a cell that never finished, on a plotting cell without a rendered figure,
on the "Jupyter news" prompt, and on anything the run leaves for `git status` to see. Screenshots of
each notebook's end and of each figure are saved under $CATDOG_ARTIFACTS (default:
test-artifacts/lab-browser/) as PNG files a person can open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SHARED, free_port

NOTEBOOKS = ("notebooks/01-cat-dog-lab.ipynb", "notebooks/02-evaluate-and-monitor.ipynb")
# CI sizes, through the same variables the notebooks read (see scripts/test-notebooks.sh); set them to
# run the full lab in the browser (e.g. CATDOG_LAB_EPOCHS=20 to time the quick CNN cell as learners see it).
LAB_SIZES = {name: os.environ.get(name, default) for name, default in
             (("CATDOG_LAB_EPOCHS", "3"), ("CATDOG_EVAL_PER_CLASS", "20"), ("CATDOG_DRIFT_PHOTOS", "10"))}
START_SECONDS = 600  # make lab trains both models before JupyterLab starts
NOTEBOOK_SECONDS = 900
CHROMIUM = Path(os.environ.get("CATDOG_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CATDOG_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(os.environ.get("CATDOG_ARTIFACTS") or REPO / "test-artifacts") / "lab-browser"

# State of the open notebook, read from JupyterLab's own models (exposed with
# --LabApp.expose_app_in_browser): what a learner sees in the prompts and outputs.
NOTEBOOK_STATE_JS = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext || !panel.context) { return null; }
const cells = panel.content.widgets.map((cell, index) => {
  const model = cell.model;
  const outputs = model.type === 'code' ? model.outputs.toJSON() : [];
  return {
    index, type: model.type, source: model.sharedModel.getSource(),
    count: model.type === 'code' ? model.executionCount : null,
    prompt: model.type === 'code' ? (cell.promptNode ? cell.promptNode.textContent : '') : '',
    errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    text: outputs.map(o => [].concat(o.text || (o.data && o.data['text/plain']) || []).join('')).join(''),
    pngs: outputs.filter(o => o.data && o.data['image/png']).length,
  };
});
return {
  path: panel.context.path,
  ready: panel.context.isReady && !!panel.sessionContext.session,
  status: panel.sessionContext.kernelDisplayStatus,
  cells,
};
"""


def lab_copy(destination: Path) -> Path:
    """This checkout as a fresh clone would have it (tracked and new files, nothing ignored), in git."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)  # mtimes kept: make sees an up-to-date virtualenv
    git = ["git", "-c", "user.name=catdog test", "-c", "user.email=test@catdog.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fresh clone"], cwd=destination, check=True)
    return destination


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.fail(f"{path} is missing: the browser tests need Debian's {package} (make test installs it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200",
                 "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` as a learner runs it, in a fresh copy of the checkout, with CI-size models."""
    copy = lab_copy(tmp_path_factory.mktemp("clone") / "catdog")
    venv = Path(sys.prefix)  # the virtualenv running these tests: make sees it up to date
    log = tmp_path_factory.mktemp("lab-log") / "make-lab.log"
    port = free_port()
    make = ["make", "-o", f"{venv}/bin/catdog", "lab", f"VENV={venv}", f"LAB_PORT={port}",
            "PRETRAINED_PER_CLASS=40", "QUICK_EPOCHS=2", "LAB_ARGS=--LabApp.expose_app_in_browser=True",
            f"SHARED={SHARED}"]
    env = {**os.environ, **LAB_SIZES, "CATDOG_LAB_KAFKA_PORT": str(free_port()),
           "CATDOG_METRICS_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    for name in ("CATDOG_DATA_DIR", "CATDOG_MODELS_DIR", "CATDOG_LAB_DIR", "JUPYTER_TOKEN"):
        env.pop(name, None)  # the learner's defaults, not a test's
    with open(log, "wb") as stream:
        process = subprocess.Popen(make, cwd=copy, env=env, stdout=stream, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    def answering() -> str | None:
        """The printed URL, once the server behind it answers its API with the token."""
        found = re.search(r"JupyterLab: (http://\S+\?token=(\S+))", log.read_text(errors="replace"))
        if process.poll() is not None or not found:
            return None
        base = found.group(1).split("/lab/")[0]
        try:
            urllib.request.urlopen(f"{base}/api/status?token={found.group(2)}", timeout=5)
        except OSError:
            return None
        return found.group(1)

    url = wait_for(answering, START_SECONDS)
    if url is None:
        os.killpg(process.pid, signal.SIGTERM)
        pytest.fail(f"make lab did not start JupyterLab:\n{log.read_text(errors='replace')[-5000:]}")
    yield {"url": url, "copy": copy, "log": log, "process": process}
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # as Ctrl+C or a closing terminal would
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def driver(lab):
    session = browser()
    yield session
    session.quit()


def wait_for(predicate, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def click_menu(driver, menu: str, item: str) -> None:
    """Open a menu of JupyterLab's menu bar and click one of its items, as a learner does."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//*[text()='{menu}']]").click()
    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//*[text()='{item}']]").click()


def run_notebook(driver, base_url: str, path: str, shots: Path) -> dict:
    """Open ``path`` from its URL, Run → Run All Cells, wait until every cell ran or one failed."""
    driver.get(base_url.replace("/lab/tree/notebooks/01-cat-dog-lab.ipynb", f"/lab/tree/{path}"))

    def opened():
        state = driver.execute_script(NOTEBOOK_STATE_JS)
        return state if state and state["path"] == path and state["ready"] and state["status"] == "idle" else None

    assert wait_for(opened, 180), f"{path} did not open with an idle kernel"
    click_menu(driver, "Run", "Run All Cells")
    started = time.monotonic()

    def finished():
        state = driver.execute_script(NOTEBOOK_STATE_JS)
        code = [cell for cell in state["cells"] if cell["type"] == "code"]
        if any(cell["errors"] for cell in code):
            return state
        if state["status"] == "idle" and all(cell["count"] for cell in code):
            return state
        return None

    state = wait_for(finished, NOTEBOOK_SECONDS, interval=2) or driver.execute_script(NOTEBOOK_STATE_JS)
    state["seconds"] = time.monotonic() - started
    save_screenshots(driver, state, shots)
    click_menu(driver, "File", "Save Notebook")  # as autosave or Ctrl+S would: outputs go to the file
    assert wait_for(lambda: not driver.execute_script(
        "return window.jupyterapp.shell.currentWidget.context.model.dirty"), 30), f"{path} was not saved"
    return state


def save_screenshots(driver, state: dict, shots: Path) -> None:
    """Each figure (scrolled into view, as a learner sees it), then the notebook's end."""
    shots.mkdir(parents=True, exist_ok=True)
    rendered = {}
    for cell in state["cells"]:
        if not cell["pngs"]:
            continue
        images = driver.execute_script(
            "const panel = window.jupyterapp.shell.currentWidget; const index = arguments[0];"
            "panel.content.activeCellIndex = index; panel.content.scrollToItem(index, 'start');"
            "return Array.from(panel.content.widgets[index].node.querySelectorAll('.jp-OutputArea img'));",
            cell["index"])
        rendered[cell["index"]] = 0
        for number, image in enumerate(images):
            wait_for(lambda: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image), 10, 0.2)
            if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image):
                rendered[cell["index"]] += 1
                image.screenshot(str(shots / f"cell-{cell['index']:02d}-figure-{number + 1}.png"))
    state["rendered"] = rendered
    driver.execute_script(
        "const panel = window.jupyterapp.shell.currentWidget;"
        "panel.content.activeCellIndex = panel.content.widgets.length - 1;"
        "panel.content.scrollToItem(panel.content.widgets.length - 1, 'end');")
    time.sleep(1)
    driver.save_screenshot(str(shots / "end.png"))


def problems(state: dict) -> list[str]:
    found = []
    for cell in state["cells"]:
        if cell["type"] != "code":
            continue
        where = f"cell {cell['index']} ({cell['source'].splitlines()[0][:60]!r})"
        found += [f"{where}: {error}" for error in cell["errors"]]
        if not cell["count"] and not cell["errors"]:
            found.append(f"{where} never finished (prompt {cell['prompt']!r})")
        if "plots." in cell["source"] and cell["count"]:
            if cell["pngs"] == 0:
                found.append(f"{where} draws a figure but has none")
            elif state["rendered"].get(cell["index"], 0) < cell["pngs"]:
                found.append(f"{where}: {cell['pngs']} figure(s), {state['rendered'].get(cell['index'], 0)} rendered")
    return found


def test_make_lab_runs_every_notebook_in_the_browser(lab, driver):
    url = lab["url"]
    driver.get(url)
    assert wait_for(lambda: driver.execute_script("return !!window.jupyterapp"), 120), "JupyterLab did not load"
    timings = {}
    for path in NOTEBOOKS:
        name = Path(path).stem
        state = run_notebook(driver, url, path, ARTIFACTS / name)
        (ARTIFACTS / name / "cells.json").write_text(json.dumps(state, indent=1))
        timings[name] = round(state["seconds"], 1)
        assert not problems(state), f"{path}:\n" + "\n".join(problems(state)) + f"\nscreenshots: {ARTIFACTS / name}"
        if name.startswith("01"):
            trained = re.search(r"trained in ([\d.]+) s", "".join(cell["text"] for cell in state["cells"]))
            assert trained, "the quick CNN cell did not report its training time"
            timings["01 quick CNN cell (fit seconds)"] = float(trained.group(1))
            mine = next(cell for cell in state["cells"] if "find_prediction" in cell["source"])
            assert "(no result" not in mine["text"] and "your photo:" in mine["text"], mine["text"]
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1))
    page = driver.page_source
    assert "Jupyter news" not in page and "notified about official" not in page, "the news prompt showed"


def test_the_walk_leaves_nothing_for_git(lab, driver):
    """After every notebook ran: no stray notebooks/data or notebooks/models, a clean `git status`."""
    os.killpg(lab["process"].pid, signal.SIGTERM)
    assert lab["process"].wait(60) is not None
    copy = lab["copy"]
    assert not (copy / "notebooks" / "data").exists() and not (copy / "notebooks" / "models").exists()
    assert (copy / "models" / "quick.keras").is_file() and (copy / "data" / "evaluation").is_dir()
    # The notebooks were saved after running (see run_notebook); the lessons stay as git has them.
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"make lab left files for git:\n{status}"
