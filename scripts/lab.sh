#!/usr/bin/env bash
# `make lab`: JupyterLab on the lab notebooks, beside the embedded broker and the classifier service
# (scripts/lab-env.sh starts both and stops them when JupyterLab ends). Works as root (CI, containers)
# and as a normal user. A token is always required: $JUPYTER_TOKEN, or a fresh random one printed here.
#   LAB_PORT (8888)   extra arguments are passed to `jupyter lab`
set -euo pipefail
BIN=${BIN:-.venv/bin}
# The lab folder: relative settings (data/, models/) resolve here whichever folder a kernel starts in.
export CATDOG_LAB_DIR=${CATDOG_LAB_DIR:-$PWD}
port=${LAB_PORT:-8888}
JUPYTER_TOKEN=${JUPYTER_TOKEN:-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))')}
export JUPYTER_TOKEN  # read by Jupyter Server itself, so it never shows in the process list

notebook=notebooks/01-cat-dog-lab.ipynb
# The lab's JupyterLab settings (no "Jupyter news" prompt), as the image installs them; the lessons in
# notebooks/ are saved without their outputs, so running them changes no file that git tracks.
args=(--no-browser --ip=127.0.0.1 "--port=$port" "--ServerApp.root_dir=$CATDOG_LAB_DIR"
      "--LabApp.default_url=/lab/tree/$notebook" "--LabApp.app_settings_dir=$(cd "$(dirname "$0")" && pwd)/jupyterlab"
      --FileContentsManager.pre_save_hook=catdog.notebooks.pre_save_hook
      --ServerApp.jpserver_extensions=catdog.labwatch=True)  # the board's heartbeat, when in a room
if [ "$(id -u)" = 0 ]; then
  args+=(--allow-root)  # Jupyter refuses root without it
fi
echo "JupyterLab: http://127.0.0.1:$port/lab/tree/$notebook?token=$JUPYTER_TOKEN"
exec env BIN="$BIN" bash "$(dirname "$0")/lab-env.sh" "$BIN/jupyter" lab "${args[@]}" "$@"
