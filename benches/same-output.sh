#!/usr/bin/env bash
# Runs two builds of logward on the same logs and says, command by command, whether they
# print the same bytes: the check for a change meant to keep behaviour (a refactor, a
# speed-up). Prints "same" or the diff per command; exits 1 when anything differs.
#
# Usage: benches/same-output.sh OLD NEW       (or: OLD=path NEW=path benches/same-output.sh)
#
# Inputs: the logs in sample-logs/ and, when present, every file under
# ../shared/corpus/logs/ beside the clone (CORPUS=DIR names another directory, CORPUS=
# none). Files are named one by one, so corpus files a directory walk would pass over are
# read too. jq is needed (to pick the addresses searched for).
#
# Compared, for each build in its own throwaway directory, as its exit status and standard
# output (STDERR=1 compares standard error too):
#   scan               scan -o json --no-store over the inputs
#   scan (store)       scan -o json into a throwaway store, then from that store:
#   flagged -o F       every output format, and --summary, --explain, --explain -o json
#   search             --source for the three busiest sources of the inputs, a v4 and a v6
#                      range; all of them with -o json, and with --count
#   anonymize          a copy of the inputs, truncated and pseudonymized (a fixed key), with
#                      --now fixed and --include-active: the report (-o json) and every
#                      resulting file, byte for byte
#
# Hermetic: LOGWARD_CONFIG is empty (no /etc/logward/logward.toml); LOGWARD_STORE,
# LOGWARD_AUDIT_KEY, HOME and XDG_STATE_HOME point into the throwaway directory, so neither
# build reads or writes this host's store, audit log or keys; anonymize runs on copies.
#
# Normalised with sed before comparing, because they depend on the clock, not the build:
# scan's "elapsed_s" (the run's wall time), flagged's "remaining" (ban seconds left when
# queried) and the nftables export's "# logward flagged sources at TIME" header, and the
# "recorded_at" of --explain -o json (when the scan recorded the episode). scan's text
# summary (throughput) is not compared. The inputs' events are weeks older than
# --ban-window, so no ban is active and every other time printed comes from the logs. The
# corpus holds a bzip2 file, which every command reports as unsupported (exit status 2).
#
# Environment: KEEP=1 keeps the work directory (its path is printed); DIFF_LINES (default
# 20) caps each diff shown.
set -euo pipefail

old=${1:-${OLD:-}}
new=${2:-${NEW:-}}
if [ -z "$old" ] || [ -z "$new" ]; then
    echo "usage: benches/same-output.sh OLD NEW   (or OLD=... NEW=... benches/same-output.sh)" >&2
    exit 2
fi
for bin in "$old" "$new"; do
    [ -x "$bin" ] && [ -f "$bin" ] || { echo "same-output: $bin: not an executable file" >&2; exit 2; }
done
old=$(realpath "$old")
new=$(realpath "$new")
cd "$(dirname "$0")/.."
root=$PWD
command -v jq >/dev/null || { echo "same-output: needs jq" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/logward-same.XXXXXX")
if [ "${KEEP:-}" = 1 ]; then
    echo "work directory: $work"
else
    trap 'rm -rf "$work"' EXIT
fi

# The inputs, relative to the clone: the sample logs (not their README, labels or script)
# and the corpus.
inputs=()
while IFS= read -r f; do inputs+=("$f"); done < <(
    find sample-logs -type f ! -name README.md ! -name '*.sh' ! -name '*.truth' ! -name '*.format' | sort
)
corpus=${CORPUS-../shared/corpus/logs}
if [ -n "$corpus" ] && [ -d "$corpus" ]; then
    while IFS= read -r f; do inputs+=("$f"); done < <(find "$corpus" -type f | sort)
    echo "inputs: sample-logs/ and $corpus (${#inputs[@]} files)"
else
    echo "inputs: sample-logs/ (${#inputs[@]} files; no corpus at ${corpus:-(none)})"
fi
echo "old: $old"
echo "new: $new"

for side in old new; do
    mkdir -p "$work/$side/out" "$work/$side/home" "$work/$side/anon"
    mkdir -m 700 "$work/$side/state" "$work/$side/keys"
    # A fixed pseudonymization key, so both builds make the same pseudonyms.
    (umask 077 && echo 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
        >"$work/$side/keys/anonymize.key")
done

# run SIDE NAME ARGS...: logward of SIDE with ARGS, from $cwd (default: the clone); stdout
# into out/NAME, stderr into out/NAME.err, the exit status into out/NAME.rc.
cwd=
run() {
    local side=$1 name=$2 bin rc
    shift 2
    if [ "$side" = old ]; then bin=$old; else bin=$new; fi
    local dir=$work/$side
    if (cd "${cwd:-$root}" && env LOGWARD_CONFIG= LOGWARD_STORE="$dir/state/logward.db" \
        LOGWARD_AUDIT_KEY="$dir/keys/audit.key" HOME="$dir/home" \
        XDG_STATE_HOME="$dir/home/.local/state" XDG_CONFIG_HOME="$dir/home/.config" \
        "$bin" "$@") >"$dir/out/$name" 2>"$dir/out/$name.err"; then
        rc=0
    else
        rc=$?
    fi
    echo "$rc" >"$dir/out/$name.rc"
}

normalise() {
    sed -E -e 's/"elapsed_s": ?[0-9.eE+-]+/"elapsed_s":"_"/g' \
        -e 's/"remaining": ?[0-9]+/"remaining":"_"/g' \
        -e 's/"recorded_at": ?"[^"]*"/"recorded_at":"_"/g' \
        -e 's/^(# logward flagged sources at ).*/\1_/' "$1"
}

# What a diff shows: the normalised output, JSON pretty-printed so that a difference in a
# one-line object shows as the lines that differ (the comparison itself is on the bytes).
shown() {
    if jq -e . "$1" >/dev/null 2>&1; then normalise "$1" | jq .; else normalise "$1"; fi
}

status=0
differ() {
    status=1
    printf '%-5s %s\n' DIFF "$1"
}

# check LABEL NAME: compares the exit status and the normalised stdout (and stderr with
# STDERR=1) of NAME between the builds.
check() {
    local label=$1 name=$2 o=$work/old/out/$2 n=$work/new/out/$2 same=1
    if ! cmp -s "$o.rc" "$n.rc"; then
        same=0
    fi
    if ! cmp -s <(normalise "$o") <(normalise "$n"); then
        same=0
    fi
    if [ "${STDERR:-}" = 1 ] && ! cmp -s "$o.err" "$n.err"; then
        same=0
    fi
    if [ $same = 1 ]; then
        printf '%-5s %s\n' same "$label"
        return
    fi
    differ "$label"
    if ! cmp -s "$o.rc" "$n.rc"; then
        echo "      exit status: old $(cat "$o.rc"), new $(cat "$n.rc")"
    fi
    diff -u --label "old: $label" --label "new: $label" <(shown "$o") <(shown "$n") \
        | head -n "${DIFF_LINES:-20}" | cut -c 1-200 | sed 's/^/      /' || true
    if [ "${STDERR:-}" = 1 ]; then
        diff -u --label "old: $label (stderr)" --label "new: $label (stderr)" "$o.err" "$n.err" \
            | head -n "${DIFF_LINES:-20}" | sed 's/^/      /' || true
    fi
}

# scan, without a store, and into a throwaway one.
for side in old new; do
    run $side scan-nostore scan -o json --no-store "${inputs[@]}"
    run $side scan-store scan -o json "${inputs[@]}"
done
check "scan -o json --no-store" scan-nostore
check "scan -o json (into a throwaway store)" scan-store

# flagged, from that store.
for format in table json ndjson csv plain nftables ipset crowdsec; do
    for side in old new; do run $side "flagged-$format" flagged -o "$format"; done
    check "flagged -o $format" "flagged-$format"
done
for side in old new; do
    run $side flagged-summary flagged --summary
    run $side flagged-explain flagged --explain
    run $side flagged-explain-json flagged --explain -o json
done
check "flagged --summary" flagged-summary
check "flagged --explain" flagged-explain
check "flagged --explain -o json" flagged-explain-json

# search: the three busiest sources the old build's scan found, and two ranges.
mapfile -t sources < <(jq -r '.top_sources[:3][].source' "$work/old/out/scan-nostore")
sources+=(203.0.113.0/24 2001:db8::/32)
all=()
for s in "${sources[@]}"; do
    all+=(--source "$s")
    name=search-${s//[\/:]/_}
    for side in old new; do run $side "$name" search --source "$s" "${inputs[@]}"; done
    check "search --source $s" "$name"
done
for side in old new; do
    run $side search-json search -o json "${all[@]}" "${inputs[@]}"
    run $side search-count search --count "${all[@]}" "${inputs[@]}"
done
check "search -o json (all of them)" search-json
check "search --count (all of them)" search-count

# anonymize, on copies laid out alike under each build's directory, named by relative paths
# so the reports match; each mode with a state directory of its own (a ledger).
anonymize() {
    local mode=$1
    shift
    for side in old new; do
        local dir=$work/$side/anon/$mode
        mkdir -p "$dir/logs"
        mkdir -m 700 "$dir/state"
        local copies=()
        for f in "${inputs[@]}"; do
            local rel=${f#../}
            mkdir -p "$dir/logs/$(dirname "$rel")"
            cp -p "$f" "$dir/logs/$rel"
            copies+=("logs/$rel")
        done
        cwd=$dir run $side "anonymize-$mode" anonymize -o json --now 2030-01-01T00:00:00Z \
            --include-active --store state/logward.db "$@" "${copies[@]}"
    done
    check "anonymize --mode $mode (report)" "anonymize-$mode"
    local files
    if files=$(diff -rq "$work/old/anon/$mode/logs" "$work/new/anon/$mode/logs"); then
        printf '%-5s %s\n' same "anonymize --mode $mode (every file's bytes)"
    else
        differ "anonymize --mode $mode (every file's bytes)"
        echo "$files" | sed "s|$work/||g; s/^/      /" | head -n "${DIFF_LINES:-20}"
        # The lines that differ in the first file that does, decompressed.
        local first
        first=$(echo "$files" | sed -n '1s|^Files \(.*\) and .* differ$|\1|p')
        if [ -n "$first" ]; then
            local rel=${first#"$work/old/anon/$mode/"}
            diff -u --label "old: $rel" --label "new: $rel" \
                <(zcat -f "$first") <(zcat -f "$work/new/anon/$mode/$rel") \
                | head -n "${DIFF_LINES:-20}" | cut -c 1-200 | sed 's/^/      /' || true
        fi
    fi
}
anonymize truncate
anonymize pseudonymize --mode pseudonymize --key-file ../../keys/anonymize.key

if [ $status = 0 ]; then
    echo "all the same"
else
    echo "outputs differ"
fi
exit $status
