#!/usr/bin/python3
"""The model of bench_xor.c in PyTorch: 2-4-1 MLP, tanh, BCE with logits,
SGD lr 0.5, full batch of 4; 2000 warm-up steps, then three timed rounds
of N steps, the median round reported. Same output line."""
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
torch.manual_seed(1)
x = torch.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
y = torch.tensor([[0.], [1.], [1.], [0.]])
model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
lossf = torch.nn.BCEWithLogitsLoss()
rounds, times, t0 = 3, [], 0.0
for s in range(-2000, rounds * steps):  # 2000 warm-up steps, then 3 timed rounds
    if s >= 0 and s % steps == 0:
        t1 = time.perf_counter()
        if s > 0:
            times.append(t1 - t0)
        t0 = t1
    opt.zero_grad()
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
times.append(time.perf_counter() - t0)
t = sorted(times)[rounds // 2]  # the median round
print("xor steps=%d seconds=%.4f steps_per_s=%.0f final_loss=%.5f" % (steps, t, steps / t, loss.item()))
