#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only those missing:
#   chromium        headless browser for the dashboard and browser-SDK tests (with
#                   fonts-liberation, its recommended fonts, so screenshots have real text)
#   docker-compose  (v1) validates docker-compose.yml offline with `docker-compose config -q`
#   haproxy         the load balancer of the replicated deployment (deploy/haproxy/haproxy.cfg),
#                   which the tests run on loopback in front of real Nodes
# Runs as root (CI images and the dev containers); as another user it only reports what is missing.
set -euo pipefail

declare -A needs=(
    [chromium]=/usr/bin/chromium
    [docker-compose]=/usr/bin/docker-compose
    [haproxy]=/usr/sbin/haproxy
)
missing=()
for package in "${!needs[@]}"; do
    test -x "${needs[$package]}" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]} (run this script as root to install them)" >&2
    exit 1
fi
if [[ " ${missing[*]} " == *" chromium "* ]]; then
    missing+=(fonts-liberation)
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
