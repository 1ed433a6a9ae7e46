"""The stored notebooks are clean and follow the lab's rules (they are executed by `make test` with nbval)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from catdog import exercises
from catdog.cli import main
from catdog.notebooks import exercise_cells, pre_save_hook, solved, strip_outputs

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(/home/|/root/|/tmp/|/work/|/Users/|C:\\\\)")
SECRET = re.compile(r"(token=\w{8,}|\"token\"\s*:|password\s*=)", re.IGNORECASE)


def test_there_are_four_numbered_notebooks():
    assert [path.name for path in NOTEBOOKS] == [
        "01-cat-dog-lab.ipynb",
        "02-evaluate-and-monitor.ipynb",
        "03-experiments.ipynb",
        "04-the-room-teaches-the-model.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_stored_notebook_has_no_outputs_paths_or_tokens(path):
    text = path.read_text()
    notebook = json.loads(text)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, "stale outputs stored"
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)
    assert not SECRET.search(text), SECRET.search(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_stored_notebook_is_what_a_save_from_make_lab_writes(path):
    """`make lab` saves the lessons through pre_save_hook: running them must not change these bytes."""
    text = path.read_text()
    assert json.dumps(strip_outputs(json.loads(text)), indent=1, ensure_ascii=False, sort_keys=True) + "\n" == text


def test_pre_save_hook_strips_the_lessons_only():
    def saved(path: str) -> dict:
        model = {
            "type": "notebook",
            "content": {
                "metadata": {
                    "kernelspec": {"name": "python3"},
                    "language_info": {"name": "python", "version": "3.11.7"},
                },
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": 3,
                        "metadata": {"scrolled": True, "tags": ["keep"]},
                        "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi"}],
                        "source": "print('hi')",
                    }
                ],
            },
        }
        pre_save_hook(model=model, path=path, contents_manager=None)
        return model["content"]

    lesson = saved("notebooks/01-cat-dog-lab.ipynb")
    assert lesson["cells"][0]["outputs"] == [] and lesson["cells"][0]["execution_count"] is None
    assert lesson["cells"][0]["metadata"] == {"tags": ["keep"]} and lesson["cells"][0]["source"] == "print('hi')"
    assert lesson["metadata"] == {"kernelspec": {"name": "python3"}, "language_info": {"name": "python"}}
    mine = saved("my-experiment.ipynb")  # a learner's own notebook keeps what they ran
    assert mine["cells"][0]["outputs"] and mine["cells"][0]["execution_count"] == 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_narrative_and_needs_no_editing(path):
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    prose = [cell for cell in cells if cell["cell_type"] == "markdown"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert len(prose) >= len(code) / 2  # prose and code in about equal measure
    for source in code:
        assert not re.search(r"^\s*(def|class) ", source, re.MULTILINE), "definitions belong in the package"
        assert len(source.splitlines()) <= 16, "cells stay short"
    # Sizes come from the environment in the first code cell, so CI runs the same code path.
    assert 'os.environ.get("CATDOG_' in code[0]
    assert not re.search(r"(localhost|127\.0\.0\.1):\d+", "\n".join(code)), "addresses come from settings"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_notebook_has_exercises_each_told_then_checked_with_its_solution_kept_beside_it(path):
    notebook = json.loads(path.read_text())
    cells, found = notebook["cells"], exercise_cells(notebook)
    assert len(found) >= 2, "2-4 exercises per notebook"
    number_of_notebook = str(int(path.name[:2]))
    for number, cell in found:
        index = next(i for i, candidate in enumerate(cells) if candidate is cell)
        told = "".join(cells[index - 1]["source"])
        assert cells[index - 1]["cell_type"] == "markdown" and told.startswith(f"### Exercise {number}: "), told[:60]
        assert number.split(".")[0] == number_of_notebook
        check = re.search(r"^exercises\.(\w+)\(", "".join(cells[index + 1]["source"]), re.MULTILINE)
        assert check, f"exercise {number} is followed by its check cell"
        assert getattr(exercises, check.group(1)).exercise == number, "the check is the one for this exercise"
        solution = "".join(cell["metadata"]["catdog"]["solution"])
        assert solution.strip() and solution != "".join(cell["source"])
        assert len(solution.splitlines()) <= 16 and not re.search(r"^\s*(def|class) ", solution, re.MULTILINE)
    assert [number for number, _ in found] == sorted(number for number, _ in found)


def test_the_solved_copy_holds_every_solution_and_leaves_the_learners_copy_alone(tmp_path, capsys):
    path = NOTEBOOKS[0]
    learner = json.loads(path.read_text())
    instructor = solved(learner)
    assert learner == json.loads(path.read_text()), "rendering the solutions changes nothing in the lesson"
    assert "".join(instructor["cells"][0]["source"]).splitlines()[0].endswith("(solutions)")
    for (_, mine), (_, theirs) in zip(exercise_cells(learner), exercise_cells(instructor)):
        assert theirs["source"] == mine["metadata"]["catdog"]["solution"]

    assert main(["solutions", "--out", str(tmp_path / "solutions")]) == 0
    written = sorted((tmp_path / "solutions").glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    assert json.loads(written[0].read_text()) == instructor
    assert capsys.readouterr().out.splitlines()[0].endswith("01-cat-dog-lab.ipynb  (2 exercises solved)")
