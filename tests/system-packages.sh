#!/usr/bin/env bash
# The system packages `make` needs, beyond Python packages: installs the missing ones with
# apt-get when run as root on Debian/Ubuntu, else stops at once with the one command to run.
#   tests/system-packages.sh run    python3-venv (make run, make install)
#   tests/system-packages.sh test   + Node.js/npm (ali-oss tests), Prometheus Pushgateway and
#                                   promtool (metrics and alert-rule tests), kubectl (manifests),
#                                   chromium (tests/browser: picscore report's page, headless)
set -euo pipefail
target="${1:-run}"

missing() {
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || echo python3-venv
  if [ "$target" = test ]; then
    command -v node >/dev/null 2>&1 || echo nodejs
    command -v npm >/dev/null 2>&1 || echo npm
    [ -x /usr/bin/prometheus-pushgateway ] || echo prometheus-pushgateway
    command -v promtool >/dev/null 2>&1 || echo prometheus
    command -v kubectl >/dev/null 2>&1 || echo kubernetes-client
    command -v chromium >/dev/null 2>&1 || echo chromium
  fi
}

need=$(missing | tr '\n' ' ')
[ -z "${need// }" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: $need" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # A package's post-install step may fail without a service manager (containers); what counts
  # is whether the commands are there afterwards.
  # shellcheck disable=SC2086
  apt-get install -y -qq $need >/dev/null || true
  need=$(missing | tr '\n' ' ')
  [ -z "${need// }" ] && exit 0
  echo "apt-get could not install: $need" >&2
  exit 1
fi
echo "make $target needs these system packages: $need" >&2
echo "install them, then run make again:  sudo apt-get install -y $need" >&2
exit 1
