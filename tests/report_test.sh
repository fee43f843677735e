#!/bin/sh
# `nabla report RUN_FOLDER`: the HTML page and plots/*.svg against the CSVs
# they come from (tests/report_check.py), the errors (FILE:LINE, exit 1), and
# the page in headless Chromium (no console errors, a non-blank screenshot).
#   1. a synthetic run folder written here with known values: 10 epochs,
#      2500 steps (the per-step plots are downsampled), 3 parameters, 4
#      layers, histograms (one with lo = hi), alarms whose message holds a
#      comma, a quote and <script>, a manifest whose config holds <script>,
#      an lr-finder curve;
#   2. a real `nabla train` run with [diag] every = 5, hist_every = 10 on a
#      small generated CSV problem, checked the same way (while training
#      writes no params.csv yet, it says "skip real run: no diagnostics yet"
#      and checks what there is);
#   3. Chromium (Debian's chromium, or NABLA_CHROMIUM): --dump-dom with
#      logging on stderr must show no CONSOLE line, --screenshot must give a
#      valid 1200x3000 PNG that is not one colour. Required when
#      NABLA_REQUIRE_CHROMIUM=1 (CI), else skipped when not installed.
# Usage: report_test.sh PATH_TO_nabla PATH_TO_report_check.py [SCREENSHOT_DIR]
#   (the screenshot is copied to SCREENSHOT_DIR/report_screenshot.png;
#   NABLA_REPORT_KEEP=1 keeps the temporary folder)
set -u
NABLA=$1
CHECK=$2
SHOTDIR=${3:-}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nabla_report_XXXXXX)
[ -n "${NABLA_REPORT_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }

# ---- 1. the synthetic run folder --------------------------------------------------
S=$T/syn
mkdir -p "$S"
awk 'BEGIN { print "epoch,train_loss,train_acc,val_loss,val_acc,val_topk,lr,seconds,samples_per_s";
    for (e = 1; e <= 10; e++)
        printf "%d,%.6f,%.4f,%.6f,%.4f,nan,%.6g,%.3f,%.1f\n", e, 2.3 * exp(-0.5 * e) + 0.02,
            1 - 0.9 * exp(-0.4 * e), 2.3 * exp(-0.45 * e) + 0.05, 1 - 0.9 * exp(-0.35 * e),
            0.001 * (1 + cos(3.14159265 * e / 10)) / 2, 1.5 + e / 100, 20000 + e }' > "$S/log.csv"
# 2500 steps, 250 per epoch; a loss spike at step 1234; lr warmup then cosine
awk 'BEGIN { srand(7); print "step,epoch,loss,lr,grad_norm";
    for (s = 1; s <= 2500; s++) {
        l = 2.3 * exp(-s / 500) + 0.02 + 0.05 * rand(); if (s == 1234) l = 50;
        lr = s <= 100 ? 0.001 * s / 100 : 0.0005 * (1 + cos(3.14159265 * (s - 100) / 2400));
        printf "%d,%d,%.6g,%.6g,%.6g\n", s, int((s - 1) / 250) + 1, l, lr, 5 * exp(-s / 700) + rand() * 0.1 } }' \
    > "$S/steps.csv"
# every 5 steps: fc1.weight, fc1.bias, fc2.weight (fc2.weight: 0 at step 5, nan at step 10)
awk 'BEGIN { print "step,epoch,name,grad_norm,weight_norm,update_ratio";
    for (s = 5; s <= 2500; s += 5) { e = int((s - 1) / 250) + 1;
        printf "%d,%d,fc1.weight,%.6g,%.6g,%.6g\n", s, e, 0.5 * exp(-s / 400), 8 + s / 1000, 1e-2 * exp(-s / 600);
        printf "%d,%d,fc1.bias,%.6g,%.6g,%.6g\n", s, e, 0.05 * exp(-s / 500), 0.1 + s / 10000, 3e-3;
        g = s == 5 ? "0" : s == 10 ? "nan" : sprintf("%.6g", 2 * exp(-s / 900));
        printf "%d,%d,fc2.weight,%s,%.6g,%.6g\n", s, e, g, 3 + s / 2000, 2e-3 * exp(-s / 1500) } }' \
    > "$S/params.csv"
awk 'BEGIN { print "step,epoch,layer,kind,mean,std,dead_frac,sat_frac";
    for (s = 5; s <= 2500; s += 5) { e = int((s - 1) / 250) + 1;
        printf "%d,%d,fc1,linear,%.6g,%.6g,0,0\n", s, e, 0.01, 1 + s / 5000;
        printf "%d,%d,1,relu,%.6g,%.6g,%.6g,0\n", s, e, 0.4, 0.6, 0.05 + 0.25 * s / 2500;
        printf "%d,%d,fc2,linear,%.6g,%.6g,0,0\n", s, e, -0.02, 2 - s / 2500;
        printf "%d,%d,3,sigmoid,%.6g,%.6g,0,%.6g\n", s, e, 0.5, 0.3, 0.1 + 0.3 * s / 2500 } }' \
    > "$S/acts.csv"
# every 50 steps, 10 bins; fc1.bias weights all 0 (lo = hi) at the first step
awk 'BEGIN { print "step,epoch,name,what,lo,hi,counts";
    split("fc1.weight fc1.bias fc2.weight", P, " ");
    for (s = 50; s <= 2500; s += 50) { e = int((s - 1) / 250) + 1;
        for (p = 1; p <= 3; p++) for (w = 0; w < 2; w++) {
            what = w ? "grad" : "weight"; sc = w ? 0.01 * exp(-s / 800) : 0.1 * p * (1 + s / 2500);
            if (p == 2 && w == 0 && s == 50) { printf "%d,%d,%s,%s,0,0,16 0 0 0 0 0 0 0 0 0\n", s, e, P[p], what; continue }
            c = ""; for (b = 0; b < 10; b++) { x = (b - 4.5) / 2.5; c = c (b ? " " : "") int(100 * p * exp(-x * x * (1 + s / 2500)) + 0.5) }
            printf "%d,%d,%s,%s,%.6g,%.6g,%s\n", s, e, P[p], what, -sc, sc, c } } }' > "$S/hist.csv"
cat > "$S/alarms.csv" <<'EOF'
epoch,step,kind,where,value,threshold,action,message
5,1234,loss_spike,"",50,3.21,warn,"loss 50 is 12.3 standard deviations above the mean, ""spike"" at <script>alert(1)</script>"
6,1300,vanishing,"fc1.bias",1e-07,0.0001,skip,"gradient norm of fc1.bias is 1e-07 x the output layer's"
9,2400,nonfinite,"fc2 (linear, backward)",nan,0,stop,"NaN in the gradient of fc2.weight & friends"
EOF
cat > "$S/manifest.json" <<'EOF'
{"nabla": "0.6.0", "compiler": "gcc 12.2.0", "build_type": "Release", "c_flags": "-O2",
 "sanitize": false, "openmp": 201511, "blas": "OpenBLAS 0.3.21 DYNAMIC_ARCH Haswell MAX_THREADS=64",
 "blas_core": "Haswell", "blas_threads": 1, "threads": 2, "seed": 3, "host": "test-host",
 "os": {"sysname": "Linux", "release": "6.1.0", "version": "#1 SMP <b>", "machine": "x86_64"},
 "time": "2024-05-01T12:00:00Z",
 "config": "[data]\nformat = csv ; <script>alert('config')</script> & <b>\n[train]\nepochs = 10\n"}
EOF
awk 'BEGIN { print "lr,loss,smoothed"; sm = 0;
    for (i = 0; i < 60; i++) { lr = 1e-6 * 10 ^ (i / 10); l = 2.3 - 1.5 / (1 + exp(-(i - 25) / 4)) + (i > 50 ? (i - 50) ^ 2 / 10 : 0);
        sm = i ? 0.8 * sm + 0.2 * l : l; printf "%.6g,%.6g,%.6g\n", lr, l, sm }
    print "# suggestion 0.00316228" }' > "$S/lr_find.csv"

out=$("$NABLA" report "$S" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -s "$S/report.html" ] && [ -d "$S/plots" ]; then
    ok "synthetic: report written ($out)"
else
    bad "synthetic: rc=$rc $out"
fi
if $PY "$CHECK" "$S" --synthetic; then ok "synthetic: report_check.py"; else bad "synthetic: report_check.py"; fi

# --out: the same page elsewhere (without links to plots/, which stays in the run folder)
if "$NABLA" report "$S" --out "$T/other.html" > /dev/null 2>&1 &&
    sed 's| <a href="plots/[^"]*">SVG</a>||' "$S/report.html" | cmp -s - "$T/other.html" &&
    "$NABLA" report "$S" --out "$S/./same.html" > /dev/null 2>&1 && cmp -s "$S/same.html" "$S/report.html"; then
    ok "--out writes the same page elsewhere"
else
    bad "--out"
fi
rm -f "$S/same.html"

# only log.csv: every other section says so
M=$T/minimal
mkdir -p "$M"
cp "$S/log.csv" "$M/"
if "$NABLA" report "$M" > /dev/null 2>&1 && $PY "$CHECK" "$M"; then
    ok "log.csv alone: a report, other sections 'not recorded'"
else
    bad "log.csv alone"
fi

# ---- errors: FILE:LINE and exit 1 -------------------------------------------------
err_case() { # name, folder, expected message (a grep -F pattern)
    out=$("$NABLA" report "$2" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && printf '%s\n' "$out" | grep -qF "$3"; then ok "error: $1 ($out)"; else bad "error: $1: rc=$rc '$out' (want '$3')"; fi
}
E=$T/err
mkdir -p "$E"
err_case "no log.csv" "$E" "nabla: report: $E/log.csv: cannot open: No such file or directory"
err_case "no folder" "$T/nowhere" "nabla: report: $T/nowhere: not a folder"
cp "$S/log.csv" "$E/"
sed -i '4s/.*/3,0.5,0.9/' "$E/log.csv"
err_case "short row" "$E" "nabla: report: $E/log.csv:4: 3 fields, the header has 9"
cp "$S/log.csv" "$E/"
sed -i '6s/^5,[^,]*,/5,abc,/' "$E/log.csv"
err_case "not a number" "$E" "nabla: report: $E/log.csv:6: train_loss: 'abc' is not a number"
cp "$S/log.csv" "$E/"
printf 'step,epoch,loss,lr,grad_norm\n1,1,0.5,0.1,1\n2,1,0.4,0.1,x1\n' > "$E/steps.csv"
err_case "steps.csv number" "$E" "$E/steps.csv:3: grad_norm: 'x1' is not a number"
rm "$E/steps.csv"
printf 'step,epoch,name,grad\n' > "$E/params.csv"
err_case "missing column" "$E" "$E/params.csv:1: no column 'grad_norm' in the header"
rm "$E/params.csv"
printf 'epoch,step,kind,where,value,threshold,action,message\n1,2,exploding,"fc1,3,4,warn,"x"\n' > "$E/alarms.csv"
err_case "bad quoting" "$E" "$E/alarms.csv:2: "
rm "$E/alarms.csv"
printf '{"version": "1",\n "seed": 3,\n "config": oops}\n' > "$E/manifest.json"
err_case "bad JSON" "$E" "$E/manifest.json:3: "
rm "$E/manifest.json"
printf 'step,epoch,name,what,lo,hi,counts\n10,1,w,weight,-1,1,3 x 4\n' > "$E/hist.csv"
err_case "bad counts" "$E" "$E/hist.csv:2: counts: 'x 4' is not a count"
rm "$E/hist.csv"
: > "$E/log.csv"
err_case "empty log.csv" "$E" "$E/log.csv:1: empty file (no header line)"
out=$("$NABLA" report 2>&1)
[ $? -eq 2 ] && printf '%s\n' "$out" | grep -q '^usage: nabla report' && ok "usage: exit 2" || bad "usage: $out"

# ---- 2. a real run ------------------------------------------------------------------
awk 'BEGIN { srand(5); print "a,b,c,d,y";
    for (i = 0; i < 400; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand(); d = rand();
        printf "%.5f,%.5f,%.5f,%.5f,%d\n", a, b, c, d, (a + b > 0) ? 1 : 0 } }' > "$T/train.csv"
R=$T/real
cat > "$T/real.ini" <<EOC
[data]
format = csv
train = $T/train.csv
label = y
normalize = feature
val_fraction = 0.2
batch_size = 16

[model]
layers = linear:16, relu, linear:8, sigmoid, linear:2

[optim]
name = adam
lr = 0.01

[schedule]
name = cosine
per_batch = true

[train]
epochs = 4
seed = 3
out = $R

[diag]
every = 5
hist_every = 10
EOC
# what the run folder holds is checked whatever it is (report_check.py reads
# its expectations from the files); per-layer diagnostics are not required yet
if ! "$NABLA" train "$T/real.ini" > "$T/train.out" 2>&1; then
    bad "real: nabla train failed: $(tail -n 3 "$T/train.out")"
else
    [ -s "$R/params.csv" ] || echo "skip real run: no diagnostics yet"
    out=$("$NABLA" report "$R" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && ok "real: report ($out)" || bad "real: rc=$rc $out"
    if $PY "$CHECK" "$R"; then ok "real: report_check.py ($(cd "$R" && ls *.csv *.json 2>/dev/null | tr '\n' ' '))"; else bad "real: report_check.py"; fi
fi

# ---- 3. headless Chromium -----------------------------------------------------------
# NABLA_CHROMIUM: the browser to run (set and empty: behave as if none is installed)
CHROME=${NABLA_CHROMIUM-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROME" ]; then
    if [ "${NABLA_REQUIRE_CHROMIUM:-0}" = 1 ]; then
        bad "chromium: not installed, and NABLA_REQUIRE_CHROMIUM=1 (apt-get install chromium)"
    else
        echo "skip chromium: not installed"
    fi
else
    # a private profile; no network, no first-run pages; --no-sandbox for root in CI
    set -- --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
        --disable-extensions --disable-sync --user-data-dir="$T/chrome" --crash-dumps-dir="$T/chrome"
    URL="file://$S/report.html"
    t0=$(date +%s)
    HOME=$T timeout 120 "$CHROME" "$@" --enable-logging=stderr --v=0 --dump-dom "$URL" \
        > "$T/dom.html" 2> "$T/chrome.err"
    rc=$?
    if [ $rc -ne 0 ] || ! grep -q 'id="plot-loss"' "$T/dom.html"; then
        bad "chromium: --dump-dom rc=$rc: $(tail -n 5 "$T/chrome.err")"
    elif grep -E 'CONSOLE|Uncaught|ERROR:CONSOLE' "$T/chrome.err"; then
        bad "chromium: console messages (above)"
    else
        ok "chromium: the page loads with no console messages ($(($(date +%s) - t0)) s)"
    fi
    t0=$(date +%s)
    HOME=$T timeout 120 "$CHROME" "$@" --hide-scrollbars --window-size=1200,3000 \
        --screenshot="$T/shot.png" "$URL" > "$T/shot.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && $PY "$CHECK" --png "$T/shot.png" 1200 3000; then
        ok "chromium: screenshot 1200x3000, not blank ($(($(date +%s) - t0)) s)"
        [ -n "$SHOTDIR" ] && cp "$T/shot.png" "$SHOTDIR/report_screenshot.png"
    else
        bad "chromium: screenshot rc=$rc: $(tail -n 5 "$T/shot.out")"
    fi
fi

echo "report: $fails failures"
[ $fails -eq 0 ]
