#!/usr/bin/env bash
# scripts/fuzz.sh [seconds-per-target [target...]]: runs cargo-fuzz targets (fuzz/; default
# all three) for a bounded time each (default 60 s) on the committed seeds, on stable Rust (`--sanitizer none` needs no nightly).
# Needs a C++ compiler (libFuzzer is built from source) and the host driver (lavapipe).
# New corpus entries and crash inputs go to a temporary directory, never into fuzz/. A crash
# fails the run and names its input: copy it to fuzz/regressions/<target>/, fix the bug, and
# `cargo test -p server --test fuzz` replays it from then on.
#
# scripts/fuzz.sh --hours N [--workers K] [target...]: a long run of each target (default
# decoder and server_stream) for N hours (decimals allowed), on K processes (default: one per
# core) sharing a corpus kept in fuzz/corpus/<target>/ (ignored by git; later runs go on from
# it). A worker that crashes leaves its input in fuzz/artifacts/<target>/ and is restarted with
# another seed. At the end the corpus is minimised (libFuzzer's -merge) and a row is appended to
# the fuzzing table of SECURITY.md: date, commit, target, executions, rate, coverage, findings.
set -euo pipefail
if [ "${1:-}" = "--hours" ]; then
    exec bash "$(dirname "$0")/fuzz-long.sh" "${@:2}"
fi
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(server_stream decoder control)
cd "$(dirname "$0")/../fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fuzz build --sanitizer none
status=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "$work/artifacts/$target"
    # The outer timeout: without a sanitizer, a crash that corrupted the heap can hang
    # libFuzzer's own crash handler; that still fails the run.
    # The inputs being run, kept in case a crash hangs libFuzzer before it saves one (and, for
    # server_stream, the inputs before it whose kept objects the crash may need).
    export AIRLOCK_FUZZ_LAST="$work/$target.last"
    set +e
    timeout --kill-after=10 $((secs + 60)) \
        cargo fuzz run --sanitizer none "$target" "$work/$target" "seeds/$target" -- \
        -max_total_time="$secs" -seed=1 -timeout=60 -rss_limit_mb=4096 \
        -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 \
        >"$work/$target.log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
        "$work/$target.log" | sed "s/^/$target: /" || true
    echo "$target: corpus $(find "$work/$target" "seeds/$target" -type f | wc -l) inputs, rc $rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -n 40 "$work/$target.log"
        if [ -s "$AIRLOCK_FUZZ_LAST" ] && [ "$target" = server_stream ]; then
            echo "$target: the inputs up to the crash (replay: airlock-replay --fuzz --seeds fuzz/seeds/server_stream --history FILE; base64):"
            base64 -w0 "$AIRLOCK_FUZZ_LAST"
            echo
        elif [ -z "$(ls -A "$work/artifacts/$target")" ] && [ -s "$AIRLOCK_FUZZ_LAST" ]; then
            cp "$AIRLOCK_FUZZ_LAST" "$work/artifacts/$target/last-input"
        fi
        for a in "$work/artifacts/$target"/*; do
            [ -e "$a" ] || continue
            echo "$target: crash input (base64; save it to fuzz/regressions/$target/):"
            base64 -w0 "$a"
            echo
        done
    fi
done
exit "$status"
