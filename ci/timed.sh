#!/usr/bin/env bash
# Run a command and note its wall time for the `make test` time table:
#   ci/timed.sh PART command [args...]
# writes $TEST_TIMES_DIR/part-PART.json ({"part", "seconds", "rc"}); exits with the command's code.
set -uo pipefail
part=$1
shift
dir="${TEST_TIMES_DIR:-var/test-times.d}"
mkdir -p "$dir"
start=$EPOCHREALTIME
"$@"
rc=$?
end=$EPOCHREALTIME
printf '{"part": "%s", "seconds": %.1f, "rc": %d}\n' "$part" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$rc" \
    >"$dir/part-$part.json"
exit "$rc"
