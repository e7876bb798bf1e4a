#!/bin/sh
# Ignores SIGTERM, forks a child that sleeps, writes both pids to $PID_FILE
# (child first), and sleeps itself: only a SIGKILL to the group ends both.
trap '' TERM
sleep 60 &
echo "$!" >> "$PID_FILE"
echo "$$" >> "$PID_FILE"
exec sleep 60
