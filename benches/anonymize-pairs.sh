#!/bin/sh
# logward anonymize against sed -E, run in interleaved pairs: on a machine whose speed
# drifts from minute to minute (a shared virtual machine), back-to-back sets compare
# logward at one speed with sed at another; a pair runs both within seconds, and the
# median of the pairs' ratios is the figure to quote.
#   WORK=/tmp/ab PAIRS=15 benches/anonymize-pairs.sh     (B=target/release by default)
# Each pair: sed -E truncating the first field of orig.log to /dev/null, then logward
# pinned to one core (taskset -c 0) rewriting a fresh, synced copy in place, every line
# past the window. Timing by hyperfine, one run per command per pair.
set -e
. "$(dirname "$0")/anonymize-input.sh"
mean() { sed -n 's/.*"mean": *\([0-9.e-]*\).*/\1/p' "$1" | head -1; }
: > pairs.txt
i=0
while [ "$i" -lt "${PAIRS:-15}" ]; do
  i=$((i + 1))
  hyperfine -r 1 --export-json sed.json --style none \
    "sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+)\.[0-9]+/\1.0/' orig.log > /dev/null" > /dev/null
  hyperfine -N -r 1 --export-json lw.json --style none \
    --prepare "sh -c 'cp orig.log access.log.1 && rm -rf $WORK/state && sync'" \
    "taskset -c 0 $B/logward $RUN access.log.1" > /dev/null
  s=$(mean sed.json); l=$(mean lw.json)
  echo "$s $l" | awk '{printf "pair %2d: sed %.3f s, logward %.3f s, ratio %.2f\n", '"$i"', $1, $2, $1 / $2}' | tee -a pairs.txt
done
awk '{print $NF}' pairs.txt | sort -n | awk '{r[NR] = $1} END {printf "median ratio of %d pairs: %.2f (lowest %.2f, highest %.2f)\n", NR, r[int((NR + 1) / 2)], r[1], r[NR]}'
