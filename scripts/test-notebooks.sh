#!/usr/bin/env bash
# Execute every notebook with nbval against the real embedded broker and classifier service, with
# CI-size parameters. Uses its own data, models and ports, so a learner's work is never touched.
set -euo pipefail
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
free_port() { "$BIN/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

export CATDOG_DATA_DIR="$WORK/data" CATDOG_MODELS_DIR="$WORK/models"
export CATDOG_LAB_KAFKA_PORT=$(free_port) CATDOG_METRICS_PORT=$(free_port)
# Small sizes, same code path as the full lab.
export CATDOG_LAB_EPOCHS=${CATDOG_LAB_EPOCHS:-3} CATDOG_EVAL_PER_CLASS=${CATDOG_EVAL_PER_CLASS:-20}
export CATDOG_DRIFT_PHOTOS=${CATDOG_DRIFT_PHOTOS:-10}
export CATDOG_GRID_PER_CLASS=${CATDOG_GRID_PER_CLASS:-10,20} CATDOG_GRID_SECONDS=${CATDOG_GRID_SECONDS:-1,3}
export CATDOG_GRID_TEST_PER_CLASS=${CATDOG_GRID_TEST_PER_CLASS:-20}
export CATDOG_EVAL_SOURCE=${CATDOG_EVAL_SOURCE:-${PRETRAINED_SOURCE:-}}

"$BIN/catdog" data prepare --no-progress >/dev/null
"$BIN/catdog" train quick --epochs 2 >/dev/null
"$BIN/catdog" train pretrained --no-progress --per-class 40 ${PRETRAINED_SOURCE:+--source "$PRETRAINED_SOURCE"} >/dev/null
BIN="$BIN" bash scripts/lab-env.sh "$BIN/python" -m pytest --nbval-lax -p no:cacheprovider notebooks/
