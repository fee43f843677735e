#!/usr/bin/python3
"""Replays test_ops' float32 samples in PyTorch and compares.

For each sample the file holds the op name, a PyTorch expression over x0..x5,
the inputs, the upstream gradient W, nabla's output and nabla's input
gradients. The expression is evaluated in float32, backpropagated with W, and
the output and every input gradient must agree within 1e-5, measured as
max|nabla - torch| / max|torch| over the tensor (relative to its scale).
Exit status 1 on any mismatch. Usage: parity_ops.py PARITY_FILE
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401  (used by the expressions)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5


def main(path):
    torch.set_num_threads(1)
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if r.take(9) != b"NBPARITY1":
        print("parity: bad file header")
        return 1
    worst, count, failures = {}, 0, 0
    while r.p < len(data):
        name, expr = r.str(), r.str()
        n = r.u32()
        env = {"torch": torch, "F": F}
        xs = []
        for i in range(n):
            arr, rg = r.tensor()
            t = torch.from_numpy(arr)
            if rg:
                t.requires_grad_(True)
            env["x%d" % i] = t
            xs.append(t)
        w, _ = r.tensor()
        out, _ = r.tensor()
        grads = [r.tensor()[0] for _ in range(n)]
        env["OUT"] = torch.from_numpy(out)
        ref = eval(expr, env)  # noqa: S307 (expressions come from our own test)
        if ref.dtype == torch.bool:
            ref = ref.to(torch.uint8)
        errs = []
        refo = ref.detach().numpy()
        why = "" if np.shape(out) == refo.shape else "shape %s vs torch %s" % (np.shape(out), refo.shape)
        errs.append(("output", rel_err(out, refo), why))
        if w is not None:
            ref.backward(torch.from_numpy(w))
            for i, (t, g) in enumerate(zip(xs, grads)):
                if g is None:
                    continue
                tg = t.grad if t.grad is not None else torch.zeros_like(t)
                errs.append(("grad x%d" % i, rel_err(g, tg.numpy()), ""))
        count += 1
        for what, e, why in errs:
            worst[name] = max(worst.get(name, 0.0), e)
            if not e <= TOL:
                failures += 1
                print("FAIL %-16s %-10s rel err %.3g %s  [%s]" % (name, what, e, why, expr))
    for name in sorted(worst):
        print("%-18s worst relative error %.2e" % (name, worst[name]))
    print("parity: %d samples over %d ops, %d mismatches (tolerance %g)"
          % (count, len(worst), failures, TOL))
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
