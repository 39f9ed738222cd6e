#!/usr/bin/env bash
# The main job: builds Airlock and runs Vulkan programs through it, on lavapipe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release -p icd -p server
cargo build --release -p icd --example airlock_hello
cargo build --release -p workloads --bin airlock-render --bin airlock-present
manifest="$PWD/target/release/airlock_icd.x86_64.json"
export VK_DRIVER_FILES="$manifest" VK_ICD_FILENAMES="$manifest"
# Without a session bus, Mesa's device-select layer complains; give it a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
echo "== vulkaninfo --summary through Airlock ($manifest)"
vulkaninfo --summary
echo
echo "== airlock_hello through Airlock"
target/release/examples/airlock_hello
echo
echo "== airlock-render through Airlock: an offscreen scene (MSAA, depth, blending, a texture)"
target/release/airlock-render --out "$PWD/airlock-render.png"
if [ -n "${DISPLAY:-}" ]; then
  echo
  echo "== a window through Airlock on $DISPLAY: vkcube for 300 frames, then airlock-present's checked frames"
  vkcube --c 300
  target/release/airlock-present --surface xcb --frames 300 --size 500
elif [ -n "${WAYLAND_DISPLAY:-}" ]; then
  echo
  echo "== a Wayland window through Airlock on $WAYLAND_DISPLAY: vkcube-wayland for 300 frames"
  vkcube-wayland --c 300
else
  echo
  echo "== no DISPLAY: 100 frames to a headless surface through Airlock (set DISPLAY, e.g. Xvfb :1 &, or WAYLAND_DISPLAY, for a window)"
  target/release/airlock-present --surface headless --frames 100
fi
