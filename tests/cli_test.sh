#!/bin/sh
# The nabla command line end to end, on a small generated CSV problem:
# train (final line format, run folder), resume, eval, predict, info, and
# the config and data errors, each with its exit status and message.
# Usage: cli_test.sh PATH_TO_nabla
set -u
NABLA=$1
T=$(mktemp -d /tmp/nabla_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }

# 300 rows, 4 features, class 1 when x1 + x2 > 0 (awk's rand is seeded)
gen() {
    awk -v seed="$2" -v label="$3" 'BEGIN { srand(seed); print "a,b,c,d,y";
        for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand(); d = rand();
            y = (a + b > 0) ? 1 : 0; if (label == "big" && i == 17) y = 7;
            printf "%.5f,%.5f,%.5f,%.5f,%d\n", a, b, c, d, y } }' > "$1"
}
gen "$T/train.csv" 1 ok
gen "$T/test.csv" 2 ok
gen "$T/big.csv" 3 big
cut -d, -f1-4 "$T/test.csv" > "$T/features.csv"

cat > "$T/c.ini" <<EOC
[data]
format = csv
train = $T/train.csv
test = $T/test.csv
label = y
normalize = feature
batch_size = 16

[model]
layers = linear:16, tanh, linear:2

[optim]
name = sgd
lr = 0.1
momentum = 0.9

[schedule]
name = cosine

[train]
epochs = 4
seed = 3
out = $T/run
EOC

out=$("$NABLA" train "$T/c.ini" 2>"$T/err")
rc=$?
last=$(printf '%s\n' "$out" | tail -n 1)
if [ $rc -eq 0 ] && printf '%s\n' "$last" | grep -Eq '^final epochs=4 train_loss=[0-9.]+ val_loss=[0-9.]+ test_acc=[0-9.]+ samples_per_s=[0-9]+$'; then
    ok "train: machine-readable last line ($last)"
else
    bad "train: rc=$rc last line '$last' $(cat "$T/err")"
fi
acc=$(printf '%s\n' "$last" | sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p')
awk -v a="$acc" 'BEGIN { exit !(a > 0.9) }' && ok "train: it learns (test_acc $acc)" || bad "train: test_acc $acc"
[ "$(printf '%s\n' "$out" | grep -c '^epoch [0-9]/4 ')" -eq 4 ] && ok "train: one line per epoch off a terminal" || bad "train: epoch lines: $out"
[ -s "$T/run/log.csv" ] && [ -s "$T/run/best.safetensors" ] && [ -s "$T/run/last.safetensors" ] &&
    [ "$(wc -l < "$T/run/log.csv")" -eq 5 ] && ok "train: run folder (log.csv, best, last)" || bad "train: run folder"

out=$("$NABLA" train "$T/c.ini" --set train.epochs=6 --set "train.resume=$T/run/last.safetensors" --set "train.out=$T/run" 2>&1)
printf '%s\n' "$out" | grep -Eq '^epoch 5/6 ' && ! printf '%s\n' "$out" | grep -Eq '^epoch [1-4]/6 ' &&
    printf '%s\n' "$out" | tail -n 1 | grep -q '^final epochs=6 ' && ok "train: resume continues at epoch 5" || bad "train: resume: $out"

out=$("$NABLA" eval "$T/c.ini" "$T/run/best.safetensors" 2>&1)
printf '%s\n' "$out" | grep -Eq '^eval rows=300 test_loss=[0-9.]+ test_acc=[0-9.]+$' && ok "eval ($out)" || bad "eval: $out"

out=$("$NABLA" predict "$T/c.ini" "$T/run/best.safetensors" "$T/features.csv" 2>&1)
[ "$(printf '%s\n' "$out" | head -n 1)" = "row,prediction,score" ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 301 ] &&
    ok "predict: 300 rows" || bad "predict: $(printf '%s\n' "$out" | head -n 3)"

out=$("$NABLA" info "$T/run/best.safetensors" 2>&1)
printf '%s\n' "$out" | grep -Eq '^1\.fc1\.weight +f32 +\[16,4\]$|^fc1\.weight +f32 +\[16,4\]$' &&
    printf '%s\n' "$out" | grep -q 'epoch: ' && ok "info" || bad "info: $out"

# config errors: the file, the line and the key
expect_err() { # name, expected substring, command...
    name=$1 want=$2
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -qF -- "$want"; then ok "$name"; else bad "$name: rc=$rc: $out"; fi
}
sed 's/^epochs = 4$/epochs = 4\nfoo = 1/' "$T/c.ini" > "$T/unknown.ini"
line=$(grep -n '^foo = 1$' "$T/unknown.ini" | cut -d: -f1)
expect_err "config: unknown key" "config: $T/unknown.ini:$line: unknown key 'foo' in [train]" "$NABLA" train "$T/unknown.ini"
sed 's/^lr = 0.1$/lr = abc/' "$T/c.ini" > "$T/type.ini"
line=$(grep -n '^lr = abc$' "$T/type.ini" | cut -d: -f1)
expect_err "config: wrong type" "config: $T/type.ini:$line: [optim] lr: 'abc' is not a number" "$NABLA" train "$T/type.ini"
sed 's/^lr = 0.1$/lr = -0.1/' "$T/c.ini" > "$T/neg.ini"
expect_err "config: negative learning rate" "config: $T/neg.ini:$line: [optim] lr must be in [0, 1e+06], got -0.1" "$NABLA" train "$T/neg.ini"
expect_err "config: bad choice" "[optim] name: 'adamx' is not one of sgd|adam|adamw|rmsprop|adagrad" "$NABLA" train "$T/c.ini" --set optim.name=adamx
expect_err "config: --set unknown key" "--set train.epoch=3: unknown key 'epoch' in [train]" "$NABLA" train "$T/c.ini" --set train.epoch=3
expect_err "config: missing file" "config: $T/none.ini: No such file or directory" "$NABLA" train "$T/none.ini"
expect_err "config: bad layer" "'lineer:4': unknown layer" "$NABLA" train "$T/c.ini" --set "model.layers=lineer:4"
expect_err "data: label out of range" "label 7 of row 17 is outside the model's 2 classes" "$NABLA" train "$T/c.ini" --set "data.train=$T/big.csv"
printf 'a,b,c,d,y\n1,2,3,4,1\n1,2,x,4,0\n' > "$T/nonnum.csv"
expect_err "data: not a number" "line 3, column 3" "$NABLA" train "$T/c.ini" --set "data.train=$T/nonnum.csv"
printf 'a,b,c,d,y\n1,2,3,4,1\n1,2,3,0\n' > "$T/ragged.csv"
expect_err "data: ragged row" "line 3" "$NABLA" train "$T/c.ini" --set "data.train=$T/ragged.csv"
printf '\000\000\010\003\000\000\000\012\000\000\000\034' > "$T/trunc.idx"
expect_err "data: truncated IDX" "idx: $T/trunc.idx" "$NABLA" train "$T/c.ini" --set data.format=idx --set "data.train_images=$T/trunc.idx" --set "data.train_labels=$T/trunc.idx"
printf 'corrupt' > "$T/corrupt.safetensors"
expect_err "checkpoint: corrupt" "corrupt.safetensors" "$NABLA" eval "$T/c.ini" "$T/corrupt.safetensors"
expect_err "checkpoint: shapes differ" "in the file but" "$NABLA" eval "$T/c.ini" "$T/run/best.safetensors" --set "model.layers=linear:8, tanh, linear:2"
cp "$T/run/best.safetensors" "$T/keep.safetensors"
cmp -s "$T/run/best.safetensors" "$T/keep.safetensors" && ok "checkpoint: untouched by failed commands" || bad "checkpoint changed"

echo "cli: $fails failures"
[ $fails -eq 0 ]
