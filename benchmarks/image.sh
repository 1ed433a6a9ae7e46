#!/usr/bin/env bash
# The container image's build time and size, and where the size goes.
#   bash benchmarks/image.sh            (needs podman, runc, mmdebstrap and ../shared, as `make test`)
# A cold build (NO_CACHE=1: every layer afresh, packages downloaded from PyPI) by tests/image/build.sh,
# the disconnected path CI takes; then the image against its base, layer by layer, and the largest
# installed packages.
set -euo pipefail
cd "$(dirname "$0")/.."
image=localhost/catdog:bench
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/image/containers.conf}
NO_CACHE=1 bash tests/image/build.sh "$image" | grep '^image:'
base=$(podman image inspect --format '{{.Size}}' localhost/catdog-ubi-standin:test)
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "base (UBI stand-in): $((base / 1000000)) MB; image: $((size / 1000000)) MB ($(python3 -c "print(round($size / $base, 1))")x the base)"
echo "layers over 1 MB:"
podman history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$image" \
  | awk -F'\t' '$1 ~ /MB|GB/ {sub(/.*\/bin\/sh -c (#\(nop\) )?/, "", $2); print "  " $1 "\t" substr($2, 1, 80)}'
echo "largest installed packages:"
podman run --rm "$image" bash -c 'du -sm /opt/app-root/lib/python3.11/site-packages/* | sort -n | tail -6' \
  | awk '{printf "  %5d MB  %s\n", $1, $2}'
echo "baked lab (photos, data, models) and ImageNet weights:"
podman run --rm "$image" du -sm /opt/app-root/lab /opt/app-root/keras | awk '{printf "  %5d MB  %s\n", $1, $2}'
