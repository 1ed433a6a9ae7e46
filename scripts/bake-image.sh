#!/usr/bin/env bash
# Build time (see Containerfile): bake a sample of the photos, both models and the ImageNet weights (MobileNetV2's
# for the pretrained model, MobileNet v1's with its classes for the zero-shot one) into the image, so the lab
# needs no internet at run time.
#   bake-image.sh DATA_SOURCE LAB_PER_CLASS PRETRAINED_PER_CLASS EVAL_PER_CLASS
# Writes $CATDOG_DATA_SOURCE (the lab's photo pool: the lab's photos plus EVAL_PER_CLASS more of each
# class that no model trains on, for notebooks 02 and 03), the lab's data/ and models/ (in $CATDOG_LAB_DIR, or
# $CATDOG_DATA_DIR / $CATDOG_MODELS_DIR), $KERAS_HOME; the downloaded archive (in $CATDOG_CACHE_DIR) is
# deleted at the end. WEIGHTS_SHA256 (optional): FILE=SHA256,… for the ImageNet weights, checked.
set -euo pipefail
source=$1 lab_per_class=$2 pretrained_per_class=$3 eval_per_class=$4
: "${CATDOG_DATA_SOURCE:?set CATDOG_DATA_SOURCE to where the lab photos go}"
cache=${CATDOG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/catdog}

pretrained_data=${CATDOG_DATA_DIR:-${CATDOG_LAB_DIR:-.}/data}/pretrained

# Every sample is drawn and counted before any training: a source too small for the build args fails here,
# in seconds, saying which build arg to lower (not after minutes of training).
check_sample() {  # FOLDER WANTED WHAT
  python - "$@" <<'EOF'
import csv, sys
folder, wanted, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(f"{folder}/manifest.csv", newline="") as stream:
    classes = [row["class"] for row in csv.DictReader(stream)]
short = {label: classes.count(label) for label in ("cat", "dog") if classes.count(label) < wanted}
if short:
    sys.exit(f"bake-image.sh: the photo source (DATA_SOURCE) holds too few usable photos for {what}: "
             + ", ".join(f"{count} {label}s" for label, count in short.items()) + f" where {wanted} are needed. "
             "The image takes LAB_PER_CLASS + EVAL_PER_CLASS + PRETRAINED_PER_CLASS distinct photos of each class: "
             "lower the build arg EVAL_PER_CLASS (or PRETRAINED_PER_CLASS), or give a larger DATA_SOURCE.")
EOF
}
catdog data prepare --source "$source" --per-class "$((lab_per_class + eval_per_class))" \
  --out "$CATDOG_DATA_SOURCE" --no-progress
check_sample "$CATDOG_DATA_SOURCE" "$((lab_per_class + eval_per_class))" \
  "the lab's pool (LAB_PER_CLASS=$lab_per_class + EVAL_PER_CLASS=$eval_per_class of each class)"
# The pretrained head never trains on a photo of the pool: the lab validates and notebook 02 evaluates on it.
catdog data prepare --source "$source" --per-class "$pretrained_per_class" --out "$pretrained_data" \
  --exclude-from "$CATDOG_DATA_SOURCE" --no-progress \
  || { echo "bake-image.sh: lower the build arg EVAL_PER_CLASS=$eval_per_class (or PRETRAINED_PER_CLASS), or give a larger DATA_SOURCE" >&2; exit 1; }
check_sample "$pretrained_data" "$pretrained_per_class" \
  "the pretrained model (PRETRAINED_PER_CLASS=$pretrained_per_class of each class beyond the pool's $((lab_per_class + eval_per_class)))"
catdog data prepare --per-class "$lab_per_class" --no-progress        # the lab's data/, from that pool
catdog train quick
catdog train pretrained --source "$pretrained_data" --no-progress
zero_shot=$(mktemp -d)
catdog train pretrained --head imagenet --out "$zero_shot/zero-shot.keras"  # caches the 1000-class weights
rm -rf "$zero_shot" "$cache"
# The weights' hashes, when the mirror knows them (WEIGHTS_SHA256="FILE=SHA256,FILE=SHA256"): any other
# bytes fail the build, so no image ships them.
if [ -n "${WEIGHTS_SHA256:-}" ]; then
  IFS=, read -ra expected <<<"$WEIGHTS_SHA256"
  for pair in "${expected[@]}"; do
    echo "${pair#*=}  ${KERAS_HOME:-$HOME/.keras}/models/${pair%%=*}"
  done | sha256sum --check --strict
fi
