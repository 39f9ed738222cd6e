#!/usr/bin/env bash
# Installs the real clients the tests run through Airlock (wgpu for Python, Kompute, numpy) into
# target/clients-venv, if they are not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/clients-venv
req=workloads/clients/requirements.txt
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.txt"; then
  exit 0
fi
# Kompute builds from source against Debian's fmt, pybind11 and Vulkan headers (its own copies
# would come from GitHub).
bash scripts/deps.sh python3-venv python3-dev cmake libfmt-dev pybind11-dev
# Debian's Python with a plain PATH: Kompute's build looks for an interpreter on PATH.
plain=/usr/sbin:/usr/bin:/sbin:/bin
rm -rf "$venv"
PATH=$plain /usr/bin/python3 -m venv "$venv"
PATH="$PWD/$venv/bin:$plain" KOMPUTE_OPT_INSTALL=OFF KOMPUTE_OPT_USE_BUILT_IN_VULKAN_HEADER=OFF \
  KOMPUTE_OPT_USE_BUILT_IN_FMT=OFF KOMPUTE_OPT_USE_BUILT_IN_PYBIND11=OFF \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
cp "$req" "$venv/requirements.txt"
echo "clients installed in $venv"
