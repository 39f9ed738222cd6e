#!/usr/bin/env bash
# The long-run mode of scripts/fuzz.sh: `scripts/fuzz.sh --hours N [--workers K] [target...]`
# (see there). Figures go to SECURITY.md's fuzzing table; crash inputs to fuzz/artifacts/.
set -euo pipefail
hours="${1:?usage: scripts/fuzz.sh --hours N [--workers K] [target...]}"
shift
workers=$(nproc)
if [ "${1:-}" = "--workers" ]; then
    workers="$2"
    shift 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decoder server_stream)
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cargo fuzz build --sanitizer none
secs=$(awk -v h="$hours" 'BEGIN { s = int(h * 3600); print (s > 0 ? s : 1) }')
commit=$(git -C "$root" rev-parse --short HEAD)
[ -z "$(git -C "$root" status --porcelain -- wire server fuzz)" ] || commit="$commit+changes"
bin="target/x86_64-unknown-linux-gnu/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for target in "${targets[@]}"; do
    corpus="corpus/$target"
    artifacts="artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    end=$(($(date +%s) + secs))
    echo "$target: $workers workers for $secs s, corpus $corpus ($(find "$corpus" -type f | wc -l) inputs)"
    # Each worker: libFuzzer runs until the time is up, restarted with a new seed after a crash.
    for w in $(seq 1 "$workers"); do
        (
            run=0
            while [ "$(date +%s)" -lt "$end" ]; do
                run=$((run + 1))
                left=$((end - $(date +%s)))
                [ "$left" -gt 0 ] || break
                log="$work/$target.$w.$run.log"
                rc=0
                AIRLOCK_FUZZ_LAST="$work/$target.$w.last" timeout --kill-after=10 $((left + 120)) \
                    "$bin/$target" "$corpus" "seeds/$target" -max_total_time="$left" \
                    -seed=$((w * 1000 + run)) -reload=60 -timeout=60 -rss_limit_mb=4096 \
                    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
                if [ "$rc" -ne 0 ]; then
                    echo "$target: worker $w run $run exited $rc; its log: $artifacts/$(basename "$log")"
                    echo "$w $run $rc" >>"$work/$target.findings"
                    cp "$log" "$artifacts/"
                    # server_stream: the inputs of the generation, for airlock-replay --history.
                    if [ -s "$work/$target.$w.last" ]; then
                        cp "$work/$target.$w.last" "$artifacts/history-$w-$run"
                    fi
                fi
            done
        ) &
    done
    wait
    execs=0
    for log in "$work/$target".*.log; do
        n=$(grep -h '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1)
        if [ -z "$n" ]; then
            # A run that crashed prints no final stats: its last progress line.
            n=$(grep -ohE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
        fi
        execs=$((execs + ${n:-0}))
    done
    found=0
    if [ -f "$work/$target.findings" ]; then
        found=$(wc -l <"$work/$target.findings")
    fi
    # Minimised: the smallest set of inputs with the coverage of all.
    min="$work/$target.min"
    mkdir -p "$min"
    "$bin/$target" -merge=1 "$min" "$corpus" >"$work/$target.merge.log" 2>&1
    rm -rf "$corpus" && mv "$min" "$corpus"
    cov=$("$bin/$target" -runs=0 "$corpus" 2>&1 | grep -oE 'INITED cov: [0-9]+ ft: [0-9]+' | tail -n 1 |
        awk '{print $3 " edges, " $5 " features"}')
    inputs=$(find "$corpus" -type f | wc -l)
    rate=$(awk -v e="$execs" -v s="$secs" -v w="$workers" 'BEGIN { printf "%d/s on %d processes", e / s, w }')
    row="| $(date +%F) | $commit | \`$target\` | $(printf "%'d" "$execs") ($hours h, scripts/fuzz.sh --hours) | $rate | $cov, corpus $inputs inputs | $([ "$found" -eq 0 ] && echo none || echo "$found crashed runs, inputs in fuzz/artifacts/$target/") |"
    echo "$row"
    # After the table's last row.
    awk -v row="$row" '
        /^## Fuzzing/ { in_section = 1 }
        in_section && /^\| [0-9][0-9][0-9][0-9]-/ { last = NR }
        { lines[NR] = $0 }
        END { for (i = 1; i <= NR; i++) { print lines[i]; if (i == last) print row } }
    ' "$root/SECURITY.md" >"$work/SECURITY.md" && cp "$work/SECURITY.md" "$root/SECURITY.md"
    if [ "$found" -gt 0 ]; then
        echo "$target: $found new inputs in fuzz/artifacts/$target/: copy each to fuzz/regressions/$target/ once fixed"
    fi
done
