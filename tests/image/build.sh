#!/usr/bin/env bash
# Build the real Containerfile as CI does, with no registry and no internet but the package index:
#   tests/image/build.sh [IMAGE]          (default IMAGE: localhost/catdog:test)
# 1. a UBI-shaped stand-in base (tests/image/ubi-standin) on a Debian bookworm rootfs made by mmdebstrap;
# 2. a local HTTP mirror on 127.0.0.1 serving the photo archive and the ImageNet weights from ../shared,
#    passed as build args with their sha256 (a disconnected cluster's mirror);
# 3. `podman build` in podman's default OCI format, with this machine's CA bundle as the build's extra CA.
# Needs podman, runc and mmdebstrap (scripts/system-packages.sh installs them), $SHARED (default ../shared).
# Bake sizes: LAB_PER_CLASS (default: the Containerfile's), EVAL_PER_CLASS (default 150: ../shared's 1000
# Kaggle photos per class cannot hold the Containerfile's pool of 1000 beside 500 for the pretrained model;
# CI's notebooks run at small sizes), PRETRAINED_PER_CLASS (default 200, not the Containerfile's 500: the
# head scores the same on the pool's unseen photos, and the build, on the suite's critical path, takes
# ~40 s less).
# NO_CACHE=1: build every layer afresh (to time a cold build).
# Prints the build's seconds and the image's size as `image: IMAGE built in N s, SIZE bytes`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${1:-localhost/catdog:test}
shared=$(cd "${SHARED:-$repo/../shared}" && pwd)
rootfs_image=localhost/catdog-bookworm-rootfs:latest
standin_image=localhost/catdog-ubi-standin:test
# runc (crun fails on hybrid cgroups), explicit ulimits, host network (to reach the mirror): see
# tests/image/containers.conf. A caller's own CONTAINERS_CONF wins.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
work=$(mktemp -d)
mirror_pid=""
cleanup() {
  [ -z "$mirror_pid" ] || kill "$mirror_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! podman image exists "$rootfs_image"; then
  echo "base: Debian bookworm rootfs (mmdebstrap)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$work/rootfs.tar"
  podman import --quiet "$work/rootfs.tar" "$rootfs_image" >/dev/null
  rm "$work/rootfs.tar"
fi
podman build --quiet --tag "$standin_image" --build-arg ROOTFS="$rootfs_image" "$here/ubi-standin" >/dev/null

# The mirror: the Kaggle photos as one tar archive (its hash is the mirror's, computed as it is made), and
# the weights with the hashes ../shared/SHA256SUMS publishes for them.
mkdir -p "$work/mirror/weights"
tar -C "$shared/datasets/kaggle-dev" -cf "$work/mirror/photos.tar" cat dog
data_sha256=$(sha256sum "$work/mirror/photos.tar" | cut -d' ' -f1)
weights_sha256=""
for file in mobilenet_7_5_224_tf.h5 mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5; do
  ln -s "$shared/models/imagenet/$file" "$work/mirror/weights/$file"
  sha=$(awk -v want="./models/imagenet/$file" '$2 == want {print $1}' "$shared/SHA256SUMS")
  [ -n "$sha" ] || { echo "no sha256 for $file in $shared/SHA256SUMS" >&2; exit 1; }
  weights_sha256+="${weights_sha256:+,}$file=$sha"
done
port=$("${PYTHON:-$repo/.venv/bin/python}" -m catdog.broker)  # catdog.broker.free_port, as the tests use
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/mirror" >"$work/mirror.log" 2>&1 &
mirror_pid=$!
for _ in $(seq 1 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

ca_args=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then  # pip behind this machine's TLS-inspecting proxy
  ca_args=(--volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca.pem:ro --build-arg CA_BUNDLE=/run/build-ca.pem)
fi
size_args=()
EVAL_PER_CLASS=${EVAL_PER_CLASS:-150}
PRETRAINED_PER_CLASS=${PRETRAINED_PER_CLASS:-200}
for name in LAB_PER_CLASS PRETRAINED_PER_CLASS EVAL_PER_CLASS; do
  [ -z "${!name:-}" ] || size_args+=(--build-arg "$name=${!name}")
done
[ -z "${NO_CACHE:-}" ] || size_args+=(--no-cache)
# The image this build replaces: left untagged, each rebuild would keep ~2 GB of layers (the disk is shared
# with other machines here, and CI once failed its build with "no space left on device").
replaced=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
started=$(date +%s)
podman build --tag "$image" \
  --build-arg BASE_IMAGE="$standin_image" \
  --build-arg DATA_SOURCE="http://127.0.0.1:$port/photos.tar" --build-arg DATA_SHA256="$data_sha256" \
  --build-arg WEIGHTS_URL="http://127.0.0.1:$port/weights/" --build-arg WEIGHTS_SHA256="$weights_sha256" \
  "${ca_args[@]}" "${size_args[@]}" "$repo"
seconds=$(($(date +%s) - started))
if [ -n "$replaced" ] && [ "$replaced" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
  podman rmi "$replaced" >/dev/null 2>&1 || true  # still used by a container: kept
fi
echo "image: $image built in $seconds s, $(podman image inspect --format '{{.Size}}' "$image") bytes"
