#!/usr/bin/env bash
# The container's entry point: JupyterLab on the lab notebook, always behind a token.
#   JUPYTER_TOKEN  the token (from a Secret); if unset, a random one is generated and printed to the log
#   NB_PREFIX      base URL, set by OpenShift AI / Open Data Hub when the image runs as a workbench
#   JUPYTER_PORT   port (default 8888)
# `catdog classify` (the classifier service) runs from the same image with its own command.
set -euo pipefail

if [ -z "${JUPYTER_TOKEN:-}" ]; then
  JUPYTER_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
  echo "JupyterLab token (generated; set JUPYTER_TOKEN from a Secret to choose it): ${JUPYTER_TOKEN}"
fi
export JUPYTER_TOKEN  # read by Jupyter Server itself, so it never shows in the process list

args=(
  --no-browser
  --ip=0.0.0.0
  "--port=${JUPYTER_PORT:-8888}"
  "--ServerApp.root_dir=${CATDOG_LAB_DIR:-$HOME}"
  --LabApp.default_url=/lab/tree/notebooks/01-cat-dog-lab.ipynb
)
if [ -n "${NB_PREFIX:-}" ]; then
  args+=("--ServerApp.base_url=${NB_PREFIX}")
fi
exec jupyter lab "${args[@]}" "$@"  # extra options, e.g. from the container command
