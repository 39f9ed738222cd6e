#!/usr/bin/env bash
# The test suite: generated code fresh, formatting, lints, every test, then each fuzz target for
# a minute on the committed seeds (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# Real clients the tests run through Airlock (wgpu for Python), into target/clients-venv.
bash scripts/clients.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo run -q -p codegen -- --check
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy -q --workspace --all-targets -- -D warnings
# Integration tests start the server binary and load the ICD from target/debug.
cargo build -q --workspace --all-targets
log=$(mktemp)
cargo test -q --workspace 2>&1 | tee "$log"
bash scripts/fuzz.sh 60
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
