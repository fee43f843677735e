#!/usr/bin/python3
"""The 3-layer MLP of test_mlp.c in PyTorch: same weights, same batch; the
loss and every parameter gradient must agree within 1e-5 (relative to each
tensor's largest value). Usage: parity_mlp.py DUMP_FILE"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5


def main(path):
    torch.set_num_threads(1)
    r = Reader(open(path, "rb").read())
    x, _ = r.tensor()
    y, _ = r.tensor()
    loss_nb, _ = r.tensor()
    params = {}
    while not r.done():
        name = r.str()
        w, _ = r.tensor()
        g, _ = r.tensor()
        params[name] = (w, g)
    model = torch.nn.Sequential()
    model.add_module("fc1", torch.nn.Linear(20, 64))
    model.add_module("relu", torch.nn.ReLU())
    model.add_module("fc2", torch.nn.Linear(64, 32))
    model.add_module("tanh", torch.nn.Tanh())
    model.add_module("fc3", torch.nn.Linear(32, 7))
    model.load_state_dict({k: torch.from_numpy(v[0]) for k, v in params.items()})
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    worst, ok = rel_err(loss_nb, loss.detach().numpy()), True
    print("%-11s rel err %.2e" % ("loss", worst))
    ok &= worst <= TOL
    for name, p in model.named_parameters():
        e = rel_err(params[name][1], p.grad.numpy())
        print("%-11s rel err %.2e" % (name + ".grad", e))
        ok &= e <= TOL
    print("mlp parity:", "ok" if ok else "MISMATCH", "(tolerance %g)" % TOL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
