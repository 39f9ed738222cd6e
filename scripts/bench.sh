#!/usr/bin/env bash
# Benchmarks: Airlock against native lavapipe in the same run, plus the wire's own costs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" MESA_SHADER_CACHE_DISABLE=true
cargo build -q --release --workspace
# Native and Airlock, alternating, fresh processes, medians of AIRLOCK_BENCH_ROUNDS (3) rounds.
target/release/airlock-bench "$@"
cargo bench -q -p icd --bench roundtrip
cargo bench -q -p wire
