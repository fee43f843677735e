#!/bin/sh
# Slow test: the shipped default config trains the Fashion-MNIST MLP to at
# least 89.0% test accuracy within 15 epochs (issue acceptance).
# Usage: slow_fashion_mlp.sh PATH_TO_nabla CONFIG
set -eu
out=$(mktemp -d /tmp/nabla_slow_XXXXXX)
trap 'rm -rf "$out"' EXIT
last=$("$1" train "$2" --set "train.out=$out" --set train.progress=lines | tee /dev/stderr | tail -n 1)
acc=$(printf '%s\n' "$last" | sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p')
epochs=$(printf '%s\n' "$last" | sed -n 's/^final epochs=\([0-9]*\).*/\1/p')
echo "test_acc=$acc epochs=$epochs (need >= 0.890 within 15)"
awk -v a="$acc" -v e="$epochs" 'BEGIN { exit !(a >= 0.890 && e <= 15) }'
