#!/usr/bin/python3
"""bench_lstm.c in PyTorch: embedding 256 x 64 -> LSTM 64 -> 256 (one layer,
batch_first) -> linear 256, cross-entropy over the next bytes, Adam lr 1e-3;
batches of 32 random windows of 64 bytes of a text file, zero initial state.
5 warm-up steps, then the median of three rounds of `steps` steps.
Usage: bench_lstm.py [steps] [file]"""
import resource
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
path = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/common-licenses/GPL-3"
EMB, HID, T, B = 64, 256, 64, 32
torch.manual_seed(1)
with open(path, "rb") as f:
    tok = torch.tensor(list(f.read()), dtype=torch.int64)
nn = torch.nn


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(256, EMB)
        self.lstm = nn.LSTM(EMB, HID, batch_first=True)
        self.head = nn.Linear(HID, 256)

    def forward(self, x):
        return self.head(self.lstm(self.emb(x))[0])


model = LM()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
offs = torch.arange(T + 1)
times, cpus, t0, c0, warm = [], [], 0.0, 0.0, 5
for s in range(-warm, 3 * steps):
    if s >= 0 and s % steps == 0:
        t1, c1 = time.perf_counter(), time.process_time()
        if s > 0:
            times.append(t1 - t0)
            cpus.append(c1 - c0)
        t0, c0 = t1, c1
    start = torch.randint(0, tok.shape[0] - T - 1, (B, 1))
    w = tok[start + offs]
    x, y = w[:, :T], w[:, 1:]
    loss = torch.nn.functional.cross_entropy(model(x).reshape(B * T, 256), y.reshape(B * T))
    opt.zero_grad()
    loss.backward()
    opt.step()
times.append(time.perf_counter() - t0)
cpus.append(time.process_time() - c0)
t, c = sorted(times)[1], sorted(cpus)[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("lstm steps=%d seconds=%.4f tokens_per_s=%.0f rss_mb=%.1f tokens_per_cpu_s=%.0f"
      % (steps, t, steps * B * T / t, rss, steps * B * T / c))
