#!/bin/sh
# logward anonymize benchmark: 1M generated lines spanning 14 days, --now after the last
# line with --older-than 1s so every line is past the window.
set -e
B=${B:-target/release}
cd "${WORK:-/tmp/ab}"
[ -f orig.log ] || $B/examples/genlog --seed 1 --lines 1000000 --attacks --start 2026-10-01T00:00:00Z --span-days 14 -o orig.log
[ -f orig.log.gz ] || gzip -6 -k -c orig.log > orig.log.gz
export LOGWARD_STORE=${WORK:-/tmp/ab}/state/db LOGWARD_CONFIG=
NOW=2026-11-01T00:00:00Z
hyperfine -w 1 -r 5 --export-markdown plain.md \
  --prepare 'cp orig.log access.log.1 && rm -rf ${WORK:-/tmp/ab}/state' \
  "$B/logward anonymize --threads 1 --now $NOW --older-than 1s access.log.1" \
  "sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+/\1.0/' orig.log > /dev/null"
hyperfine -w 1 -r 5 --export-markdown gz.md \
  --prepare 'cp orig.log.gz access.log.2.gz && rm -rf ${WORK:-/tmp/ab}/state' \
  "$B/logward anonymize --threads 1 --now $NOW --older-than 1s access.log.2.gz" \
  "zcat orig.log.gz | gzip -6 > /dev/null"
