#!/bin/sh
# Transfer learning from the command line: train a small model on task A (2
# classes), then a model with another head on task B (3 classes) with
# --set model.init_from=RUN/best.safetensors --set model.freeze=fc1.*:
# the loaded/skipped/frozen lines, fc1 in the second run's checkpoints equal
# to the first's byte for byte (python3's standard library reads the
# safetensors files), the head retrained, the manifest in the checkpoint,
# and the errors (a pattern matching nothing, a missing checkpoint).
# Usage: transfer_cli.sh PATH_TO_nabla [PATH_TO_python3]
set -u
NABLA=$1
PY=${2:-}
T=$(mktemp -d /tmp/nabla_xfer_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }

# 300 rows, 4 features; task a: class 1 when x1 + x2 > 0; task b: 3 bands of x1 - x2
gen() {
    awk -v seed="$2" -v task="$3" 'BEGIN { srand(seed); print "a,b,c,d,y";
        for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand(); d = rand();
            if (task == "a") y = (a + b > 0) ? 1 : 0;
            else y = (a - b < -0.4) ? 0 : (a - b > 0.4) ? 2 : 1;
            printf "%.5f,%.5f,%.5f,%.5f,%d\n", a, b, c, d, y } }' > "$1"
}
gen "$T/a_train.csv" 1 a
gen "$T/a_test.csv" 2 a
gen "$T/b_train.csv" 3 b
gen "$T/b_test.csv" 4 b

cfg() { # task, head width, out
    cat <<EOC
[data]
format = csv
train = $T/$1_train.csv
test = $T/$1_test.csv
label = y
normalize = feature
batch_size = 16

[model]
layers = linear:16, tanh, linear:$2

[optim]
name = adamw
lr = 0.01
weight_decay = 0.1

[train]
epochs = 3
seed = 3
out = $3
EOC
}
cfg a 2 "$T/run_a" > "$T/a.ini"
cfg b 3 "$T/run_b" > "$T/b.ini"

out=$("$NABLA" train "$T/a.ini" 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -s "$T/run_a/best.safetensors" ] && ok "task a trains" || bad "task a: rc=$rc: $out"

out=$("$NABLA" train "$T/b.ini" --set "model.init_from=$T/run_a/best.safetensors" --set "model.freeze=fc1.*" 2>&1)
rc=$?
[ $rc -eq 0 ] && printf '%s\n' "$out" | tail -n 1 | grep -q '^final epochs=3 ' && ok "task b trains from task a" ||
    bad "task b: rc=$rc: $out"
want="init_from: loaded 2 tensors from $T/run_a/best.safetensors; skipped: fc2.weight, fc2.bias (absent or another shape)"
printf '%s\n' "$out" | grep -qxF "$want" && ok "init_from line" || bad "init_from line: want '$want' in: $out"
printf '%s\n' "$out" | grep -Eqx 'freeze: 2 parameters frozen \(fc1\.\*\); 51 of 131 values train' &&
    ok "freeze line" || bad "freeze line: $out"

if [ -n "$PY" ] && [ -x "$PY" ]; then
    cat > "$T/cmp.py" <<'EOP'
# compares tensors of two safetensors files byte for byte (standard library only)
import json, struct, sys

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    return {k: (v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in head.items()}, meta

a, _ = read(sys.argv[1])
b, meta = read(sys.argv[2])
for name in ("fc1.weight", "fc1.bias"):
    if a[name] != b[name]:
        sys.exit("%s differs" % name)
for name in ("fc2.weight", "fc2.bias"):
    if a[name][0] == b[name][0]:
        sys.exit("%s has the old shape" % name)
m = json.loads(meta["manifest"])
for key in ("nabla", "compiler", "blas", "threads", "host", "os", "time", "config"):
    if key not in m:
        sys.exit("manifest lacks " + key)
if "linear:3" not in m["config"]:
    sys.exit("manifest config: " + m["config"])
print("fc1 equal, fc2 new, manifest from nabla %s built by %s" % (m["nabla"], m["compiler"]))
EOP
    for ck in best last; do
        res=$("$PY" "$T/cmp.py" "$T/run_a/best.safetensors" "$T/run_b/$ck.safetensors" 2>&1) &&
            ok "frozen fc1 in run_b/$ck equals run_a's: $res" || bad "run_b/$ck: $res"
    done
else
    printf 'skip fc1 byte comparison (no python3)\n'
fi

# the run without freeze changes fc1 (so the check above means something)
out=$("$NABLA" train "$T/b.ini" --set "model.init_from=$T/run_a/best.safetensors" --set "train.out=$T/run_c" 2>&1)
printf '%s\n' "$out" | grep -q '^freeze:' && bad "freeze line without freeze" || ok "no freeze line without model.freeze"
if [ -n "$PY" ] && [ -x "$PY" ]; then
    "$PY" "$T/cmp.py" "$T/run_a/best.safetensors" "$T/run_c/last.safetensors" 2>&1 | grep -q "fc1.weight differs" &&
        ok "without freeze fc1 trains" || bad "without freeze fc1 did not change"
fi

expect_err() { # name, expected substring, command...
    name=$1 want=$2
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -qF -- "$want"; then ok "$name"; else bad "$name: rc=$rc: $out"; fi
}
expect_err "freeze: a pattern matching nothing" "nabla: model: freeze: pattern 'conv*' matches no parameter" \
    "$NABLA" train "$T/b.ini" --set "model.freeze=fc1.*, conv*"
expect_err "init_from: missing file" "$T/none.safetensors" \
    "$NABLA" train "$T/b.ini" --set "model.init_from=$T/none.safetensors"

echo "cli_transfer: $fails failures"
[ $fails -eq 0 ]
