#!/usr/bin/env bash
# Run a command beside the lab's services: the embedded Kafka broker, the classifier service and the
# room's wall, with the environment set so that the command (JupyterLab, or the notebook tests) finds
# them. All are stopped when the command ends. Models must exist in $CATDOG_MODELS_DIR (make models).
#   scripts/lab-env.sh jupyter lab ...
# CATDOG_LAB_ROOM=DIR (`make lab-secure`): instead of the embedded broker, the tests' enforcing broker
# (tests/secured.py: TLS from the room's CA, SCRAM logins, the room's ACLs) for the room folder DIR, the
# classifier and the wall as the room's users, the command as the room's first learner.
set -euo pipefail
BIN=${BIN:-.venv/bin}
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${CATDOG_LAB_KAFKA_PORT:-9092}}
export CATDOG_METRICS_PORT=${CATDOG_METRICS_PORT:-8000}
export CATDOG_METRICS_URL=${CATDOG_METRICS_URL:-http://127.0.0.1:$CATDOG_METRICS_PORT/metrics}
export CATDOG_BROKER_DIR=${CATDOG_BROKER_DIR:-$(mktemp -d)}
# The wall: its address (loopback; CATDOG_WALL_HOST=0.0.0.0 and CATDOG_WALL_URL=http://<this machine>:8001
# let phones on the same network in) and a fresh room code unless one is given.
export CATDOG_WALL_PORT=${CATDOG_WALL_PORT:-8001}
export CATDOG_WALL_URL=${CATDOG_WALL_URL:-http://127.0.0.1:$CATDOG_WALL_PORT}
CATDOG_ROOM_CODE=${CATDOG_ROOM_CODE:-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(9))')}
CATDOG_WALL_MODERATOR_KEY=${CATDOG_WALL_MODERATOR_KEY:-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))')}
# What signs the phones' joins: the wall refuses a room code without it.
CATDOG_WALL_SECRET=${CATDOG_WALL_SECRET:-$("$BIN/python" -c 'import secrets; print(secrets.token_hex(32))')}
export CATDOG_ROOM_CODE CATDOG_WALL_MODERATOR_KEY CATDOG_WALL_SECRET
LOG_DIR=$(mktemp -d)
service_pid=""
wall_pid=""
broker_pid=""

stop() {
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1"
    wait "$1" || true
  fi
}

cleanup() {
  stop "$wall_pid"
  stop "$service_pid"
  if [ -n "$broker_pid" ]; then stop "$broker_pid"; else "$BIN/catdog" broker stop >/dev/null; fi
}
trap cleanup EXIT
trap 'exit 143' TERM  # stopped by a signal (Ctrl+C, a test, a pod ending): still stop both services
trap 'exit 130' INT

# The lab's own commands (catdog) in JupyterLab's terminals and notebook `!` cells, as in the image.
PATH="$(cd "$BIN" && pwd):$PATH"
export PATH
as_user() { :; }  # each process's Kafka login: none on the embedded broker
if [ -n "${CATDOG_LAB_ROOM:-}" ]; then
  secured="$LOG_DIR/secured"
  "$BIN/python" "$(dirname "$0")/../tests/secured.py" --room "$CATDOG_LAB_ROOM" --out "$secured" \
    --port "${KAFKA_BOOTSTRAP_SERVERS##*:}" >"$LOG_DIR/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 120); do
    grep -q "^secured Kafka" "$LOG_DIR/broker.log" 2>/dev/null && break
    kill -0 "$broker_pid" 2>/dev/null || { cat "$LOG_DIR/broker.log" >&2; exit 1; }
    sleep 0.5
  done
  grep -q "^secured Kafka" "$LOG_DIR/broker.log" || { cat "$LOG_DIR/broker.log" >&2; exit 1; }
  cat "$LOG_DIR/broker.log"
  as_user() { set -a; . "$secured/$1.env"; set +a; }
else
  # Its exports: the address, and the consumer-group timings this broker needs (Kafka's defaults elsewhere).
  eval "$("$BIN/catdog" broker start --port "${KAFKA_BOOTSTRAP_SERVERS##*:}" | grep '^export ')"
fi
# The folder the classifier serves: a notebook that promotes a model there sees it served (notebook 04).
CATDOG_CLASSIFIER_MODELS_DIR=$("$BIN/python" -c 'from catdog.config import load_settings; print(load_settings().models_dir)' 2>/dev/null || true)
export CATDOG_CLASSIFIER_MODELS_DIR
(as_user classifier; exec "$BIN/catdog" classify) >"$LOG_DIR/classify.log" 2>&1 &
service_pid=$!
ready=""
wait_seconds=${CATDOG_SERVICE_WAIT_SECONDS:-120}
for _ in $(seq 1 $((wait_seconds * 2))); do   # wait until the service is ready
  if "$BIN/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$CATDOG_METRICS_PORT/readyz', timeout=1)" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$service_pid" 2>/dev/null || { cat "$LOG_DIR/classify.log"; exit 1; }
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "the classifier service did not become ready in $wait_seconds s; its log ($LOG_DIR/classify.log):" >&2
  cat "$LOG_DIR/classify.log" >&2
  exit 1
fi
echo "Kafka at $KAFKA_BOOTSTRAP_SERVERS; classifier service metrics at $CATDOG_METRICS_URL (log: $LOG_DIR/classify.log)"
# The room's challenge, as an instructor runs it, where a challenge folder is given (CATDOG_LAB_CHALLENGE;
# `make lab` makes one once): its photos published without labels, its answers given to the wall alone.
wall_env=()
if [ -n "${CATDOG_LAB_CHALLENGE:-}" ] && [ -z "${CATDOG_LAB_ROOM:-}" ]; then
  "$BIN/catdog" challenge publish "$CATDOG_LAB_CHALLENGE" >"$LOG_DIR/challenge.log" 2>&1 \
    || { cat "$LOG_DIR/challenge.log" >&2; exit 1; }
  wall_env=("CATDOG_CHALLENGE_ANSWERS=$(cd "$CATDOG_LAB_CHALLENGE" && pwd)/answers.json")
fi
(as_user wall; exec env "${wall_env[@]}" "$BIN/catdog" wall) >"$LOG_DIR/wall.log" 2>&1 &
wall_pid=$!
for _ in $(seq 1 60); do
  "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$CATDOG_WALL_URL/readyz', timeout=1)" 2>/dev/null && break
  kill -0 "$wall_pid" 2>/dev/null || { cat "$LOG_DIR/wall.log"; exit 1; }
  sleep 0.5
done
echo "Wall: $CATDOG_WALL_URL/#code=$CATDOG_ROOM_CODE (phones: $CATDOG_WALL_URL/upload#code=$CATDOG_ROOM_CODE; log: $LOG_DIR/wall.log)"
echo "Moderator: $CATDOG_WALL_URL/moderate#key=$CATDOG_WALL_MODERATOR_KEY (yours alone: hide a photo, pause uploads, change the code)"
[ -z "${wall_env[*]}" ] || echo "Challenge: $(cat "$LOG_DIR/challenge.log") (the leaderboard is on the wall)"
as_user learner
"$@"
