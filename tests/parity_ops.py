#!/usr/bin/python3
"""Replays test_ops' float32 samples in PyTorch and compares.

For each sample the file holds the op name, a PyTorch expression over x0..x5,
the inputs, the upstream gradient W, nabla's output and nabla's input
gradients. The expression is evaluated in float32, backpropagated with W, and
the output and every input gradient must agree within 1e-5, measured as
max|nabla - torch| / max|torch| over the tensor (relative to its scale).
Exit status 1 on any mismatch. Usage: parity_ops.py PARITY_FILE
"""
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F  # noqa: F401  (used by the expressions)

TOL = 1e-5
DTYPES = {0: np.float32, 1: np.float64, 2: np.int32, 3: np.int64, 4: np.uint8}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, n):
        b = self.d[self.p:self.p + n]
        if len(b) != n:
            raise EOFError
        self.p += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def str(self):
        return self.take(self.u32()).decode()

    def tensor(self):
        if self.take(1)[0] == 0:
            return None, False
        dt, rg = self.take(1)[0], self.take(1)[0]
        ndim = self.u32()
        shape = struct.unpack("<%dq" % ndim, self.take(8 * ndim)) if ndim else ()
        npdt = np.dtype(DTYPES[dt])
        n = int(np.prod(shape)) if ndim else 1
        arr = np.frombuffer(self.take(n * npdt.itemsize), dtype=npdt).reshape(shape)
        return arr.copy(), bool(rg)


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf"), "shape %s vs torch %s" % (ours.shape, ref.shape)
    if ours.size == 0:
        return 0.0, ""
    scale = max(np.max(np.abs(ref)), 1e-30)
    return float(np.max(np.abs(ours - ref)) / scale), ""


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
        e, why = rel_err(out, ref.detach().numpy())
        errs.append(("output", e, why))
        if w is not None:
            ref.backward(torch.from_numpy(w))
            for i, (t, g) in enumerate(zip(xs, grads)):
                if g is None:
                    continue
                tg = t.grad if t.grad is not None else torch.zeros_like(t)
                e, why = rel_err(g, tg.numpy())
                errs.append(("grad x%d" % i, e, why))
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
