#!/bin/sh
# The long runs (ctest label `slow`): full trainings checked against their
# accuracy targets. Installs what it needs, builds Release, runs them.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -L slow
