#!/bin/sh
# The LR finder's suggestion on the default MLP lies where training converges:
# `nabla lr-find` on configs/fashion_mlp.ini, then a full training run at the
# suggested lr must reach the default config's accuracy target.
# Usage: lrfind_accuracy.sh NABLA CONFIG TARGET   (exit 77 without the dataset)
set -eu
[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || exit 77
out=$(mktemp -d /tmp/nabla_lrf_XXXXXX)
trap 'rm -rf "$out"' EXIT
lr=$("$1" lr-find "$2" --out "$out/find" | tee /dev/stderr | sed -n 's/^lr-find suggestion=//p')
[ -n "$lr" ] || { echo "no suggestion"; exit 1; }
last=$("$1" train "$2" --set "optim.lr=$lr" --set "train.out=$out/run" --set train.progress=lines |
       tail -n 1)
acc=$(printf '%s\n' "$last" | sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p')
echo "lr-find suggested $lr; training at it: test_acc=$acc (need >= $3)"
awk -v a="$acc" -v t="$3" 'BEGIN { exit !(a >= t) }'
