#!/bin/sh
# Makes a thumbnail (here: pretends to). The job's arguments arrive on standard input.
set -eu
args=$(cat)
case "$args" in
  *'"image"'*) ;;
  *) echo "no image in the arguments: $args" >&2; exit 2 ;;
esac
echo "job $OUTSOURCED_JOB_ID (attempt $OUTSOURCED_ATTEMPT): thumbnail of $args"
