#!/bin/sh
# A shipped config trains to its test-accuracy target within its epochs and
# reports the wall time. Usage: fashion_accuracy.sh NABLA CONFIG TARGET EPOCHS
set -eu
out=$(mktemp -d /tmp/nabla_acc_XXXXXX)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
last=$("$1" train "$2" --set "train.out=$out" --set train.progress=lines | tee /dev/stderr | tail -n 1)
secs=$(( $(date +%s) - start ))
acc=$(printf '%s\n' "$last" | sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p')
epochs=$(printf '%s\n' "$last" | sed -n 's/^final epochs=\([0-9]*\).*/\1/p')
echo "$(basename "$2"): test_acc=$acc after $epochs epochs in ${secs}s (need >= $3 within $4 epochs)"
awk -v a="$acc" -v t="$3" -v e="$epochs" -v m="$4" 'BEGIN { exit !(a >= t && e <= m) }'
