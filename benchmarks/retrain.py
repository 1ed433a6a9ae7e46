"""Benchmark: one room-sized retraining, from the corrections to the gate's decision.

    python benchmarks/retrain.py                  # 60 corrected photos, 200 base photos a class (~5 min on 2 cores)
    python benchmarks/retrain.py --corrected 20 --per-class 50 --json retrain.json

The embedded broker on this machine. A serving pretrained model trained as `make models` trains it (Kaggle
photos, --serving-per-class a class); a check set of Kaggle photos it never saw; then the room: up to
--corrected Kaggle photos the serving model gets wrong (the rest of the corrected photos, if it gets too
few wrong, ones it gets right), sent with `catdog send --label` and their true class. Then `catdog retrain`
on Kaggle photos plus the room's, timed. Reported: accuracy of the serving model before and after on the
corrected photos and on the check set, the gate's decision, and the retrain + gate seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
KAGGLE = SHARED / "datasets" / "kaggle-dev"
VOTERS = ("benchmark-ada", "benchmark-bo")

sys.path.insert(0, str(REPO / "tests"))  # the one helper for `catdog` processes, shared with the tests
from processes import catdog_ok, free_port  # noqa: E402 - from tests/, on the path just above


def catdog(env: dict, *args) -> str:
    return catdog_ok(*args, env=env)


def catdog_measured(env: dict, *args) -> tuple[str, float, float]:
    """`catdog ARGS` alone in its process: what it printed, its seconds, and its own peak RSS in MiB (the
    kernel's figure for that one child, as `/usr/bin/time -v` reports it): what the CronJob's pod must hold."""
    from processes import CATDOG

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([CATDOG, *map(str, args)], stdout=out, stderr=err, env={**os.environ, **env})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        printed = out.read()
        assert process.returncode == 0, f"catdog {' '.join(map(str, args))}:\n{printed}\n{err.read()[-4000:]}"
    return printed, time.perf_counter() - started, usage.ru_maxrss / 1024  # Linux: KiB


def confident_verdicts(model: Path, check: Path) -> dict:
    """How many of the model's check-set verdicts are confident (labels.CONFIDENT), and how many of those right:
    why a lone voter may not overrule one."""
    from catdog.labels import CONFIDENT
    from catdog.models import load_model
    from catdog.predict import evaluate_folder

    evaluation = evaluate_folder({"m": load_model(model)}, check, ("training", "validation"))
    p_dog = evaluation.p_dog["m"]
    sure = (p_dog >= CONFIDENT) | (p_dog <= 1 - CONFIDENT)
    right = evaluation.predicted("m") == evaluation.labels
    return {
        "threshold": CONFIDENT,
        "photos": len(p_dog),
        "confident": int(sure.sum()),
        "right": int((sure & right).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corrected", type=int, default=60, help="the room's corrected photos")
    parser.add_argument("--per-class", type=int, default=200, help="base photos a class for the retraining")
    parser.add_argument("--serving-per-class", type=int, default=300, help="photos a class the serving model saw")
    parser.add_argument("--check-per-class", type=int, default=100)
    parser.add_argument("--fine-tune", action="store_true", help="retrain as the training Job does (--fine-tune)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from catdog.broker import CLIENT_ENV
    from catdog.checkset import accuracy

    work = Path(tempfile.mkdtemp(prefix="retrain-bench-"))
    models, data = work / "models", work / "data"
    port = free_port()
    env = {
        **os.environ,
        **CLIENT_ENV,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "CATDOG_BROKER_DIR": str(work / "broker"),
        "CATDOG_MODELS_DIR": str(models),
        "CATDOG_DATA_DIR": str(data),
        "CATDOG_LEARNER": "benchmark",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    catdog(env, "broker", "start", "--port", port)
    try:
        catdog(
            env,
            "train",
            "pretrained",
            "--source",
            KAGGLE,
            "--per-class",
            args.serving_per_class,
            "--no-progress",
            "--data-out",
            data / "serving",
        )
        catdog(
            env, "train", "quick", "--source", KAGGLE, "--per-class", 100, "--seconds", 10, "--no-progress"
        )  # for predict
        catdog(
            env,
            "data",
            "prepare",
            "--source",
            KAGGLE,
            "--per-class",
            args.check_per_class,
            "--out",
            data / "check",
            "--exclude-from",
            data / "serving",
            "--seed",
            7,
            "--no-progress",
        )
        # The room's photos: Kaggle photos neither the serving model nor the check set has, wrong ones first.
        pool = data / "pool"
        catdog(
            env,
            "data",
            "prepare",
            "--source",
            KAGGLE,
            "--per-class",
            150,
            "--out",
            pool,
            "--exclude-from",
            data / "serving",
            "--exclude-from",
            data / "check",
            "--seed",
            11,
            "--no-progress",
        )
        verdicts = [json.loads(line) for line in catdog(env, "predict", "--json", pool).splitlines()]
        truth = lambda row: Path(row["path"]).parent.name  # noqa: E731 - a one-line reader
        wrong = [row for row in verdicts if "error" not in row and row["pretrained"]["label"] != truth(row)]
        right = [row for row in verdicts if "error" not in row and row["pretrained"]["label"] == truth(row)]
        chosen = (wrong + right)[: args.corrected]
        room = data / "room-corrected"
        for row in chosen:
            target = room / "validation" / truth(row) / Path(row["path"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(row["path"], target)
        # Honest corrections from several voters: two learners each label every photo (a label against the
        # serving model's confident verdict counts only when a second voter agrees).
        for learner in VOTERS:
            for label in ("cat", "dog"):
                if (room / "validation" / label).is_dir():
                    catdog({**env, "CATDOG_LEARNER": learner}, "send", "--label", label, room / "validation" / label)
        serving = models / "pretrained.keras"
        sure = confident_verdicts(serving, data / "check")
        before = {
            "corrected": accuracy(serving, room, ("validation",)),
            "check": accuracy(serving, data / "check", ("training", "validation")),
        }
        printed, seconds, peak_mib = catdog_measured(
            env, "retrain", "--source", KAGGLE, "--check", data / "check", "--per-class", args.per_class,
            *(["--fine-tune"] if args.fine_tune else []),
        )  # fmt: skip
        after = {
            "corrected": accuracy(serving, room, ("validation",)),
            "check": accuracy(serving, data / "check", ("training", "validation")),
        }
    finally:
        catdog(env, "broker", "stop")
    figures = {
        "corrected_photos": len(chosen),
        "wrong_before": sum(1 for row in chosen if row in wrong),
        "per_class": args.per_class,
        "fine_tune": args.fine_tune,
        "check_photos": 2 * args.check_per_class,
        "before": before,
        "after": after,
        "promoted": "PROMOTED" in printed,
        "retrain_and_gate_seconds": round(seconds, 1),
        "retrain_peak_rss_mib": round(peak_mib),
        "cpus": os.cpu_count(),
        "decision": printed.strip().splitlines()[-1],
        "confident_on_check_set": sure,
    }
    print(printed)
    print(f"| serving model | on the {len(chosen)} corrected photos | on the check set ({2 * args.check_per_class}) |")
    print("|---|---|---|")
    for label, scores in (("before", before), ("after", after)):
        print(f"| {label} | {scores['corrected']:.3f} | {scores['check']:.3f} |")
    print(f"\nretrain + gate: {seconds:.0f} s on {os.cpu_count()} CPUs, {peak_mib:.0f} MiB at its peak")
    print(figures["decision"])
    print(
        f"the serving model's verdicts at p >= {sure['threshold']} on the check set: {sure['confident']} of "
        f"{sure['photos']}, {sure['right']} of them right"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
