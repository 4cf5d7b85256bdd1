#!/usr/bin/env bash
# Detection's cost over the plain scan on every traffic shape the generator makes, and on
# gzip input: prints one line per log with both times (hyperfine, single thread) and the
# ratio, and with CALLGRIND=1 the instruction counts too.
#
# Usage: benches/detect-shapes.sh [LINES] [DIR]
#   LINES  lines per log (default 1000000)
#   DIR    where the logs are written (default /tmp/logward-shapes), reused when present
# Needs hyperfine; valgrind when CALLGRIND=1. Builds the release binary first.
set -euo pipefail

lines=${1:-1000000}
dir=${2:-/tmp/logward-shapes}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --features generator --manifest-path "$root/Cargo.toml"
logward="${CARGO_TARGET_DIR:-$root/target}/release/logward"
mkdir -p "$dir"

profiles=(week busy-day steady crawlers nat scanners)
for p in "${profiles[@]}"; do
    log="$dir/$p-$lines.log"
    [ -s "$log" ] || "$logward" generate --seed 1 --lines "$lines" --attacks --profile "$p" >"$log"
done
for p in week crawlers; do
    log="$dir/$p-$lines.log"
    [ -s "$log.gz" ] || gzip -6 -k "$log"
done

mean_ms() { # the mean of a hyperfine JSON export, in ms
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["mean"]*1000, 1))' "$1"
}

printf '%-22s %12s %12s %7s %s\n' log no-detect detection ratio instructions
for log in "${profiles[@]/%/-$lines.log}" "week-$lines.log.gz" "crawlers-$lines.log.gz"; do
    path="$dir/$log"
    plain=(scan --threads 1 --no-store --no-detect -o json "$path")
    detect=(scan --threads 1 --no-store -o json "$path")
    hyperfine -N -w 1 -r 10 --export-json "$dir/plain.json" "$logward ${plain[*]}" >/dev/null 2>&1
    hyperfine -N -w 1 -r 10 --export-json "$dir/detect.json" "$logward ${detect[*]}" >/dev/null 2>&1
    a=$(mean_ms "$dir/plain.json")
    b=$(mean_ms "$dir/detect.json")
    ratio=$(python3 -c "print(f'{$b/$a:.2f}')")
    instr=""
    if [ "${CALLGRIND:-0}" = 1 ]; then
        count() {
            valgrind --tool=callgrind --callgrind-out-file=/dev/null "$logward" "$@" 2>&1 >/dev/null |
                sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
        }
        ia=$(count "${plain[@]}")
        ib=$(count "${detect[@]}")
        instr="$((ia / 1000000))M / $((ib / 1000000))M = $(python3 -c "print(f'{$ib/$ia:.2f}')")"
    fi
    printf '%-22s %9s ms %9s ms %6sx %s\n' "$log" "$a" "$b" "$ratio" "$instr"
done
