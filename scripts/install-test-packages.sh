#!/usr/bin/env bash
# Install the Debian packages the test suite needs. Idempotent: does nothing when all are present.
# Needs root (or passwordless sudo) only when something is missing.
set -euo pipefail
packages=(
  # PostgreSQL client tools: the store tests check the server with pg_isready
  postgresql-client
  # the dashboard's end-to-end tests drive Debian's Chromium (headless) through Playwright
  chromium
  # libvirt-python (a dev dependency) builds against libvirt's headers, found with pkg-config;
  # its test driver (test:///default) is the KVM inventory tests' peer
  libvirt-dev
  pkg-config
  # the vSphere connector's peer: govmomi's vCenter simulator, built offline from Debian's
  # Go sources of govmomi
  golang-go
  golang-github-vmware-govmomi-dev
  # the KVM host peer: a Debian root made with debootstrap, reached through a real OpenSSH
  # server on a loopback address, upgraded from a local apt repository (dpkg-dev indexes it)
  debootstrap
  openssh-server
  openssh-client
  dpkg-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "not a Debian system: please install ${missing[*]} yourself" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
