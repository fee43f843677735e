#!/usr/bin/python3
"""bench_cnn.c in PyTorch: conv 1->32 3x3 pad 1, ReLU, max-pool 2, conv
32->64 3x3 pad 1, ReLU, max-pool 2, linear 3136->128, ReLU, linear 128->10;
batch 64; Adam. Usage: bench_cnn.py [steps]"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_loop import run  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
torch.manual_seed(1)
N = 6400
x = torch.randint(0, 256, (N, 1, 28, 28), dtype=torch.uint8)
y = torch.randint(0, 10, (N,))
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
run("cnn", model, x, y, 64, steps, 5)
