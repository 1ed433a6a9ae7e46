#!/usr/bin/env bash
# The whole round trip on the embedded default: with the local broker and the classifier service running
# (scripts/lab-env.sh starts both, and stops them afterwards), send the validation photos and one file
# that is not a photo, then show the predictions, the dead letter and the service's metrics.
# Run it through `make demo`, which prepares the data and the models first.
set -euo pipefail
BIN=${BIN:-.venv/bin}
if [ -z "${CATDOG_IN_LAB_ENV:-}" ]; then
  exec env CATDOG_IN_LAB_ENV=1 BIN="$BIN" bash "$(dirname "$0")/lab-env.sh" bash "$0" "$@"
fi
PHOTOS=${DEMO_PHOTOS:-data/validation}
count=$(find "$PHOTOS" -type f | wc -l)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== sending $count photos and one file that is not a photo"
echo "this is not a photo" >"$work/not-a-photo.jpg"
"$BIN/catdog" send "$PHOTOS" "$work/not-a-photo.jpg"
echo "== predictions (both models, side by side)"
"$BIN/catdog" results --count "$count" --timeout 120
echo "== the dead letter"
"$BIN/catdog" results --dead-letters --count 1 --timeout 30
echo "== the service's Prometheus metrics (counters)"
"$BIN/python" -c "import os, urllib.request; print(urllib.request.urlopen(os.environ['CATDOG_METRICS_URL']).read().decode())" \
  | grep -E '^catdog_(images_classified|dead_letters)_total'
