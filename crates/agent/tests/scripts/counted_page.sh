#!/bin/sh
# Counts its runs (one line each in $COUNT_FILE), sleeps $SLEEP seconds, then
# prints a page that echoes its first argument and $VAR as label values.
echo run >> "$COUNT_FILE"
sleep "${SLEEP:-0}"
printf '# TYPE test_value gauge\ntest_value{arg="%s",env="%s"} 1\n' "$1" "$VAR"
