#!/bin/sh
# The diagnostics commands end to end on a small generated CSV problem:
# nabla check (initial loss, overfit one batch, memory and a memory limit),
# nabla lr-find (CSV, SVG, suggestion), nabla train with [diag] statistics,
# histograms and the terminal loss curve (the run folder's files), the
# memory limit in train, and bad values.
# Usage: diag_cli.sh NABLA
set -u
NABLA=$1
T=$(mktemp -d /tmp/nabla_diag_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }
awk 'BEGIN { srand(4); print "a,b,c,d,y";
    for (i = 0; i < 600; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand(); d = rand();
        y = (a + b > 0) ? 1 : 0; if (a - b > 0.5) y = 2;
        printf "%.5f,%.5f,%.5f,%.5f,%d\n", a, b, c, d, y } }' > "$T/train.csv"
cat > "$T/c.ini" <<EOC
[data]
format = csv
train = $T/train.csv
label = y
normalize = feature
batch_size = 32
[model]
layers = linear:32, relu, linear:32, tanh, linear:3
[optim]
name = adam
lr = 0.01
[train]
epochs = 3
out = $T/run
[diag]
every = 5
hist_every = 10
curve = true
EOC
if "$NABLA" check "$T/c.ini" > "$T/check.txt" 2>&1 &&
    grep -q "initial loss: .*ln 3 .*: ok" "$T/check.txt" &&
    grep -q "overfit one batch of 32 rows: .*: ok" "$T/check.txt" &&
    grep -q "memory: batch 32 needs" "$T/check.txt" && grep -q "check: all ok" "$T/check.txt"; then
    ok "check"
else
    bad "check: $(cat "$T/check.txt")"
fi
"$NABLA" check "$T/c.ini" --set train.memory_limit_mb=0.0001 > "$T/check2.txt" 2>&1
if grep -q "nothing fits" "$T/check2.txt"; then ok "check: a limit nothing fits"; else bad "check limit: $(cat "$T/check2.txt")"; fi
if "$NABLA" lr-find "$T/c.ini" --steps 60 --out "$T/lrf" > "$T/lrf.txt" 2>&1 &&
    grep -q "^lr-find suggestion=[0-9.e-]*$" "$T/lrf.txt" && [ -s "$T/lrf/lr_find.svg" ] &&
    head -1 "$T/lrf/lr_find.csv" | grep -q "^lr,loss,smoothed$" && grep -q "^# suggestion" "$T/lrf/lr_find.csv"; then
    ok "lr-find: $(grep suggestion= "$T/lrf.txt")"
else
    bad "lr-find: $(cat "$T/lrf.txt")"
fi
"$NABLA" lr-find "$T/c.ini" --start 1 --end 0.1 > "$T/lrf2.txt" 2>&1
if grep -q "needs 0 < --start < --end" "$T/lrf2.txt"; then ok "lr-find: bad range refused"; else bad "lr-find range: $(cat "$T/lrf2.txt")"; fi
if "$NABLA" train "$T/c.ini" --set train.progress=lines > "$T/train.txt" 2>&1; then ok "train with diagnostics"; else bad "train: $(cat "$T/train.txt")"; fi
for f in steps.csv params.csv acts.csv hist.csv alarms.csv manifest.json log.csv; do
    if [ -s "$T/run/$f" ]; then ok "run folder has $f"; else bad "run folder lacks $f"; fi
done
# 600 rows x 0.9 / 32 = 17 steps an epoch, 3 epochs
n=$(($(wc -l < "$T/run/steps.csv") - 1))
if [ "$n" -eq 51 ]; then ok "steps.csv has 51 steps"; else bad "steps.csv has $n steps"; fi
if grep -q "train loss " "$T/train.txt" && grep -q "val   loss " "$T/train.txt"; then
    ok "terminal loss curve"
else
    bad "no loss curve: $(cat "$T/train.txt")"
fi
if grep -q '"seed": 1' "$T/run/manifest.json" && grep -q '"blas"' "$T/run/manifest.json"; then
    ok "manifest"; else bad "manifest: $(cat "$T/run/manifest.json")"; fi
"$NABLA" train "$T/c.ini" --set diag.on_nonfinite=explode > "$T/bad.txt" 2>&1
if grep -q "on_nonfinite: 'explode' is not one of warn|skip|stop" "$T/bad.txt"; then ok "bad action refused"; else bad "bad action: $(cat "$T/bad.txt")"; fi
if "$NABLA" train "$T/c.ini" --set train.memory_limit_mb=0.12 --set train.out="$T/run2" > "$T/mem.txt" 2>&1 &&
    grep -q "^memory: batch 32 needs" "$T/mem.txt"; then
    ok "train under a memory limit: $(grep '^memory' "$T/mem.txt" | tr '\n' ' ')"
else
    bad "memory limit: $(cat "$T/mem.txt")"
fi
[ "$fails" -eq 0 ] && echo "diag_cli: all passed" && exit 0
echo "diag_cli: $fails failed"
exit 1
