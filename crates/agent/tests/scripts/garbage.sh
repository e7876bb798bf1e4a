#!/bin/sh
# Prints something that is not an exposition page.
echo 'good_value 1'
echo 'this is { not a page'
