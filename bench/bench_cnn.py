#!/usr/bin/python3
"""bench_cnn.c in PyTorch: the same CNN (conv32-pool-conv64-pool-fc128-fc10,
batch 64, Adam) on u8 images in memory normalised per batch; 5 warm-up
steps, then the median of three rounds of `steps` steps. Same output line."""
import resource
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
torch.manual_seed(1)
N = 6400
x = torch.randint(0, 256, (N, 1, 28, 28), dtype=torch.uint8)
y = torch.randint(0, 10, (N,))
mean, std = x.float().mean(), x.float().std()
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
perm, pos, times, t0 = torch.randperm(N), 0, [], 0.0
for s in range(-5, 3 * steps):
    if s >= 0 and s % steps == 0:
        t1 = time.perf_counter()
        if s > 0:
            times.append(t1 - t0)
        t0 = t1
    if pos + 64 > N:
        perm, pos = torch.randperm(N), 0
    idx = perm[pos:pos + 64]
    pos += 64
    xb = (x[idx].float() - mean) / std
    loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
times.append(time.perf_counter() - t0)
t = sorted(times)[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("cnn steps=%d seconds=%.4f samples_per_s=%.0f rss_mb=%.1f" % (steps, t, steps * 64 / t, rss))
