#!/usr/bin/python3
"""bench_mlp.c in PyTorch: the Fashion-MNIST MLP (784-512-256-10, ReLU,
cross-entropy, Adam lr 1e-3, batch 128) on u8 data in memory, normalised
per batch, shuffled per epoch by index; 20 warm-up steps, then the median of
three rounds of `steps` steps. Same output line."""
import resource
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
torch.manual_seed(1)
N = 60000
x = torch.randint(0, 256, (N, 784), dtype=torch.uint8)
y = torch.randint(0, 10, (N,))
mean, std = x.float().mean(), x.float().std()
model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                            torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
perm, pos, times, t0 = torch.randperm(N), 0, [], 0.0
for s in range(-20, 3 * steps):
    if s >= 0 and s % steps == 0:
        t1 = time.perf_counter()
        if s > 0:
            times.append(t1 - t0)
        t0 = t1
    if pos + 128 > N:
        perm, pos = torch.randperm(N), 0
    idx = perm[pos:pos + 128]
    pos += 128
    xb = (x[idx].float() - mean) / std
    loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
times.append(time.perf_counter() - t0)
t = sorted(times)[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("mlp steps=%d seconds=%.4f samples_per_s=%.0f rss_mb=%.1f" % (steps, t, steps * 128 / t, rss))
