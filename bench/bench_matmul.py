#!/usr/bin/python3
"""bench_matmul.c in PyTorch: n x n x n float32 matmul forward and backward
(3 GEMMs of 2 n^3 flops per iteration). Same output line."""
import sys
import time

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.manual_seed(0)
a = torch.randn(n, n, requires_grad=True)
b = torch.randn(n, n, requires_grad=True)
g = torch.ones(n, n)
t0 = 0.0
for it in range(-1, iters):  # one warm-up
    if it == 0:
        t0 = time.perf_counter()
    c = a @ b
    c.backward(g)
    a.grad = None
    b.grad = None
t = time.perf_counter() - t0
print("matmul n=%d iters=%d seconds=%.4f gflops=%.2f" % (n, iters, t, 6.0 * n ** 3 * iters / t * 1e-9))
