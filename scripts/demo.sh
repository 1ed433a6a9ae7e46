#!/usr/bin/env bash
# The whole round trip on the embedded default: start the local broker and the classifier service, send
# the validation photos and one file that is not a photo, show the predictions and the dead letter, then
# stop everything this script started. Run it through `make demo` (which prepares data and models first).
set -euo pipefail
BIN=${BIN:-.venv/bin}
PHOTOS=${DEMO_PHOTOS:-data/validation}
WORK=$(mktemp -d)
service_pid=""

cleanup() {
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid"        # the service finishes its batch, commits and exits
    wait "$service_pid" || true
  fi
  "$BIN/catdog" broker stop
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting the embedded Kafka broker"
"$BIN/catdog" broker start
echo "== starting the classifier service (log: $WORK/classify.log)"
"$BIN/catdog" classify >"$WORK/classify.log" 2>&1 &
service_pid=$!

echo "== sending $(find "$PHOTOS" -type f | wc -l) photos and one file that is not a photo"
echo "this is not a photo" >"$WORK/not-a-photo.jpg"
"$BIN/catdog" send "$PHOTOS" "$WORK/not-a-photo.jpg"

echo "== predictions (both models, side by side)"
"$BIN/catdog" results --count "$(find "$PHOTOS" -type f | wc -l)" --timeout 120
echo "== the dead letter"
"$BIN/catdog" results --dead-letters --count 1 --timeout 30
echo "== the service's Prometheus metrics (first lines)"
"$BIN/python" -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${CATDOG_METRICS_PORT:-8000}/metrics').read().decode())" \
  | grep -E '^catdog_(images_classified|dead_letters)_total'
