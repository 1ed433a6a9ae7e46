#!/usr/bin/env bash
# The programs `make test` needs beyond Python: Chromium and ChromeDriver, for the browser walks through
# the lab (tests/test_lab_browser.py, tests/test_image.py); podman, runc and mmdebstrap, to build and run
# the container image (tests/test_image.py); haproxy, what OpenShift's router runs, in front of the pods
# played from the manifests (tests/test_image.py); promtool, to unit-test the alerts (tests/test_deploy.py). Installs the missing Debian packages when it can (root with apt-get, as in CI);
# otherwise names what is missing and fails, so no test is ever skipped quietly.
set -euo pipefail
# promtool alone, from Debian's prometheus package (not the server, which would be set up to run).
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing promtool (from Debian's prometheus package) for the alert tests"
  unpack=$(mktemp -d)
  apt-get update -qq
  (cd "$unpack" && apt-get download -qq prometheus)
  dpkg -x "$unpack"/prometheus_*.deb "$unpack/root"
  install -m 755 "$unpack/root/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$unpack"
fi
declare -A package_of=([chromium]=chromium [chromedriver]=chromium-driver [podman]=podman [runc]=runc
                       [mmdebstrap]=mmdebstrap [promtool]=prometheus [haproxy]=haproxy)
missing=()
for program in chromium chromedriver podman runc mmdebstrap promtool haproxy; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$program" >/dev/null || missing+=("${package_of[$program]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing ${missing[*]} (Debian packages) for the browser, container image and alert tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "make test needs ${missing[*]} for the browser, container image and alert tests, and cannot install them here." >&2
echo "On Debian or Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
echo "(or point CATDOG_CHROMIUM and CATDOG_CHROMEDRIVER at a Chromium and its matching driver)" >&2
exit 1
