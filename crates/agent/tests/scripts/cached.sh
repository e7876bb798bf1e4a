#!/bin/sh
# Counts its runs in $COUNT_FILE; fails while $FAIL_FLAG exists, prints a
# page otherwise.
echo run >> "$COUNT_FILE"
if [ -e "$FAIL_FLAG" ]; then
    echo 'fail flag is set' >&2
    exit 1
fi
echo 'cached_value 1'
