#!/bin/sh
# Prints a page and exits at once, leaving a child that holds stdout open; its
# pid goes to $PID_FILE.
sleep 60 &
echo "$!" >> "$PID_FILE"
echo 'straggler_value 1'
