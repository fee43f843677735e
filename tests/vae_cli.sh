#!/bin/sh
# `nabla train configs/fashion_vae.ini` for two epochs: the negative ELBO
# (val_loss in log.csv) falls, the reconstruction and sample grids decode, and
# an autoencoder with a classification loss is refused with a clear message.
# Usage: vae_cli.sh NABLA TEST_PNG CONFIG   (exit 77 without the dataset)
set -u
NABLA=$1 TEST_PNG=$2 CONFIG=$3
[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || exit 77
T=$(mktemp -d /tmp/nabla_vae_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }

if "$NABLA" train "$CONFIG" --set train.epochs=2 --set train.out="$T/run" > "$T/out.txt" 2>&1; then
    ok "train exits 0"
else
    bad "train failed: $(tail -3 "$T/out.txt")"
fi
cat "$T/out.txt"
# columns: epoch,train_loss,train_acc,val_loss,...
if awk -F, 'NR == 2 { a = $4 } NR == 3 { b = $4 } END { exit !(NR == 3 && b < a && a < 400) }' \
    "$T/run/log.csv"; then
    ok "val -ELBO falls: $(cut -d, -f4 "$T/run/log.csv" | tr '\n' ' ')"
else
    bad "val -ELBO does not fall: $(cat "$T/run/log.csv")"
fi
for f in reconstructions samples; do
    if "$TEST_PNG" --check "$T/run/$f.png" 233 233 > /dev/null 2>&1; then
        ok "$f.png decodes"
    else
        bad "$f.png missing or does not decode"
    fi
done
if "$NABLA" train "$CONFIG" --set train.loss=cross_entropy > "$T/err.txt" 2>&1; then
    bad "target = input with cross_entropy was accepted"
elif grep -q "target = input (an autoencoder) needs \[train\] loss = mse, bce or bce_sum" "$T/err.txt"; then
    ok "autoencoder with cross_entropy refused"
else
    bad "unexpected message: $(cat "$T/err.txt")"
fi
[ "$fails" -eq 0 ] && echo "vae_cli: all passed" && exit 0
echo "vae_cli: $fails failed"
exit 1
