#!/bin/sh
# nabla tune end to end.
#   tune_test.sh NABLA
#     On a small generated CSV problem: grid, random and bayes searches over
#     lr and batch size (tune.csv rows, successive halving, the final line),
#     the same trials from the same seed, best.ini (trains, its keys win, and
#     it reproduces the best trial's metric exactly), and the errors for a bad
#     space.
#   tune_test.sh NABLA --fashion CONFIG
#     The acceptance check on Fashion-MNIST (configs/tune_fashion.ini): the
#     best trial other than the default (trial 0) is at least as good as it, both
#     at the full budget. Exit 77 without the dataset.
# KEEP=1 keeps the temporary folder (its name is printed first).
set -u
NABLA=$1
T=$(mktemp -d /tmp/nabla_tune_XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT; echo "folder $T"
fails=0
ok() { printf 'ok   %s\n' "$1"; }
bad() { printf 'FAIL %s\n' "$1"; fails=$((fails + 1)); }
field() { printf '%s\n' "$2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; } # key=value in a line

if [ "${2:-}" = "--fashion" ]; then
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || exit 77
    start=$(date +%s)
    "$NABLA" tune "$3" --set "tune.out=$T/tune" > "$T/out.txt" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    cat "$T/out.txt"
    last=$(tail -n 1 "$T/out.txt")
    best=$(field metric "$last")
    def=$(field default_metric "$last")
    trial=$(field best_trial "$last")
    csv="$T/tune/tune.csv"
    # at the full budget (the last rung, the default there as the reference):
    # the best trial other than the default, and the default
    top=$(awk -F, 'NR > 1 { if ($2 > r) r = $2; row[NR] = $0 } END {
        for (i in row) { split(row[i], f, ","); if (f[2] == r && f[1] != 0 && (n++ == 0 || f[4] > m)) { m = f[4]; t = f[1]; a = f[7]; e = f[3] } }
        printf "%s %s %s %s", t, m, a, e }' "$csv")
    ref=$(awk -F, 'NR > 1 && $1 == 0 { m = $4; a = $7; e = $3 } END { printf "%s %s %s", m, a, e }' "$csv")
    set -- $top $ref
    echo "tune_fashion: ${secs}s; final line: $last"
    echo "tune_fashion: best search trial $1: val_acc=$2 test_acc=$3 ($4 epochs);" \
         "default: val_acc=$5 test_acc=$6 ($7 epochs)"
    # the final line: the better of the two (the default is ranked too)
    if [ $rc -eq 0 ] && awk -v b="$best" -v t="$trial" -v s="$2" -v st="$1" -v d="$5" 'BEGIN {
            w = s >= d ? s : d; wt = s >= d ? st : 0; e = b - w; exit !(t == wt && e < 1e-6 && e > -1e-6) }'; then
        ok "the final line names the best trial ($trial, $best)"
    else
        bad "final line: rc=$rc $last"
    fi
    # the search found a config (not the default itself) at least as good as
    # the default, both trained for the full budget
    if [ $# -eq 7 ] && [ "$4" = "$7" ] && awk -v b="$2" -v d="$5" 'BEGIN { exit !(b >= d) }' &&
        awk -v d="$def" -v x="$5" 'BEGIN { e = d - x; exit !(e < 1e-6 && e > -1e-6) }'; then
        ok "trial $1 of 12 is at least as good as the default: val_acc $2 >= $5 at $4 epochs"
    else
        bad "the search found nothing as good as the default: $top / $ref"
    fi
    [ $fails -eq 0 ]
    exit
fi

# 300 rows, 4 features, class 1 when x1 + x2 > 0 (as in cli_test.sh)
gen() {
    awk -v seed="$2" 'BEGIN { srand(seed); print "a,b,c,d,y";
        for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand(); d = rand();
            printf "%.5f,%.5f,%.5f,%.5f,%d\n", a, b, c, d, (a + b > 0) ? 1 : 0 } }' > "$1"
}
gen "$T/train.csv" 1
gen "$T/test.csv" 2

# cosine per batch: its length is pinned to the full budget across rungs
cat > "$T/c.ini" <<EOC
[data]
format = csv
train = $T/train.csv
test = $T/test.csv
label = y
normalize = feature
batch_size = 32

[model]
layers = linear:16, tanh, linear:2

[optim]
name = sgd
lr = 0.1
momentum = 0.9

[schedule]
name = cosine
per_batch = true

[train]
epochs = 3
seed = 3
out = $T/run

[tune]
trials = 6
min_epochs = 1
eta = 3
; one dimension per line (a multi-line value)
space = optim.lr log 0.003 0.3
        data.batch_size choice 16 32 64
EOC

# run METHOD OUT [--set ...]: the search; its final line in $last
run() {
    m=$1 out=$2
    shift 2
    "$NABLA" tune "$T/c.ini" --set "tune.method=$m" --set "tune.out=$out" "$@" > "$out.txt" 2>&1
    rc=$?
    last=$(tail -n 1 "$out.txt")
}

for m in grid random bayes; do
    extra=""
    [ $m = grid ] && extra="--set tune.trials=10" # 3 lr x 3 batch sizes + the default
    run $m "$T/$m" $extra
    eval "last_$m=\$last"
    n=6
    [ $m = grid ] && n=10
    if [ $rc -eq 0 ] && printf '%s\n' "$last" |
        grep -Eq '^tune best_trial=[0-9]+ metric=[0-9.]+ default_metric=[0-9.]+ params=".*"$'; then
        ok "$m: final line ($last)"
    else
        bad "$m: rc=$rc: $(tail -n 5 "$T/$m.txt")"
        continue
    fi
    csv="$T/$m/tune.csv"
    [ "$(head -n 1 "$csv")" = "trial,rung,epochs,metric,val_loss,val_acc,test_acc,seconds,optim.lr,data.batch_size" ] &&
        ok "$m: tune.csv header" || bad "$m: tune.csv header: $(head -n 1 "$csv")"
    r0=$(awk -F, 'NR > 1 && $2 == 0' "$csv" | wc -l)
    r1=$(awk -F, 'NR > 1 && $2 == 1 && $3 == 3' "$csv" | wc -l)
    [ "$r0" -eq $n ] && [ "$(awk -F, 'NR > 1 && $2 == 0 && $3 != 1' "$csv" | wc -l)" -eq 0 ] &&
        ok "$m: $n trials at rung 0, 1 epoch each" || bad "$m: rung 0 rows: $r0 $(cat "$csv")"
    # halving: the best n/3 continue to 3 epochs (the default too, as the reference)
    [ "$r1" -ge 1 ] && [ "$r1" -le $((n / 3 + 1)) ] && ok "$m: halving: $r1 of $n trials reach 3 epochs" ||
        bad "$m: halving: $r1 rows at the last rung: $(cat "$csv")"
    [ -s "$T/$m/trial_001/last.safetensors" ] && [ -s "$T/$m/trial_000/log.csv" ] &&
        ok "$m: trial folders" || bad "$m: trial folders: $(ls "$T/$m")"
    # the best trial and its metric are the best row at the last rung
    best=$(field best_trial "$last")
    metric=$(field metric "$last")
    awk -F, -v b="$best" -v m="$metric" 'NR > 1 && $2 == 1 { n++; if ($4 < min || n == 1) { min = $4; arg = $1 } }
        END { d = min - m; exit !(arg == b && d < 1e-5 && d > -1e-5) }' "$csv" &&
        ok "$m: best_trial $best is the lowest val_loss at the last rung" || bad "$m: best $best $metric: $(cat "$csv")"
done

# grid: the 3 x 3 grid of lr (log-spaced) and batch size, in order
pts=$(awk -F, 'NR > 2 && $2 == 0 { printf "%s/%s ", $9, $10 }' "$T/grid/tune.csv")
[ "$pts" = "0.003/16 0.003/32 0.003/64 0.03/16 0.03/32 0.03/64 0.3/16 0.3/32 0.3/64 " ] &&
    ok "grid: points" || bad "grid: points: $pts"
# a grid larger than the trials: a sample of it without repeats
run grid "$T/grid_small" --set tune.trials=4
npts=$(awk -F, 'NR > 2 && $2 == 0 { print $9, $10 }' "$T/grid_small/tune.csv" | sort -u | wc -l)
[ $rc -eq 0 ] && [ "$npts" -eq 3 ] && ok "grid: 3 distinct points of the 2 x 3 grid for 4 trials" ||
    bad "grid: sample: rc=$rc $(cat "$T/grid_small/tune.csv")"

# the same seed, the same trials and results (all but the seconds column)
run random "$T/random2"
cut -d, -f1-7,9- "$T/random/tune.csv" > "$T/a.csv"
cut -d, -f1-7,9- "$T/random2/tune.csv" > "$T/b.csv"
cmp -s "$T/a.csv" "$T/b.csv" && ok "random: the same seed gives the same trials" || bad "random: not repeatable"
run random "$T/random3" --set train.seed=4
cut -d, -f9- "$T/random3/tune.csv" > "$T/c.csv"
cut -d, -f9- "$T/random/tune.csv" > "$T/d.csv"
cmp -s "$T/c.csv" "$T/d.csv" && bad "random: another seed, the same points" || ok "random: another seed, other points"

# bayes: the model's proposals (trials 4 and 5) are new points
awk -F, 'NR > 1 && $2 == 0 { print $9, $10 }' "$T/bayes/tune.csv" | sort | uniq -d | grep -q . &&
    bad "bayes: a point twice: $(cat "$T/bayes/tune.csv")" || ok "bayes: 6 distinct points"

# best.ini: the original text and the best trial's keys after it (the last wins)
best=$(field best_trial "$last_bayes")
metric=$(field metric "$last_bayes")
bi="$T/bayes/best.ini"
head -n "$(wc -l < "$T/c.ini")" "$bi" | cmp -s - "$T/c.ini" && ok "best.ini starts with the config" ||
    bad "best.ini: $(cat "$bi")"
lr=$(awk -F, -v b="$best" 'NR > 1 && $1 == b { v = $9 } END { print v }' "$T/bayes/tune.csv")
[ "$best" -eq 0 ] && lr=0.1
if "$NABLA" train "$bi" --set train.epochs=1 --set schedule.name=constant --set "train.out=$T/b1" > "$T/b1.txt" 2>&1 &&
    awk -F, -v lr="$lr" 'NR == 2 { d = $7 - lr; exit !(d < 1e-9 * lr + 1e-12 && d > -1e-9 * lr - 1e-12) }' "$T/b1/log.csv"; then
    ok "best.ini trains with the best trial's lr ($lr, trial $best)"
else
    bad "best.ini: lr $lr: $(cat "$T/b1.txt") $(cat "$T/b1/log.csv")"
fi
# trained from scratch for all 3 epochs it ends where the trial did (resumed
# twice, its schedule pinned): the best epoch's val_loss, to the digit
"$NABLA" train "$bi" --set "train.out=$T/b3" > "$T/b3.txt" 2>&1
repro=$(awk -F, 'NR > 1 && (NR == 2 || $4 < m) { m = $4 } END { printf "%.6f", m }' "$T/b3/log.csv")
awk -v a="$repro" -v b="$metric" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }' &&
    ok "best.ini reproduces the best trial: val_loss $repro = $metric" ||
    bad "best.ini does not reproduce: $repro vs $metric: $(cat "$T/b3/log.csv")"

# errors: the key, the kind, the range
expect_err() { # name, expected substring, command...
    name=$1 want=$2
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 2 ] && printf '%s\n' "$out" | grep -qF -- "$want"; then ok "$name"; else bad "$name: rc=$rc: $out"; fi
}
tn() { "$NABLA" tune "$T/c.ini" --set "tune.out=$T/err" --set "tune.space=$1"; }
expect_err "error: unknown key" "[tune] space: 'optim.lrr log 1e-3 1e-1': optim.lrr=0.001: unknown key 'lrr' in [optim]" tn "optim.lrr log 1e-3 1e-1"
expect_err "error: unknown section" "unknown section [optm]" tn "optm.lr log 1e-3 1e-1"
expect_err "error: bad kind" "optim.lr: unknown kind 'logg' (log LO HI, uniform LO HI, int LO HI or choice V1 V2 ...)" tn "optim.lr logg 1e-3 1e-1"
expect_err "error: LO > HI" "optim.lr log: LO (0.1) must be less than HI (0.001)" tn "optim.lr log 0.1 1e-3"
expect_err "error: log from 0" "optim.lr log: LO must be > 0" tn "optim.lr log 0 0.1"
expect_err "error: not numbers" "optim.lr uniform needs two numbers LO HI" tn "optim.lr uniform 0.1"
expect_err "error: out of the key's range" "data.val_fraction=1.5: [data] val_fraction must be in [0, 0.99], got 1.5" tn "data.val_fraction uniform 0.1 1.5"
expect_err "error: an integer key" "[data] batch_size: '" tn "data.batch_size uniform 16 64"
expect_err "error: a bad choice" "optim.name=adamx: [optim] name: 'adamx' is not one of" tn "optim.name choice adam adamx"
expect_err "error: the budget" "train.epochs cannot be tuned" tn "train.epochs int 1 5"
expect_err "error: a key twice" "optim.lr appears twice" tn "optim.lr log 1e-3 1e-1; optim.lr uniform 0 1"
expect_err "error: empty space" "[tune] space is empty" tn " "
sed 's/^space = optim.lr log 0.003 0.3$/space = optim.lr log 0.003 0.3 ; data.batch_size choice 16 32/' "$T/c.ini" > "$T/comment.ini"
line=$(grep -n '^space = ' "$T/comment.ini" | cut -d: -f1)
expect_err "error: ' ;' is a comment" "config: $T/comment.ini:$line: [tune] space: ' ;' starts a comment in an INI file, so 'data.batch_size choice 16 32' would be ignored" \
    "$NABLA" tune "$T/comment.ini" --set "tune.out=$T/err"
expect_err "error: no validation rows" "val_fraction must be > 0" "$NABLA" tune "$T/c.ini" --set data.val_fraction=0
# ';' separates dimensions on the command line; '|' choice values with spaces
run random "$T/layers" --set tune.trials=3 --set "tune.space=optim.lr log 0.01 0.3; model.layers choice linear:8, tanh, linear:2 | linear:16, relu, linear:2"
[ $rc -eq 0 ] && grep -q '"linear:8, tanh, linear:2"\|"linear:16, relu, linear:2"' "$T/layers/tune.csv" &&
    ok "choice of layer lists with '|'" || bad "layers: rc=$rc $(tail -n 5 "$T/layers.txt")"

echo "tune: $fails failures"
[ $fails -eq 0 ]
