#!/bin/sh
# logward anonymize benchmark: 1M generated lines spanning 14 days, --now after the last
# line with --older-than 1s so every line is past the window. Compares the plain rewrite
# with two sed forms (and sed -i in place) and anonip, and the .gz rewrite with
# zcat | gzip -6.
#   WORK=/tmp/ab benches/anonymize.sh        (B=target/release by default)
set -e
. "$(dirname "$0")/anonymize-input.sh"
[ -f orig.log.gz ] || gzip -6 -k -c orig.log > orig.log.gz

# Each copy is synced before the run, so the kernel is not still writing the copy out
# while the run is timed.
# Plain: logward on both cores (its writer thread beside the transform) and pinned to one
# core; sed on the first field only, and on every address of the line as logward does.
hyperfine -N -w 1 -r 7 --export-markdown plain.md \
  --prepare "sh -c 'cp orig.log access.log.1 && rm -rf $WORK/state && sync'" \
  "$B/logward $RUN access.log.1" \
  "taskset -c 0 $B/logward $RUN access.log.1"
# sed -i rewrites the file in place, as logward does (not atomically, and blind to gzip).
hyperfine -w 1 -r 5 --export-markdown sed.md \
  "sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+/\1.0/' orig.log > /dev/null" \
  "sed -E 's/([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+/\1.0/g' orig.log > /dev/null"
hyperfine -N -w 1 -r 5 --export-markdown sed-i.md \
  --prepare "sh -c 'cp orig.log sed.log && sync'" \
  "sed -i -E 's/^([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+/\1.0/' sed.log"
# anonip reads standard input and writes standard output; its warnings go to a file.
if command -v anonip > /dev/null; then
  hyperfine -i -w 1 -r 3 --export-markdown anonip.md \
    "anonip --ipv4mask 8 --ipv6mask 80 < orig.log > /dev/null 2> anonip.err"
fi

# gzip: one thread, all cores, and the two-process pipeline.
hyperfine -N -w 1 -r 5 --export-markdown gz.md \
  --prepare "sh -c 'cp orig.log.gz access.log.2.gz && rm -rf $WORK/state && sync'" \
  "$B/logward $RUN access.log.2.gz" \
  "$B/logward anonymize --now $NOW --older-than 1s access.log.2.gz"
hyperfine -w 1 -r 3 --export-markdown zcat.md "zcat orig.log.gz | gzip -6 > /dev/null"

# Peak RSS.
cp orig.log access.log.1 && rm -rf "$WORK/state"
/usr/bin/time -f 'plain: %M KB peak RSS' "$B/logward" $RUN access.log.1 > /dev/null
cp orig.log.gz access.log.2.gz && rm -rf "$WORK/state"
/usr/bin/time -f 'gzip: %M KB peak RSS' "$B/logward" $RUN access.log.2.gz > /dev/null
