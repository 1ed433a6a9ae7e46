"""``catdog solutions``: the instructor's copy of the notebooks, every exercise solved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from catdog import CatdogError
from catdog.config import Settings
from catdog.notebooks import exercise_cells, write_solutions


def register(verbs) -> None:
    solutions = verbs.add_parser(
        "solutions",
        help="write the notebooks with every exercise solved (the instructor's copy)",
        description="Write a copy of the lab's notebooks in which every exercise cell holds its solution (kept "
        "in the cell's metadata). The learner's notebooks are untouched; open the copy in JupyterLab to show "
        "a solution, or run it to see every check say Done.",
    )
    solutions.add_argument("--notebooks", type=Path, help="the lessons to solve (default: the lab's notebooks/)")
    solutions.add_argument("--out", type=Path, help="where to write the solved copies (default: the lab's solutions/)")
    solutions.set_defaults(run=run_solutions)


def run_solutions(args: argparse.Namespace, settings: Settings) -> int:
    lessons = args.notebooks or settings.lab_dir / "notebooks"
    if not any(Path(lessons).glob("*.ipynb")):
        raise CatdogError(f"no notebooks in {lessons}")
    for path in write_solutions(lessons, args.out or settings.lab_dir / "solutions"):
        print(f"{path}  ({len(exercise_cells(json.loads(path.read_text())))} exercises solved)")
    return 0
