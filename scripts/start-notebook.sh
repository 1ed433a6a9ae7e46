#!/usr/bin/env bash
# The container's entry point: JupyterLab on the lab notebooks, behind a token.
#   JUPYTER_TOKEN  the token (from a Secret); if unset, one is generated on the first start, printed to the
#                  log and kept in HOME (on the volume), so a restart does not change it
#   NB_PREFIX      base URL, set by OpenShift AI / Open Data Hub when the image runs as a workbench
#   NOTEBOOK_ARGS  more options, as OpenShift AI / Open Data Hub pass them (port, base URL, and an empty
#                  token: their OAuth proxy guards the workbench instead)
#   JUPYTER_PORT   port (default 8888)
# `catdog classify` (the classifier service) runs from the same image with its own command.
set -euo pipefail

# The lab baked into the image (notebooks, photos' samples, models) is copied into HOME on first start:
# a workbench mounts a fresh volume on HOME, which hides whatever the image put there. Nothing already in
# HOME is replaced, so a learner's work survives restarts.
baked=${CATDOG_BAKED_LAB:-/opt/app-root/lab}
for item in notebooks data models; do
  if [ -e "$baked/$item" ] && [ ! -e "$HOME/$item" ]; then
    cp -R "$baked/$item" "$HOME/$item"
  fi
done
export CATDOG_LAB_DIR=$HOME  # the lab the notebooks use: the learner's copy
# TensorFlow's and OpenMP's threads sized to the container's CPU limit, for every kernel (catdog.threads).
eval "$(python -c 'from catdog.threads import shell_exports; print(shell_exports())')"

# OpenShift AI / Open Data Hub pass their own options in NOTEBOOK_ARGS (port, base URL, an empty token:
# their OAuth proxy guards the workbench), one per line. Word-split as the workbench images do (values
# carry no spaces); Jupyter refuses an option given twice, so theirs win over ours.
set -f
# shellcheck disable=SC2206
extra=(${NOTEBOOK_ARGS:-})
set +f
sets() {
  local option
  for option in "${extra[@]}"; do
    case "$option" in
      --ServerApp."$1"=* | --ServerApp."$1" | --"$1"=* | --"$1") return 0 ;;
    esac
  done
  return 1
}

kept_token=$HOME/.local/share/catdog/jupyter-token
if [ -z "${JUPYTER_TOKEN:-}" ] && ! sets token; then
  if [ -s "$kept_token" ]; then
    JUPYTER_TOKEN=$(cat "$kept_token")
    echo "JupyterLab token (kept from the first start in $kept_token): ${JUPYTER_TOKEN}"
  else
    JUPYTER_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    mkdir -p "$(dirname "$kept_token")"
    (umask 077 && printf '%s\n' "$JUPYTER_TOKEN" >"$kept_token")
    echo "JupyterLab token (generated; set JUPYTER_TOKEN from a Secret to choose it): ${JUPYTER_TOKEN}"
  fi
fi
export JUPYTER_TOKEN  # read by Jupyter Server itself, so it never shows in the process list

# catdog.labwatch: in a room (or beside make lab's wall), the lab's heartbeat for the instructor's board.
args=(--no-browser --LabApp.default_url=/lab/tree/notebooks/01-cat-dog-lab.ipynb
      --ServerApp.jpserver_extensions=catdog.labwatch=True)
sets ip || args+=(--ip=0.0.0.0)
sets port || args+=("--port=${JUPYTER_PORT:-8888}")
sets root_dir || args+=("--ServerApp.root_dir=${HOME}")
if [ -n "${NB_PREFIX:-}" ] && ! sets base_url; then
  args+=("--ServerApp.base_url=${NB_PREFIX}")
fi
exec jupyter lab "${args[@]}" "${extra[@]}" "$@"  # extra options, e.g. from the container command
