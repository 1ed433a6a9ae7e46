"""The lab's notebooks as files: the lessons in ``notebooks/`` stay as they are in git.

JupyterLab saves a notebook with its outputs (autosave, Ctrl+S) and with the kernel's full language
details. For the lab's own lessons that would change tracked files just by running them, so `make lab`
installs :func:`pre_save_hook`: a learner's edits are saved, outputs and run details are not. A
notebook saved anywhere else (a learner's own) is saved as it is.
"""

from __future__ import annotations

from typing import Any

LESSONS_FOLDER = "notebooks"
# Cell metadata that records a run or a view, not the lesson.
VOLATILE_CELL_METADATA = ("execution", "scrolled", "collapsed", "trusted", "jupyter")


def strip_outputs(notebook: dict) -> dict:
    """The notebook as stored in git: no outputs, no execution counts, no run or view metadata."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k not in VOLATILE_CELL_METADATA}
    metadata = notebook.get("metadata", {})
    language = metadata.get("language_info", {}).get("name", "python")
    notebook["metadata"] = {**{k: v for k, v in metadata.items() if k != "widgets"}, "language_info": {"name": language}}
    return notebook


def pre_save_hook(model: dict, path: str, **_: Any) -> None:
    """Jupyter Server's ``ContentsManager.pre_save_hook``: strip the lessons in ``notebooks/`` only."""
    if model.get("type") == "notebook" and path.strip("/").startswith(LESSONS_FOLDER + "/"):
        strip_outputs(model["content"])
