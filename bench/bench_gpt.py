#!/usr/bin/python3
"""bench_gpt.c in PyTorch: the same tiny GPT (embedding 256 x 128 ~ N(0, 0.02),
learned positions, 4 x TransformerEncoderLayer(128, 4, 512, dropout 0, gelu,
batch_first, norm_first) under a causal mask, LayerNorm, output layer tied to
the embedding), AdamW lr 1e-3 with weight decay 0.1 on the matrices only,
batch 16 x 128 random windows of /usr/share/common-licenses. Prints the same
line as the C benchmark. Usage: bench_gpt.py [steps]"""
import os
import resource
import sys
import time

import torch

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
torch.manual_seed(1)
CTX, B, V, W = 128, 16, 256, 128
d = "/usr/share/common-licenses"
data = b"".join(open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))
                if not os.path.islink(os.path.join(d, f)) and not f.startswith("."))
tok = torch.tensor(list(data), dtype=torch.long)
nn = torch.nn


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, W)
        nn.init.normal_(self.emb.weight, 0, 0.02)
        self.pos = nn.Parameter(torch.randn(CTX, W) * 0.02)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(W, 4, 4 * W, dropout=0.0, activation="gelu",
                                                               batch_first=True, norm_first=True)
                                    for _ in range(4))
        self.ln_f = nn.LayerNorm(W)
        self.register_buffer("mask", torch.ones(CTX, CTX, dtype=torch.bool).triu(1))

    def forward(self, x):
        t = x.shape[1]
        h = self.emb(x) + self.pos[:t]
        for b in self.blocks:
            h = b(h, src_mask=self.mask[:t, :t])
        return self.ln_f(h) @ self.emb.weight.t()


model = GPT()
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3)
n_params = sum(p.numel() for p in model.parameters())
times, t0 = [], 0.0
for s in range(-3, 3 * steps):
    if s >= 0 and s % steps == 0:
        t1 = time.perf_counter()
        if s > 0:
            times.append(t1 - t0)
        t0 = t1
    starts = torch.randint(0, tok.numel() - CTX - 1, (B,))
    idx = starts[:, None] + torch.arange(CTX + 1)[None, :]
    w = tok[idx]
    loss = torch.nn.functional.cross_entropy(model(w[:, :-1]).reshape(-1, V), w[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
times.append(time.perf_counter() - t0)
t = sorted(times)[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("gpt steps=%d seconds=%.4f tokens_per_s=%.0f rss_mb=%.1f params=%d" % (steps, t, steps * B * CTX / t, rss,
                                                                             n_params))
