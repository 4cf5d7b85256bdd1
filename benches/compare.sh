#!/usr/bin/env bash
# End-to-end comparison of logward with peer tools on a generated 1M-line combined log: prints a markdown table (command, mean time, MB/s, peak RSS) for benches/RESULTS.md.
#
# Usage: benches/compare.sh [SECTION...]   sections: scan anonymize search detection (default: all)
# Environment: RUNS (hyperfine runs, default 5), LINES (default 1000000), SEED (default 1).
# A section whose logward subcommand does not exist prints "skipped: ..." and its peers still run;
# a peer that cannot be installed is skipped with a message.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=$ROOT/target/bench-data
LINES=${LINES:-1000000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
LOG=$DATA/access-$SEED-$LINES.log
GZ=$LOG.gz
LOGWARD=$ROOT/target/release/logward
GENLOG=$ROOT/target/release/examples/genlog
WORK=$(mktemp -d)
ROWS=$WORK/rows.md
trap 'rm -rf "$WORK"' EXIT
: > "$ROWS"

log() { printf '%s\n' "$*" >&2; }

# ensure_tool COMMAND INSTALL...: true when COMMAND exists or INSTALL (run as root) provides it.
ensure_tool() {
    local cmd=$1
    shift
    command -v "$cmd" > /dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ]; then
        log "installing $cmd: $*"
        "$@" > "$WORK/install.log" 2>&1 || true
    fi
    command -v "$cmd" > /dev/null 2>&1 && return 0
    log "skipped: $cmd not available (install failed or not root)"
    return 1
}

apt_install() {
    [ -f "$WORK/apt-updated" ] || { apt-get update -qq && touch "$WORK/apt-updated"; }
    apt-get install -y "$@"
}

has_logward() {
    # A binary without the subcommand may still exit 0, so the help text must be clap's.
    if "$LOGWARD" "$1" --help > "$WORK/help" 2>&1 && grep -q '^Usage:' "$WORK/help"; then
        return 0
    fi
    log "skipped: logward $1 not available"
    return 1
}

build() {
    log "building logward (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin logward --example genlog)
}

make_data() {
    mkdir -p "$DATA"
    if [ ! -s "$LOG" ]; then
        log "generating $LINES lines (seed $SEED) into $LOG"
        "$GENLOG" --seed "$SEED" --lines "$LINES" --format combined -o "$LOG.tmp"
        mv "$LOG.tmp" "$LOG"
    fi
    if [ ! -s "$GZ" ]; then
        gzip -6 -k -f "$LOG"
    fi
}

size_of() { stat -c %s "$1"; }

# measure NAME INPUT_BYTES COMMAND [PREPARE]: mean time (hyperfine), throughput over
# INPUT_BYTES, and peak RSS (/usr/bin/time -v) of COMMAND run by bash; one table row.
measure() {
    local name=$1 bytes=$2 cmd=$3 prepare=${4:-true}
    log "measuring: $name"
    if ! bash -c "$prepare" || ! bash -c "$cmd" > /dev/null 2> "$WORK/err"; then
        log "skipped: $name failed: $(head -c 300 "$WORK/err")"
        return 0
    fi
    hyperfine --style basic --warmup 1 --runs "$RUNS" --prepare "$prepare" \
        --export-json "$WORK/h.json" -- "$cmd" > /dev/null 2>&1
    local mean
    mean=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$WORK/h.json")
    bash -c "$prepare"
    /usr/bin/time -v -o "$WORK/time" bash -c "$cmd" > /dev/null 2>&1
    local rss_kb
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time")
    # The name goes through the environment: awk -v would expand its backslashes.
    NAME=${name//|/\\|} awk -v m="$mean" -v b="$bytes" -v r="$rss_kb" 'BEGIN {
        printf "| `%s` | %.3f s | %.0f | %.1f MB |\n", ENVIRON["NAME"], m, b / m / 1e6, r / 1024 }' >> "$ROWS"
}

section_scan() {
    if has_logward scan; then
        measure "logward scan --threads 1 --no-detect --output json FILE" "$(size_of "$LOG")" \
            "'$LOGWARD' scan --threads 1 --no-detect --output json '$LOG' > /dev/null"
        measure "logward scan --threads 1 --no-detect --output json FILE.gz" "$(size_of "$LOG")" \
            "'$LOGWARD' scan --threads 1 --no-detect --output json '$GZ' > /dev/null"
    fi
    measure "gzip -dc FILE.gz" "$(size_of "$LOG")" "gzip -dc '$GZ' > /dev/null"
    measure "wc -l FILE" "$(size_of "$LOG")" "wc -l '$LOG' > /dev/null"
    if ensure_tool goaccess apt_install goaccess; then
        measure "goaccess FILE --log-format=COMBINED -o report.json" "$(size_of "$LOG")" \
            "goaccess '$LOG' --log-format=COMBINED -o '$WORK/report.json' > /dev/null"
    fi
}

section_anonymize() {
    local copy=$WORK/anon.log
    if has_logward anonymize; then
        measure "logward anonymize FILE (copy)" "$(size_of "$LOG")" \
            "'$LOGWARD' anonymize '$copy'" "cp '$LOG' '$copy'"
        measure "logward anonymize FILE.gz (copy)" "$(size_of "$LOG")" \
            "'$LOGWARD' anonymize '$copy.gz'" "cp '$GZ' '$copy.gz'"
    fi
    if ensure_tool anonip pip install anonip; then
        measure "anonip --ipv4mask 8 < FILE" "$(size_of "$LOG")" \
            "anonip --ipv4mask 8 < '$LOG' > /dev/null"
    fi
    measure "sed -E 's/^([0-9]+\\.[0-9]+\\.[0-9]+)\\.[0-9]+/\\1.0/' FILE" "$(size_of "$LOG")" \
        "sed -E 's/^([0-9]+\\.[0-9]+\\.[0-9]+)\\.[0-9]+/\\1.0/' '$LOG' > /dev/null"
    measure "zcat FILE.gz | gzip -6" "$(size_of "$LOG")" "zcat '$GZ' | gzip -6 > /dev/null"
}

section_search() {
    # An address from the middle of the file, so no tool can stop early.
    local addr
    addr=$(sed -n "$((LINES / 2))p" "$LOG" | cut -d' ' -f1)
    if has_logward search; then
        measure "logward search ADDR FILE" "$(size_of "$LOG")" \
            "'$LOGWARD' search '$addr' '$LOG' > '$WORK/out'"
        measure "logward search ADDR FILE.gz" "$(size_of "$LOG")" \
            "'$LOGWARD' search '$addr' '$GZ' > '$WORK/out'"
    fi
    # Output goes to a file: GNU grep stops at the first match when stdout is /dev/null;
    # -a: the malformed lines hold raw bytes, and grep stops at "binary file matches".
    measure "grep -aF ADDR FILE" "$(size_of "$LOG")" "grep -aF '$addr' '$LOG' > '$WORK/out'"
    measure "zgrep -aF ADDR FILE.gz" "$(size_of "$LOG")" "zgrep -aF '$addr' '$GZ' > '$WORK/out'"
}

section_detection() {
    has_logward scan || return 0
    measure "logward scan --no-store FILE (detection)" "$(size_of "$LOG")" \
        "'$LOGWARD' scan --threads 1 --no-store --output json '$LOG' > /dev/null"
    if "$LOGWARD" scan --help 2> /dev/null | grep -q -- '--no-detect'; then
        measure "logward scan --no-store --no-detect FILE (parse only)" "$(size_of "$LOG")" \
            "'$LOGWARD' scan --threads 1 --no-store --no-detect --output json '$LOG' > /dev/null"
    else
        log "skipped: logward scan --no-detect not available"
    fi
}

main() {
    local sections=("$@")
    [ ${#sections[@]} -gt 0 ] || sections=(scan anonymize search detection)
    for s in "${sections[@]}"; do
        declare -F "section_$s" > /dev/null || { log "unknown section: $s"; exit 2; }
    done
    ensure_tool hyperfine apt_install hyperfine || exit 1
    [ -x /usr/bin/time ] || apt_install time > /dev/null 2>&1 || { log "/usr/bin/time missing"; exit 1; }
    build
    make_data
    for s in "${sections[@]}"; do
        section_"$s"
    done
    echo
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo);" \
        "commit $(git -C "$ROOT" rev-parse --short HEAD); $LINES lines, $(size_of "$LOG") bytes" \
        "($(size_of "$GZ") gzipped); mean of $RUNS runs."
    echo
    echo "| command | mean | MB/s | peak RSS |"
    echo "| --- | --- | --- | --- |"
    cat "$ROWS"
}

main "$@"
