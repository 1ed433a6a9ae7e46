#!/usr/bin/env bash
# Execute the instructor's copy of the notebooks (`catdog solutions`: every exercise check must say "Done";
# CATDOG_EXERCISES_EXPECT turns a check that disagrees into a failed cell) with nbval outside any browser,
# against the real embedded broker and classifier service. Notebook 01 at the lab's own sizes (20 epochs on
# the 80 lab photos, as a learner runs it): this run is the one that proves the full-size lab, every cell
# of the learner's copy plus the solutions. Notebooks 02-04 at CI sizes. The learner's copy of every
# notebook is run by the browser walks (tests/browser.py) through JupyterLab, expecting "Not yet" from
# every check (its exercise cells start empty, so their checks answer alike at any size).
# Uses its own data, models and ports: a learner's work is untouched.
set -euo pipefail
BIN=${BIN:-.venv/bin}
NBVAL=("$BIN/python" -m pytest --nbval-lax -p no:cacheprovider --durations=5)
# The sizes the browser walks use (tests/browser.py LAB_SIZES), for notebooks 02-04.
CI_SIZES=(CATDOG_EVAL_PER_CLASS=20 CATDOG_DRIFT_PHOTOS=10 CATDOG_GRID_PER_CLASS=10,20 CATDOG_GRID_SECONDS=1,3
  CATDOG_GRID_SEEDS=1 CATDOG_GRID_TEST_PER_CLASS=20 CATDOG_LABEL_PER_CLASS=3 CATDOG_CHECK_PER_CLASS=10
  CATDOG_RETRAIN_PER_CLASS=10)

if [ "${1:-}" = "--beside-the-services" ]; then  # run by lab-env.sh below, with the broker and services up
  solutions=$2
  echo "== notebook 01 at full size, the solutions (every check: Done)"
  CATDOG_EXERCISES_EXPECT=done "${NBVAL[@]}" "$solutions/01-cat-dog-lab.ipynb"
  echo "== notebooks 02-04 at CI sizes, the solutions"
  env "${CI_SIZES[@]}" CATDOG_EXERCISES_EXPECT=done "${NBVAL[@]}" "$solutions"/0[234]-*.ipynb
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
free_port() { "$BIN/python" -m catdog.broker; }  # catdog.broker.free_port, as the tests use

export CATDOG_DATA_DIR="$WORK/data" CATDOG_MODELS_DIR="$WORK/models"
export CATDOG_LAB_KAFKA_PORT=$(free_port) CATDOG_METRICS_PORT=$(free_port) CATDOG_WALL_PORT=$(free_port)
unset CATDOG_LAB_EPOCHS CATDOG_LAB_PER_CLASS  # the notebook's own defaults: the full-size lab
export CATDOG_EVAL_SOURCE=${CATDOG_EVAL_SOURCE:-${PRETRAINED_SOURCE:-}}

"$BIN/catdog" data prepare --no-progress >/dev/null
"$BIN/catdog" train quick --epochs 2 >/dev/null
"$BIN/catdog" train pretrained --no-progress --per-class 40 ${PRETRAINED_SOURCE:+--source "$PRETRAINED_SOURCE"} >/dev/null
"$BIN/catdog" solutions --out "$WORK/solutions" >/dev/null
"$BIN/catdog" challenge make --per-class 5 --out "$WORK/challenge" >/dev/null  # notebook 01 submits to it
CATDOG_LAB_CHALLENGE="$WORK/challenge" BIN="$BIN" bash scripts/lab-env.sh bash "$0" --beside-the-services "$WORK/solutions"
