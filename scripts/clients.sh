#!/usr/bin/env bash
# Installs the real clients the tests run through Airlock (wgpu for Python, with numpy) into
# target/clients-venv, if they are not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/clients-venv
req=workloads/clients/requirements.txt
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.txt"; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
cp "$req" "$venv/requirements.txt"
echo "clients installed in $venv"
