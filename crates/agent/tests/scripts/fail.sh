#!/bin/sh
# Fails with exit status 3 and a message on stderr.
echo 'partial_value 1'
echo 'the disk is on fire' >&2
echo 'second line' >&2
exit 3
