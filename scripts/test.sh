#!/usr/bin/env bash
# The test suite: generated code fresh, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo run -q -p codegen -- --check
cargo fmt --all -- --check
cargo clippy -q --workspace --all-targets -- -D warnings
# Integration tests start the server binary and load the ICD from target/debug.
cargo build -q --workspace --all-targets
cargo test -q --workspace
