#!/bin/sh
# Runs each benchmark side by side with PyTorch, interleaved (nabla, torch,
# nabla, torch, ...) so both see the same machine, at 1 and 2 threads, and
# prints the medians and their ratio. PyTorch runs at its best settings:
# OPENBLAS_NUM_THREADS and OMP_NUM_THREADS pinned to the thread count, and
# OMP_WAIT_POLICY=passive at 2 threads.
# Usage: bench/run.sh [BUILD_DIR] [REPEATS] [BENCH...]   (build first: see README)
#   BENCH: xor, matmul, mlp, cnn, lstm, gpt (default: all)
set -eu
BUILD=${1:-build}
REPS=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
WHICH=${*:-xor matmul mlp cnn lstm gpt}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

run_pair() { # name threads metric extra-metric nabla-cmd torch-cmd
    name=$1 t=$2 metric=$3 extra=$4 ncmd=$5 tcmd=$6
    nout=$(mktemp) tout=$(mktemp)
    wait_policy=
    [ "$t" -gt 1 ] && wait_policy=passive
    i=0
    while [ $i -lt "$REPS" ]; do
        NABLA_NUM_THREADS=$t sh -c "$ncmd" >>"$nout"
        env OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" ${wait_policy:+OMP_WAIT_POLICY=$wait_policy} \
            sh -c "$tcmd" >>"$tout"
        i=$((i + 1))
    done
    n=$(field "$metric" <"$nout" | median) tm=$(field "$metric" <"$tout" | median)
    printf '%-28s threads=%d  nabla %12s  torch %12s  ratio %6.2fx   (%s, median of %d)\n' \
        "$name" "$t" "$n" "$tm" "$(echo "$n $tm" | awk '{print $1/$2}')" "$metric" "$REPS"
    if [ -n "$extra" ]; then
        n=$(field "$extra" <"$nout" | median) tm=$(field "$extra" <"$tout" | median)
        printf '%-28s threads=%d  nabla %12s  torch %12s  ratio %6.2fx   (%s)\n' \
            "" "$t" "$n" "$tm" "$(echo "$n $tm" | awk '{print $1/$2}')" "$extra"
    fi
    rm -f "$nout" "$tout"
}

for t in 1 2; do
    for b in $WHICH; do
        case $b in
        xor) run_pair "xor 2-4-1, 10k steps" "$t" steps_per_s "" \
            "$BUILD/bench/bench_xor 10000 $t" "$PY $HERE/bench_xor.py 10000" ;;
        matmul) run_pair "matmul 1024^3 fwd+bwd" "$t" gflops "" \
            "$BUILD/bench/bench_matmul 1024 10 $t" "$PY $HERE/bench_matmul.py 1024 10" ;;
        mlp) run_pair "mlp 784-512-256-10 adam b128" "$t" samples_per_s rss_mb \
            "$BUILD/bench/bench_mlp 200 $t" "$PY $HERE/bench_mlp.py 200" ;;
        cnn) run_pair "cnn conv32-conv64-fc b64 adam" "$t" samples_per_s rss_mb \
            "$BUILD/bench/bench_cnn 50 $t" "$PY $HERE/bench_cnn.py 50" ;;
        lstm) run_pair "lstm emb64-lstm256 b32x64 adam" "$t" tokens_per_s rss_mb \
            "$BUILD/bench/bench_lstm 20 $t" "$PY $HERE/bench_lstm.py 20" ;;
        gpt) run_pair "tiny gpt 4x128 ctx128 b16 adamw" "$t" tokens_per_s rss_mb \
            "$BUILD/bench/bench_gpt 8 $t" "$PY $HERE/bench_gpt.py 8" ;;
        *) echo "unknown benchmark $b" >&2; exit 2 ;;
        esac
    done
done
