#!/bin/sh
# The README's C example must be examples/readme.c word for word (that file
# is built and run by the tests, so the README's code cannot rot).
set -eu
awk '/^```c$/{f=1;next} /^```$/{f=0} f' "$1/README.md" | diff - "$1/examples/readme.c"
