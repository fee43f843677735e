#!/usr/bin/python3
"""The model of bench_xor.c in PyTorch: 2-4-1 MLP, tanh, BCE with logits,
SGD lr 0.5, full batch of 4, a fixed number of steps. Same output line."""
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
t0 = time.perf_counter()
for s in range(steps):
    opt.zero_grad()
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
t = time.perf_counter() - t0
print("xor steps=%d seconds=%.4f steps_per_s=%.0f final_loss=%.5f" % (steps, t, steps / t, loss.item()))
