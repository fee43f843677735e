#!/bin/sh
# The main job, on a fresh Debian 12 machine too: installs what it needs
# (including the Fashion-MNIST package), builds nabla (Release) and trains
# the default model (configs/fashion_mlp.ini) with progress shown. Extra
# arguments go to `nabla train` (e.g. --set train.epochs=3).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target nabla
./build/tools/nabla train configs/fashion_mlp.ini "$@"
