#!/usr/bin/env bash
# Remakes every generated file in sample-logs/ with examples/genlog.rs; seeds are fixed, so the bytes come out the same on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
# GENLOG: a genlog binary to use instead of building one; LOGWARD: the same for logward
# (it makes report.html); OUT: where the files go (the test that checks this script writes
# them into a temporary directory).
if [ -n "${GENLOG:-}" ]; then
    gen() { "$GENLOG" "$@"; }
else
    cargo build --quiet --example genlog
    gen() { target/debug/examples/genlog "$@"; }
fi
if [ -z "${LOGWARD:-}" ]; then
    cargo build --quiet --bin logward
    LOGWARD=$PWD/target/debug/logward
fi
out=${OUT:-sample-logs}

# Current log: a week of combined traffic with every attack, a few malformed lines.
gen --seed 1 --lines 2000 --format combined --attacks --malformed-per-million 2000 \
    --start 2026-11-15T00:00:00Z --span-days 7 --truth "$out/access.log.truth" -o "$out/access.log"
# Older rotations: the two weeks before.
gen --seed 2 --lines 1000 --format combined --malformed-per-million 2000 \
    --start 2026-11-08T00:00:00Z --span-days 7 -o "$out/access.log.1"
gen --seed 3 --lines 1000 --format combined \
    --start 2026-11-01T00:00:00Z --span-days 7 --gzip -o "$out/access.log.2.gz"
gen --seed 4 --lines 1500 --format vcombined --attacks --malformed-per-million 2000 \
    --start 2026-11-15T00:00:00Z --span-days 7 --truth "$out/vhosts_access.log.truth" \
    -o "$out/vhosts_access.log"
gen --seed 5 --lines 500 --format json --malformed-per-million 4000 \
    --start 2026-11-15T00:00:00Z --span-days 2 -o "$out/access.json"
gen --seed 6 --lines 500 --format custom --malformed-per-million 4000 \
    --start 2026-11-15T00:00:00Z --span-days 2 -o "$out/custom_access.log"
gen --format custom --print-format > "$out/custom_access.log.format"
# The HTML report of these logs, which the README links: made in the output directory from
# the files' names, so the page names no directory; no config file and no store, so the page
# depends on the files alone.
(cd "$out" && LOGWARD_CONFIG= LOGWARD_STORE=/nonexistent/logward.db "$LOGWARD" report \
    --no-progress -o report.html access.log access.log.1 access.log.2.gz vhosts_access.log \
    access.json custom_access.log >/dev/null 2>&1)
chmod 644 "$out/report.html"
