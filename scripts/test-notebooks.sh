#!/usr/bin/env bash
# Execute notebook 01 with nbval, at the lab's own sizes (20 epochs on the 80 lab photos, as a learner runs
# it), against the real embedded broker and classifier service, outside any browser. The browser walks
# (`make lab`, and inside the image) run every notebook at CI sizes through JupyterLab; this run is the
# one that proves the full-size lab. Uses its own data, models and ports: a learner's work is untouched.
set -euo pipefail
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
free_port() { "$BIN/python" -m catdog.broker; }  # catdog.broker.free_port, as the tests use

export CATDOG_DATA_DIR="$WORK/data" CATDOG_MODELS_DIR="$WORK/models"
export CATDOG_LAB_KAFKA_PORT=$(free_port) CATDOG_METRICS_PORT=$(free_port)
unset CATDOG_LAB_EPOCHS CATDOG_LAB_PER_CLASS  # the notebook's own defaults: the full-size lab
export CATDOG_EVAL_SOURCE=${CATDOG_EVAL_SOURCE:-${PRETRAINED_SOURCE:-}}

"$BIN/catdog" data prepare --no-progress >/dev/null
"$BIN/catdog" train quick --epochs 2 >/dev/null
"$BIN/catdog" train pretrained --no-progress --per-class 40 ${PRETRAINED_SOURCE:+--source "$PRETRAINED_SOURCE"} >/dev/null
BIN="$BIN" bash scripts/lab-env.sh "$BIN/python" -m pytest --nbval-lax -p no:cacheprovider --durations=0 \
  notebooks/01-cat-dog-lab.ipynb
