#!/bin/sh
# The main job, on a fresh Debian 12 machine too: installs what it needs,
# builds nabla (Release) and trains the default model on the default data,
# showing progress. For now: the XOR example (a 2-4-1 MLP).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target xor
./build/examples/xor "$@"
