"""The notebooks' exercises, one check each: did the learner's cells produce what the exercise asks?

A check reads the learner's variables and results; it never trains and never raises. It answers
**Done** with what it saw, or **Not yet** with a hint that says what to change and where, so Run All
stays clean for a learner who skips every exercise. The solutions live in the exercise cells' metadata
(see :mod:`catdog.notebooks`); CI runs both copies with ``CATDOG_EXERCISES_EXPECT`` set ("done" for the
solutions under nbval, "not-yet" for the learner's in the browser walks), and there a check that disagrees
fails its cell.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog import CLASS_NAMES, CatdogError, progress
from catdog.labels import CONFIDENT, count_votes

EXPECT_VARIABLE = "CATDOG_EXERCISES_EXPECT"
NUMBERS: list[str] = []  # every exercise, in the notebooks' order (the board has a column each)
EXPECTATIONS = ("done", "not-yet")


class ExpectationError(CatdogError, AssertionError):
    """CI said every check of this copy should be done (or not yet), and one is not."""


@dataclass(frozen=True)
class Check:
    """One exercise's answer: done or not, and what the learner should read next."""

    exercise: str
    done: bool
    message: str

    def __str__(self) -> str:
        return f"Exercise {self.exercise}: {'Done' if self.done else 'Not yet'}. {self.message}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        mark, word = ("✅", "Done") if self.done else ("⬜", "Not yet")
        return f"{mark} **Exercise {self.exercise}: {word}.** {self.message}"


def expectation(env: Mapping[str, str] | None = None) -> str | None:
    """What CI expects every check to answer (None for a learner: a check then only reports)."""
    value = (os.environ if env is None else env).get(EXPECT_VARIABLE, "").strip().lower() or None
    if value is not None and value not in EXPECTATIONS:
        raise ExpectationError(f"{EXPECT_VARIABLE}={value!r}: use one of {', '.join(EXPECTATIONS)}")
    return value


def exercise(number: str) -> Callable[[Callable[..., tuple[bool, str]]], Callable[..., Check]]:
    """A check function as the notebook calls it: its (done, message) as a :class:`Check`, any error turned
    into a hint, and CI's expectation enforced."""

    def wrap(function: Callable[..., tuple[bool, str]]) -> Callable[..., Check]:
        @functools.wraps(function)
        def check(*args: Any, **kwargs: Any) -> Check:
            try:
                done, message = function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - a learner's half-finished answer must not break Run All
                done, message = False, f"This answer could not be checked ({type(error).__name__}: {error})."
            result = Check(number, done, message)
            progress.reporter().check(number, result.done)  # the instructor's board, in a room; returns at once
            wanted = expectation()
            if wanted is not None and result.done != (wanted == "done"):
                raise ExpectationError(f"{EXPECT_VARIABLE}={wanted}, but {result}")
            return result

        check.exercise = number  # type: ignore[attr-defined]
        NUMBERS.append(number)
        return check

    return wrap


# Notebook 01 ---------------------------------------------------------------------------------------------

SMOOTHING = 5  # epochs averaged: on 20 validation photos one epoch's accuracy jumps by 0.1 or more


def smoothed(history: Mapping[str, Sequence[float]], metric: str) -> float:
    """A metric over the last SMOOTHING epochs: what a run reached, not its last epoch's luck."""
    last = list(history.get(metric, []))[-SMOOTHING:]
    return sum(last) / len(last) if last else 0.0


@exercise("1.1")
def memorised(result, lab_result, target: float, seconds: float) -> tuple[bool, str]:
    """``result``: the learner's :class:`~catdog.training.TrainResult` (None until they train). Done when
    its training accuracy reached ``target`` within ``seconds``; the message sets its validation accuracy
    beside the lab run's, which is the lesson (memorising 80 photos is not learning what a cat is)."""
    if result is None:
        return False, (
            "Set MY_EPOCHS and MY_IMAGE_SIZE in the cell above, remove the # in front of the "
            "two training lines and run it."
        )
    train, validation = smoothed(result.history, "accuracy"), smoothed(result.history, "val_accuracy")
    seen = (
        f"Training accuracy {train:.2f} in {result.seconds:.0f} s; validation accuracy {validation:.2f} "
        f"(the lab's run: {smoothed(lab_result.history, 'accuracy'):.2f} and "
        f"{smoothed(lab_result.history, 'val_accuracy'):.2f}, in {lab_result.seconds:.0f} s)."
    )
    if result.seconds > seconds:
        return False, f"{seen} Too slow: at most {seconds:.0f} s. Shrink MY_IMAGE_SIZE: every epoch gets cheaper."
    if train < target:
        return (
            False,
            f"{seen} Aim for {target:.2f} on the training photos: more epochs (a smaller input pays for them).",
        )
    return True, f"{seen} Memorised: now compare the two validation figures."


@exercise("1.2")
def models_disagree(photo: str | Path | None, loaded: dict, max_bytes: int, max_pixels: int) -> tuple[bool, str]:
    if photo is None:
        return False, (
            "Set MY_PHOTO to a photo's path: drag your own into JupyterLab's file browser, or pick "
            "one from the grid above (evaluation.paths[i])."
        )
    from catdog.predict import classify_paths

    path = Path(photo).expanduser()
    if not path.is_file():
        return False, f"There is no file at {path} (relative paths start in this notebook's folder)."
    (found,) = classify_paths([path], loaded, max_bytes=max_bytes, max_pixels=max_pixels)
    if found.verdicts is None:
        return False, f"{path.name} is not a photo the models can read: {found.error}."
    said = ", ".join(
        f"{name} says {verdict.label} (p(dog) {verdict.p_dog:.2f})" for name, verdict in found.verdicts.items()
    )
    if len({verdict.label for verdict in found.verdicts.values()}) == 1:
        return False, f"{path.name}: {said}. They agree: try a photo where one model is unsure."
    return True, (
        f"{path.name}: {said}. Which is right? Bet on the pretrained one: MobileNetV2, taught by ImageNet's "
        "million photos, misses about 1 Kaggle photo in 100 it never saw; your quick CNN, from 80 photos, 2 in 5."
    )


# Notebook 02 ---------------------------------------------------------------------------------------------


@exercise("2.1")
def cats_called_dogs(answer: int | None, labels: Sequence[int], predicted: Sequence[int]) -> tuple[bool, str]:
    """Reading a confusion matrix: the cats (true class 0) the model called dogs (1)."""
    if answer is None:
        return False, "Set MY_CATS_CALLED_DOGS to the number you read in the quick CNN's confusion matrix."
    truth = sum(1 for label, said in zip(labels, predicted) if label == 0 and said == 1)
    if int(answer) != truth:
        hint = "rows are the true class, columns what the model said: look at row cat, column dog"
        return False, f"{answer} is not it: {hint}."
    cats = sum(1 for label in labels if label == 0)
    return True, f"{truth} of the {cats} cats were called dogs: those are the quick CNN's false positives."


@exercise("2.2")
def drift_band(band: tuple[float, float] | None, drift, model: str = "pretrained") -> tuple[bool, str]:
    """The alert's band of mean p(dog): every balanced window inside it, most skewed windows outside."""
    if band is None or None in band:
        return False, "Set MY_BAND = (low, high): the mean p(dog) a balanced stream stays within, read from the plot."
    low, high = sorted(float(edge) for edge in band)
    inside: dict[str, list[bool]] = {}
    for phase, mean in zip(drift.phases, drift.windows[model]):
        if mean is not None:
            inside.setdefault(phase, []).append(low <= mean <= high)
    balanced, skewed = (
        inside.get("balanced", []),
        [v for phase, values in inside.items() if phase != "balanced" for v in values],
    )
    false_alarms, caught = balanced.count(False), skewed.count(False)
    counts = (
        f"With ({low:.2f}, {high:.2f}): {false_alarms} of {len(balanced)} balanced windows would alert, "
        f"{caught} of {len(skewed)} skewed windows would."
    )
    if not balanced or not skewed:
        return False, f"{counts} The drift run above has too few results: run it again."
    if false_alarms:
        return False, f"{counts} A balanced stream must not wake anyone: widen the band."
    if caught * 2 < len(skewed):
        return False, f"{counts} Most of the skewed stream goes unnoticed: narrow the band."
    return True, counts


# Notebook 03 ---------------------------------------------------------------------------------------------

TABLE_COLUMNS = {"photos": "photos", "input": "image_size", "budget": "seconds"}  # the table's name: the row's


@exercise("3.1")
def best_within_budget(choice: Mapping[str, float] | None, summary: list[dict], budget: float) -> tuple[bool, str]:
    """``choice``: one row of the notebook's table ({"photos", "input", "budget"}). Done when no grid point
    within ``budget`` seconds scores higher by more than the best one's spread (the seeds' noise)."""
    if not choice:
        return False, 'Set MY_BEST = {"photos": …, "input": …, "budget": …}, copied from one row of the table.'
    chosen = [
        row
        for row in summary
        if all(float(row[key]) == float(choice.get(name, -1)) for name, key in TABLE_COLUMNS.items())
    ]
    if not chosen:
        return False, f"No row of the table has {dict(choice)}: copy its photos, input (px) and budget (s)."
    row = chosen[0]
    best = max((row for row in summary if row["seconds"] <= budget), key=lambda row: row["accuracy"])
    seen = f"{row['photos']} photos at {row['image_size']} px for {row['seconds']:g} s scored {row['accuracy']:.3f}"
    if row["seconds"] > budget:
        return False, f"{seen}, but it trains for {row['seconds']:g} s and the budget is {budget:g} s."
    if row["accuracy"] < best["accuracy"] - best["spread"]:
        return False, f"{seen}; another row within {budget:g} s scores clearly higher (the table is sorted best first)."
    return True, f"{seen}: the best within {budget:g} s is {best['accuracy']:.3f} ± {best['spread']:.3f}."


@exercise("3.2")
def more_photos_help(answer: bool | None, summary: list[dict]) -> tuple[bool, str]:
    """The learning curve at the largest budget and the best input size: fewest photos against most."""
    if answer is None:
        return False, "Set MORE_PHOTOS_HELP to True or False, from the learning curve (the left plot)."
    budget = max(row["seconds"] for row in summary)
    size = max((row for row in summary if row["seconds"] == budget), key=lambda row: row["accuracy"])["image_size"]
    curve = sorted(
        (row for row in summary if row["seconds"] == budget and row["image_size"] == size),
        key=lambda row: row["per_class"],
    )
    fewest, most = curve[0], curve[-1]
    helped = most["accuracy"] > fewest["accuracy"]
    seen = (
        f"at {size} px and {budget:g} s: {fewest['per_class']} photos per class scored {fewest['accuracy']:.3f}, "
        f"{most['per_class']} scored {most['accuracy']:.3f}."
    )
    if bool(answer) != helped:
        return False, f"Look again at the curve {seen.split(':')[0]}."
    return True, seen[0].upper() + seen[1:]


# Notebook 04 ---------------------------------------------------------------------------------------------


@exercise("4.1")
def lone_wrong_label(
    number: int | None, photos: Sequence[tuple[Any, str]], results: Sequence[dict | None], voter: str = "you"
) -> tuple[bool, str]:
    """Count one wrong label of photo ``number`` as the room would (the learner's vote alone, against what
    the serving model said of it): done when the room sets it aside."""
    if number is None:
        return False, "Set MY_WRONG_PHOTO to the number (0, 1, …) of a photo in the grid above."
    number = int(number)
    if not 0 <= number < len(photos) or results[number] is None:
        return False, f"Pick a number from 0 to {len(photos) - 1} whose photo has a verdict."
    truth, served = photos[number][1], results[number]["pretrained"]
    wrong = CLASS_NAMES[1 - CLASS_NAMES.index(truth)]
    confidence = served["p_dog"] if served["label"] == "dog" else 1 - served["p_dog"]
    count = count_votes({"photo": {voter: wrong}}, {"photo": (served["label"], confidence)})
    if "photo" in count.accepted:
        return False, (
            f"Your wrong label '{wrong}' would be accepted: the model said {served['label']} only "
            f"{confidence:.2f} sure (below {CONFIDENT}). Pick a photo it was sure of."
        )
    return True, f"Your wrong label '{wrong}' is set aside: {count.set_aside['photo']}."


@exercise("4.2")
def gate_decision(answer: str | None, status: str) -> tuple[bool, str]:
    """``status``: the candidate's status in the registry ("serving", "refused: …", …)."""
    if answer is None:
        return False, 'Set MY_GATE_DECISION to "promoted" or "refused", from the retrain output above.'
    promoted = status == "serving"
    if str(answer).strip().lower() != ("promoted" if promoted else "refused"):
        return False, "Not what the gate said: read the line of the retrain output that starts with the candidate."
    return True, f"The gate {'promoted the candidate: it serves now' if promoted else 'refused it (' + status + ')'}."
