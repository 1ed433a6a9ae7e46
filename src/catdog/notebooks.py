"""The lab's notebooks as files: the lessons in ``notebooks/`` stay as they are in git, each exercise's
solution kept beside it.

JupyterLab saves a notebook with its outputs (autosave, Ctrl+S) and with the kernel's full language
details. For the lab's own lessons that would change tracked files just by running them, so `make lab`
installs :func:`pre_save_hook`: a learner's edits are saved, outputs and run details are not. A
notebook saved anywhere else (a learner's own) is saved as it is.

An exercise cell carries its solution in its metadata (``{"catdog": {"exercise": "1.1", "solution": …}}``):
the learner sees the cell to complete, the instructor renders the solved copy with `catdog solutions`,
and CI runs both. One source, so a solution never drifts from its exercise.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

LESSONS_FOLDER = "notebooks"
# Cell metadata that records a run or a view, not the lesson.
VOLATILE_CELL_METADATA = ("execution", "scrolled", "collapsed", "trusted", "jupyter")
METADATA_KEY = "catdog"
SOLUTIONS_TITLE = " (solutions)"


def strip_outputs(notebook: dict) -> dict:
    """The notebook as stored in git: no outputs, no execution counts, no run or view metadata."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k not in VOLATILE_CELL_METADATA}
    metadata = notebook.get("metadata", {})
    language = metadata.get("language_info", {}).get("name", "python")
    notebook["metadata"] = {
        **{k: v for k, v in metadata.items() if k != "widgets"},
        "language_info": {"name": language},
    }
    return notebook


def pre_save_hook(model: dict, path: str, **_: Any) -> None:
    """Jupyter Server's ``ContentsManager.pre_save_hook``: strip the lessons in ``notebooks/`` only."""
    if model.get("type") == "notebook" and path.strip("/").startswith(LESSONS_FOLDER + "/"):
        strip_outputs(model["content"])


def exercise_cells(notebook: dict) -> list[tuple[str, dict]]:
    """(exercise number, cell) for each exercise cell, in order."""
    return [
        (cell["metadata"][METADATA_KEY]["exercise"], cell)
        for cell in notebook.get("cells", [])
        if "exercise" in cell.get("metadata", {}).get(METADATA_KEY, {})
    ]


def solved(notebook: dict) -> dict:
    """The instructor's copy: every exercise cell's source replaced by its solution, the title marked."""
    solved_copy = strip_outputs(copy.deepcopy(notebook))
    for _, cell in exercise_cells(solved_copy):
        cell["source"] = cell["metadata"][METADATA_KEY]["solution"]
    cells = solved_copy["cells"]
    if cells and cells[0]["cell_type"] == "markdown":
        title, *rest = "".join(cells[0]["source"]).split("\n", 1)
        cells[0]["source"] = "\n".join([title + SOLUTIONS_TITLE, *rest]).splitlines(keepends=True)
    return solved_copy


def notebook_text(notebook: dict) -> str:
    """A notebook as the lab stores it (what a save from `make lab` writes)."""
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def write_solutions(lessons: Path, out: Path) -> list[Path]:
    """The solved copy of every notebook in ``lessons``, written to ``out`` under the same names."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(lessons).glob("*.ipynb")):
        target = out / path.name
        target.write_text(notebook_text(solved(json.loads(path.read_text()))))
        written.append(target)
    return written
