# The input and settings the anonymize benchmarks share; sourced by anonymize.sh and
# anonymize-pairs.sh, not run on its own. Sets B (the directory holding logward, from
# B or target/release) and WORK (default /tmp/ab), moves into WORK, makes orig.log there
# once (1M generated lines spanning 14 days: the logward in B must have been built with
# `--features generator` for that), and points logward at a state directory in
# WORK with no config file. RUN is the rewrite both scripts time: with NOW after the last line
# and --older-than 1s, every line is past the window.
B=$(cd "${B:-target/release}" && pwd)
mkdir -p "${WORK:=/tmp/ab}"
cd "$WORK"
[ -f orig.log ] || "$B/logward" generate --seed 1 --lines 1000000 --attacks \
    --start 2026-10-01T00:00:00Z --span-days 14 -o orig.log
export LOGWARD_STORE="$WORK/state/db" LOGWARD_CONFIG=
NOW=2026-11-01T00:00:00Z
RUN="anonymize --threads 1 --now $NOW --older-than 1s"
