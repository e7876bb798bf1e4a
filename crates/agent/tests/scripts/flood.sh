#!/bin/sh
# Writes its pids (a sleeping child's, then its own) to $PID_FILE, then 10 MiB
# of output.
sleep 60 &
echo "$!" >> "$PID_FILE"
echo "$$" >> "$PID_FILE"
exec head -c 10485760 /dev/zero
