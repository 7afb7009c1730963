#!/bin/sh
# Starts two children of the program given as $1 (one in the background),
# waits for both, and passes on the second one's exit code.
"$1" alloc 100 64 0 0 &
"$1" alloc 300 32 0 5
code=$?
wait
exit $code
