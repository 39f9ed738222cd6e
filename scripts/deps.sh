#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Airlock needs, if any is missing.
set -euo pipefail
# g++: libFuzzer, which the fuzz targets (scripts/fuzz.sh) build from source. ffmpeg: a real
# client of the tests (its Vulkan filters). xvfb, libx11-xcb1, libxcb-shm0: the window tests'
# X server and the libraries the ICD presents through (vkcube, vkcubepp: vulkan-tools). weston:
# the Wayland tests' compositor (headless, with its screenshooter). systemd: systemd-socket-activate,
# with which a test runs the installed per-user socket unit without a systemd user instance.
# Arguments: more packages, for scripts that need them.
pkgs=(mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools vulkan-validationlayers glslang-tools g++ ffmpeg xvfb libx11-xcb1 libxcb-shm0 weston libwayland-client0 systemd "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is needed: install Rust from rustup.rs" >&2; exit 1; }
