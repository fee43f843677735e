#!/bin/sh
# Builds nabla and runs all tests, on a fresh Debian 12 machine too (installs
# what it needs first; run as root or with sudo available):
#   1. gcc Release build: every test (op gradient checks, PyTorch parity,
#      no-allocation, bad input, valgrind on the XOR example);
#   2. the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. a clang build (-Werror) and its tests;
#   4. install, then build a project against the installed CMake package and
#      against pkg-config.
# Tests labelled `slow` (CNN and ResNet trainings, 10-17 min each) run with
# scripts/test-slow.sh; the MLP accuracy run (label accuracy) runs here.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
JOBS=$(nproc)
# install-deps.sh installed chromium: the report test must not skip its browser check
export NABLA_REQUIRE_CHROMIUM=1

echo "== gcc, Release"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure -LE slow   # the MLP accuracy run included (~15 s)

echo "== gcc, AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNABLA_SANITIZE=ON
cmake --build build-asan -j "$JOBS"
ctest --test-dir build-asan --output-on-failure -LE "slow|accuracy"

echo "== clang, Release"
cmake -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release
cmake --build build-clang -j "$JOBS"
ctest --test-dir build-clang --output-on-failure -LE "slow|accuracy|valgrind|torch"

echo "== install, then use the CMake package and pkg-config"
rm -rf build/stage build/consumer
cmake --install build --prefix "$PWD/build/stage" >/dev/null
cmake -S tests/consumer -B build/consumer -DCMAKE_PREFIX_PATH="$PWD/build/stage" >/dev/null
cmake --build build/consumer >/dev/null
./build/consumer/consumer
PKG_CONFIG_PATH="$PWD/build/stage/lib/pkgconfig:$PWD/build/stage/lib/x86_64-linux-gnu/pkgconfig" \
    sh -c 'cc -std=c11 tests/consumer/main.c $(pkg-config --cflags nabla) \
           -o build/consumer/consumer_pc $(pkg-config --libs --static nabla)'
LD_LIBRARY_PATH="$PWD/build/stage/lib" ./build/consumer/consumer_pc

echo "== all tests passed"
