#!/bin/sh
# `nabla train` on text (format = text) end to end, small and quick: the
# shipped configs configs/text_lstm.ini and configs/tiny_gpt.ini with a
# smaller model, context and text (GPL-3 alone), one epoch each: the run must
# beat the unigram entropy of the validation bytes and print a sample; then
# the text errors (bad layer orders, a missing file) with their messages.
# One thread: these models are so small that a second thread only adds
# barriers, which cost milliseconds each when the machine is busy.
# Usage: text_cli.sh PATH_TO_nabla SOURCE_DIR [errors-only]
set -u
NABLA=$1
SRC=$2
T=$(mktemp -d /tmp/nabla_text_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }
GPL=/usr/share/common-licenses/GPL-3

# beats ARGS...: trains, checks val loss < unigram entropy and that a sample was written
beats() {
    name=$1
    shift
    if ! "$NABLA" train "$@" --set data.text=$GPL --set train.out="$T/$name" >"$T/$name.out" 2>&1; then
        bad "$name: train failed"; cat "$T/$name.out"; return
    fi
    line=$(grep '^validation loss' "$T/$name.out")
    v=$(echo "$line" | awk '{print $3}') u=$(echo "$line" | awk '{print $(NF)}' | tr -d ')')
    if awk -v v="$v" -v u="$u" 'BEGIN { exit !(v < u - 0.3) }'; then
        ok "$name: validation $v nats/byte < unigram $u - 0.3"
    else
        bad "$name: validation $v vs unigram $u"; cat "$T/$name.out"
    fi
    if [ -s "$T/$name/sample.txt" ] && grep -q '^sample (temperature' "$T/$name.out"; then
        ok "$name: sample printed and written"
    else
        bad "$name: no sample"
    fi
}
if [ "${3:-}" != errors-only ]; then
SMALL="--set data.context=32 --set data.stride=32 --set data.batch_size=8 --set train.epochs=4 --set train.threads=1"
beats lstm "$SRC/configs/text_lstm.ini" $SMALL --set "model.layers=embedding:32, lstm:96, linear:256"
beats gpt "$SRC/configs/tiny_gpt.ini" $SMALL --set "model.layers=gpt:2:2:48" --set optim.lr=0.003 \
    --set schedule.warmup=20
# the same GPT spelt out in blocks (untied head), with sinusoidal positions
beats blocks "$SRC/configs/tiny_gpt.ini" $SMALL --set optim.lr=0.003 --set schedule.warmup=20 \
    --set "model.layers=embedding:48, positional:sinusoidal, transformer:2, transformer:2:96:0.1, ln, linear:256"
fi

# errors: each a message naming the problem, exit status 1 or 2
expect() { # name pattern ARGS...
    name=$1 pat=$2
    shift 2
    "$NABLA" train "$@" >"$T/e.out" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q -- "$pat" "$T/e.out"; then ok "$name"; else bad "$name (rc $rc)"; cat "$T/e.out"; fi
}
C="$SRC/configs/text_lstm.ini"
expect "no embedding" "byte ids need an embedding" "$C" --set "model.layers=lstm:32, linear:256"
expect "lstm before embedding" "byte ids need an embedding" "$C" --set "model.layers=linear:16"
expect "transformer on ids" "needs a sequence of vectors" "$C" --set "model.layers=transformer:2"
expect "heads do not divide" "must be a positive multiple of heads 3" "$C" \
    --set "model.layers=embedding:32, transformer:3, linear:256"
expect "gpt args" "gpt:LAYERS:HEADS:WIDTH" "$C" --set "model.layers=gpt:2:x"
expect "gpt after embedding" "needs byte ids" "$C" --set "model.layers=embedding:8, gpt:1:1:8"
expect "missing text" "text_read: /nonexistent" "$C" --set data.text=/nonexistent
expect "text needs cross-entropy" "needs loss = cross_entropy" "$C" --set train.loss=mse
expect "too few classes" "outside the model's 64 classes" "$C" --set data.text=$GPL \
    --set "model.layers=embedding:8, linear:64"
expect "context longer than the text" "make no window" "$C" --set data.text=$GPL --set data.context=100000

if [ $fails -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all text CLI checks passed"
