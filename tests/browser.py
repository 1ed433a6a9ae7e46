"""A learner's clicks in JupyterLab, from headless Chromium: open a notebook by its URL, Run → Run All
Cells, File → Save Notebook, and read what the learner sees (prompts, outputs, figures) from JupyterLab's
own models (exposed with --LabApp.expose_app_in_browser). Used by the walks through `make lab`
(test_lab_browser.py) and through the container image (test_image.py).
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from waiting import wait_until

NOTEBOOKS = (
    "notebooks/01-cat-dog-lab.ipynb",
    "notebooks/02-evaluate-and-monitor.ipynb",
    "notebooks/03-experiments.ipynb",
    "notebooks/04-the-room-teaches-the-model.ipynb",
)
# CI sizes, through the same variables the notebooks read (nbval runs notebook 01 full size); set them to
# run the full lab in the browser (e.g. CATDOG_LAB_EPOCHS=20 to time the quick CNN cell as learners see it).
LAB_SIZES = {
    name: os.environ.get(name, default)
    for name, default in (
        ("CATDOG_LAB_EPOCHS", "3"),
        ("CATDOG_EVAL_PER_CLASS", "20"),
        ("CATDOG_DRIFT_PHOTOS", "10"),
        ("CATDOG_GRID_PER_CLASS", "10,20"),
        ("CATDOG_GRID_SECONDS", "1,3"),
        ("CATDOG_GRID_SEEDS", "1"),
        ("CATDOG_GRID_TEST_PER_CLASS", "20"),
        ("CATDOG_LABEL_PER_CLASS", "3"),
        ("CATDOG_CHECK_PER_CLASS", "10"),
        ("CATDOG_RETRAIN_PER_CLASS", "10"),
    )
}
# The walks run the learner's copy: every exercise check must answer Not yet (a check that says Done, or
# raises, fails its cell), as nbval asserts Done on the instructor's copy (scripts/test-notebooks.sh).
LEARNERS_COPY = {"CATDOG_EXERCISES_EXPECT": "not-yet"}
NOTEBOOK_SECONDS = 900
CHROMIUM = Path(os.environ.get("CATDOG_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CATDOG_CHROMEDRIVER", "/usr/bin/chromedriver"))

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


@contextmanager
def browser_session(phone: bool = False):
    """Headless Chromium for one walk (``phone``: a phone's screen, touch and user agent); always quit."""
    session = browser(phone)
    try:
        yield session
    finally:
        session.quit()


# Chromium's own emulation of a phone: a 390x844 screen at 3x, touch, a mobile Safari user agent.
PHONE = {
    "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": True},
    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
}


def browser(phone: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.fail(f"{path} is missing: the browser tests need Debian's {package} (make test installs it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option("mobileEmulation", PHONE)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def lab_link(lab_url: str, path: str) -> str:
    """The address that opens ``path`` in the JupyterLab at ``lab_url`` (``…/lab``, maybe ``?token=…``)."""
    base, _, query = lab_url.partition("?")
    return f"{base}/tree/{path}" + (f"?{query}" if query else "")


def click_menu(driver, menu: str, item: str) -> None:
    """Open a menu of JupyterLab's menu bar and click one of its items, as a learner does."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//*[text()='{menu}']]").click()
    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//*[text()='{item}']]").click()


def run_notebook(driver, lab_url: str, path: str, shots: Path) -> dict:
    """Open ``path`` from its URL, Run → Run All Cells, wait until every cell ran or one failed.

    ``lab_url``: JupyterLab's address up to ``/lab`` (base URL included), with the token if it needs one.
    """
    driver.get(lab_link(lab_url, path))

    def opened():
        state = driver.execute_script(NOTEBOOK_STATE_JS)
        return state if state and state["path"] == path and state["ready"] and state["status"] == "idle" else None

    wait_until(opened, 180, f"{path} to open with an idle kernel", interval=1)
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

    # A time out is a finding the caller reports with the notebook as it stands (which cells ran, which not).
    state = wait_until(finished, NOTEBOOK_SECONDS, "", interval=2, fail=False) or driver.execute_script(
        NOTEBOOK_STATE_JS
    )
    state["seconds"] = time.monotonic() - started
    save_screenshots(driver, state, shots)
    click_menu(driver, "File", "Save Notebook")  # as autosave or Ctrl+S would: outputs go to the file
    saved = "return !window.jupyterapp.shell.currentWidget.context.model.dirty"
    wait_until(lambda: driver.execute_script(saved), 30, f"{path} to be saved", interval=1)
    return state


def save_screenshots(driver, state: dict, shots: Path) -> None:
    """Each figure (scrolled into view, as a learner sees it), then the notebook's end."""
    shots.mkdir(parents=True, exist_ok=True)
    rendered = {}
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    for cell in state["cells"]:
        if not cell["pngs"]:
            continue
        images = driver.execute_script(
            "const panel = window.jupyterapp.shell.currentWidget; const index = arguments[0];"
            "panel.content.activeCellIndex = index; panel.content.scrollToItem(index, 'start');"
            "return Array.from(panel.content.widgets[index].node.querySelectorAll('.jp-OutputArea img'));",
            cell["index"],
        )
        rendered[cell["index"]] = 0
        for number, image in enumerate(images):
            # A figure that never loads is counted as not rendered (the caller's finding), not a failure here.
            if wait_until(lambda image=image: driver.execute_script(loaded, image), 10, "", fail=False):
                rendered[cell["index"]] += 1
                image.screenshot(str(shots / f"cell-{cell['index']:02d}-figure-{number + 1}.png"))
    state["rendered"] = rendered
    driver.execute_script(
        "const panel = window.jupyterapp.shell.currentWidget;"
        "panel.content.activeCellIndex = panel.content.widgets.length - 1;"
        "panel.content.scrollToItem(panel.content.widgets.length - 1, 'end');"
    )
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


def walk_lab(driver, lab_url: str, artifacts: Path) -> dict:
    """Every lab notebook, in order, as a learner runs it; fails on what a learner would see go wrong.

    Saves each notebook's cells.json and screenshots under ``artifacts``; returns the timings.
    """
    driver.get(lab_link(lab_url, NOTEBOOKS[0]))
    wait_until(lambda: driver.execute_script("return !!window.jupyterapp"), 120, "JupyterLab to load", interval=1)
    timings = {}
    for path in NOTEBOOKS:
        name = Path(path).stem
        state = run_notebook(driver, lab_url, path, artifacts / name)
        (artifacts / name / "cells.json").write_text(json.dumps(state, indent=1))
        timings[name] = round(state["seconds"], 1)
        assert not problems(state), f"{path}:\n" + "\n".join(problems(state)) + f"\nscreenshots: {artifacts / name}"
        if name.startswith("01"):
            trained = re.search(r"trained in ([\d.]+) s", "".join(cell["text"] for cell in state["cells"]))
            assert trained, "the quick CNN cell did not report its training time"
            timings["01 quick CNN cell (fit seconds)"] = float(trained.group(1))
            mine = next(cell for cell in state["cells"] if "find_prediction(" in cell["source"])
            assert "(no result" not in mine["text"] and "your photo:" in mine["text"], mine["text"]
        if name.startswith("04"):  # a `!` cell's failure is text, not an error: the gate must have decided
            retrained = next(cell for cell in state["cells"] if "!catdog retrain" in cell["source"])
            assert re.search(r"candidate [0-9a-f]{12}: (PROMOTED|KEPT)", retrained["text"]), retrained["text"]
            served = next(cell for cell in state["cells"] if "version_in_service" in cell["source"])
            assert re.search(r"came from pretrained [0-9a-f]{12}", served["text"]), served["text"]
    (artifacts / "timings.json").write_text(json.dumps(timings, indent=1))
    page = driver.page_source
    assert "Jupyter news" not in page and "notified about official" not in page, "the news prompt showed"
    return timings


def wall_problems(driver) -> list[str]:
    """What the browser logged as errors on a wall page (CSP refusals, script errors); the API's own
    refusals (a 4xx answer the page then shows) are answers, not faults."""
    try:
        return [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "the server responded with a status of 4" not in entry["message"]
        ]
    except Exception:  # noqa: BLE001 - a driver without the log
        return []


def open_wall(driver, wall_url: str, code: str) -> None:
    """The projector: the wall's link with its code, at 1080p."""
    from selenium.webdriver.common.by import By

    driver.set_window_size(1920, 1080)
    driver.get(f"{wall_url}/#code={code}")
    wait_until(
        lambda: driver.find_element(By.ID, "board").is_displayed(),
        30,
        lambda: "the wall's board:\n" + driver.page_source[-2000:],
        interval=1,
    )


def wall_card(driver, learner: str, timeout: float = 60) -> dict | None:
    """The first card on the wall sent by ``learner``, as the page shows it (text, and its picture loaded)."""
    script = """
    const card = [...document.querySelectorAll('#cards .card')]
      .find(c => c.querySelector('.learner').textContent === arguments[0]);
    if (!card) return null;
    const thumb = card.querySelector('.thumb');
    const text = name => card.querySelector('.' + name).textContent;
    return {filename: text('filename'), quick: text('quick'), pretrained: text('pretrained'),
            agreement: text('agreement'), versions: text('versions'),
            loaded: thumb.complete && thumb.naturalWidth > 0, html: card.innerHTML};
    """
    # None when none comes: a hidden photo's card must not (the caller's finding).
    return wait_until(
        lambda: (lambda c: c if c and c["loaded"] else None)(driver.execute_script(script, learner)),
        timeout,
        "",
        interval=0.3,
        fail=False,
    )


def send_from_phone(phone, wall_url: str, code: str, learner: str, photo: Path, timeout: float = 60) -> dict:
    """The phone's walk: the QR link, a name, a photo picked, and what the page then says."""
    from selenium.webdriver.common.by import By

    phone.get(f"{wall_url}/upload#code={code}")
    wait_until(lambda: phone.find_element(By.ID, "send").is_displayed(), 30, "the phone's page", interval=1)
    name = phone.find_element(By.ID, "learner")
    name.clear()
    name.send_keys(learner)
    phone.find_element(By.ID, "photo").send_keys(str(photo))  # as picking it in the file chooser

    def settled():
        result, error = phone.find_element(By.ID, "result"), phone.find_element(By.ID, "error").text
        if error:
            return {"error": error}
        if result.is_displayed():
            return {
                field: phone.find_element(By.ID, field).text
                for field in ("quick", "pretrained", "agree", "right", "wrong")
            }
        return None

    return wait_until(settled, timeout, "", interval=0.3, fail=False) or {"error": "nothing shown in time"}
