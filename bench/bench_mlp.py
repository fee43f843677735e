#!/usr/bin/python3
"""bench_mlp.c in PyTorch: the Fashion-MNIST MLP (784-512-256-10, ReLU,
cross-entropy, Adam lr 1e-3, batch 128). Usage: bench_mlp.py [steps]"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_loop import run  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
torch.manual_seed(1)
N = 60000
x = torch.randint(0, 256, (N, 784), dtype=torch.uint8)
y = torch.randint(0, 10, (N,))
nn = torch.nn
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
run("mlp", model, x, y, 128, steps, 20)
