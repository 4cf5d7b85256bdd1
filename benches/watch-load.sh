#!/usr/bin/env bash
# Load test of `logward watch`: a writer appends the generated 1M-line log to a followed file
# as fast as it can (cat), or at RATE lines per second, and we measure when watch has
# processed every line (from its --stats-file), its backlog while it runs, and its peak RSS.
# Then a single-threaded `logward scan` of the same file, for comparison.
# Prints markdown for benches/RESULTS-watch.md.
#
# Usage: benches/watch-load.sh
# Environment: LINES (default 1000000), SEED (default 1), RATE (lines/s for a paced second
# run, default 100000; 0 skips it), INTERVAL (watch --interval, default 250ms).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LINES=${LINES:-1000000}
SEED=${SEED:-1}
RATE=${RATE:-100000}
INTERVAL=${INTERVAL:-250ms}
DATA=$ROOT/target/bench-data
LOG=$DATA/access-$SEED-$LINES.log
LOGWARD=$ROOT/target/release/logward
WORK=$(mktemp -d)
WATCH_PID=
cleanup() {
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

cargo build --release --quiet --bin logward --example genlog
mkdir -p "$DATA"
if [ ! -s "$LOG" ]; then
    log "generating $LOG"
    cargo run --release --quiet --example genlog -- --seed "$SEED" --lines "$LINES" --attacks -o "$LOG"
fi
TOTAL=$(wc -l < "$LOG")
BYTES=$(stat -c %s "$LOG")

stats_lines() {
    sed -n 's/.*"lines":\([0-9]*\).*/\1/p' "$WORK/stats.json" 2> /dev/null | head -1
}

# run_watch NAME WRITER...: follows an empty file while WRITER appends $LOG to it.
run_watch() {
    local name=$1
    shift
    local dir=$WORK/$name
    mkdir -p "$dir/logs"
    : > "$dir/logs/access.log"
    rm -f "$WORK/stats.json"
    "$LOGWARD" watch --interval "$INTERVAL" --status-every 1s --store "$dir/state/logward.db" \
        --stats-file "$WORK/stats.json" "$dir/logs/access.log" 2> "$dir/watch.stderr" &
    WATCH_PID=$!
    until grep -q "following from" "$dir/watch.stderr" 2> /dev/null; do sleep 0.05; done
    local t0 t1 t2
    t0=$(now)
    "$@" "$dir/logs/access.log"
    t1=$(now)
    until [ "$(stats_lines)" = "$TOTAL" ]; do sleep 0.02; done
    t2=$(now)
    local rss cpu
    rss=$(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$WATCH_PID/status")
    # User + system CPU seconds: unlike wall time, not inflated by other load on the machine.
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$WATCH_PID/stat")
    kill -TERM "$WATCH_PID"
    wait "$WATCH_PID" || true
    WATCH_PID=
    local backlog flagged
    backlog=$(sed -n 's/.*backlog \([0-9]*\) bytes.*/\1/p' "$dir/watch.stderr" | sort -n | tail -1)
    flagged=$(grep -c "logward: flagged " "$dir/watch.stderr" || true)
    local total_s behind rate
    total_s=$(secs "$t0" "$t2")
    behind=$(secs "$t1" "$t2")
    rate=$(awk -v n="$TOTAL" -v s="$total_s" 'BEGIN { printf "%.0f", n / s }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(secs "$t0" "$t1")" "$total_s" \
        "$rate" "$behind" "${backlog:-0}" "$cpu" "$rss" "$flagged"
}

write_fast() { cat "$LOG" >> "$1"; }

# Appends RATE lines per second, in tenth-of-a-second slices.
write_paced() {
    python3 - "$LOG" "$1" "$RATE" << 'EOF'
import sys, time
src, dst, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
per = max(1, rate // 10)
with open(src, 'rb') as f, open(dst, 'ab', buffering=0) as out:
    lines = f.readlines()
    start = time.monotonic()
    for i in range(0, len(lines), per):
        out.write(b''.join(lines[i:i + per]))
        delay = start + (i + per) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
EOF
}

echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "Commit: $(git -C "$ROOT" rev-parse --short HEAD)"
echo "Input: $LOG ($TOTAL lines, $BYTES bytes; genlog --seed $SEED --lines $LINES --attacks)"
echo
echo "| writer | written in (s) | all processed after (s) | lines/s | behind writer at end (s) | max backlog (bytes) | watch CPU (s) | peak RSS | flags |"
echo "|---|---|---|---|---|---|---|---|---|"
run_watch "cat (as fast as possible)" write_fast
if [ "$RATE" != 0 ] && command -v python3 > /dev/null; then
    run_watch "paced, $RATE lines/s" write_paced
fi
echo
best=
bestcpu=
TIMEFORMAT='%U %S'
for _ in 1 2 3; do
    t0=$(now)
    cpu=$({ time "$LOGWARD" scan --threads 1 --no-store --no-progress "$LOG" > /dev/null 2> /dev/null; } 2>&1 |
        awk '{ printf "%.2f", $1 + $2 }')
    t=$(secs "$t0" "$(now)")
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; bestcpu=$cpu; fi
done
echo "logward scan --threads 1 --no-store --no-progress $LOG: best of 3 $best s" \
    "($bestcpu s CPU), $(awk -v n="$TOTAL" -v s="$best" 'BEGIN { printf "%.0f", n / s }') lines/s"
