#!/usr/bin/python3
"""The two-layer GCN cases of test_gcn.c in PyTorch.

Each case holds a graph as edges (src -> dst, directed or undirected), the
input x, the upstream gradient, nabla's output and input gradient, and each
layer's parameters with their gradients (registry names: bias, lin.weight).
PyTorch rebuilds the propagation matrix from the edges by Kipf & Welling's
formula, independently of nabla's CSR code:
    A[dst, src] += 1 per edge (undirected: also A[src, dst], a self loop once)
    A_hat = D^-1/2 (A + I) D^-1/2,  D = row sums of A + I
and runs conv2(relu(conv1(x))), conv(h) = A_hat (h W^T) + b (torch_geometric's
GCNConv), as a dense float64 product reduced to float32 inputs. Outputs and
gradients of x and of every parameter must agree within 1e-5 relative to each
tensor's largest value. Usage: parity_gcn.py DUMP_FILE
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5


def a_hat(n, undirected, src, dst):
    a = torch.zeros(n, n, dtype=torch.float64)
    ones = torch.ones(len(src), dtype=torch.float64)
    a.index_put_((dst, src), ones, accumulate=True)
    if undirected:
        off = src != dst
        a.index_put_((src[off], dst[off]), ones[off], accumulate=True)
    a = a + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return (d[:, None] * a * d[None, :]).to(torch.float32)


def main(path):
    torch.set_num_threads(1)
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if r.take(6) != b"NBGCN1":
        print("parity_gcn: bad file header")
        return 1
    worst, failures, cases = 0.0, 0, 0
    while not r.done():
        n, undirected = r.u32(), r.u32()
        src, dst = (torch.from_numpy(r.tensor()[0]) for _ in range(2))
        x, gy, y_nb, gx_nb = (r.tensor()[0] for _ in range(4))
        layers = []
        for _ in range(2):
            params = {}
            for _ in range(r.u32()):
                name = r.str()
                w, _ = r.tensor()
                g, _ = r.tensor()
                params[name] = (torch.from_numpy(w).requires_grad_(True), g)
            layers.append(params)
        A = a_hat(n, bool(undirected), src, dst)
        xt = torch.from_numpy(x).requires_grad_(True)

        def conv(h, p):
            out = A @ (h @ p["lin.weight"][0].t())
            return out + p["bias"][0] if "bias" in p else out

        y = conv(torch.relu(conv(xt, layers[0])), layers[1])
        (y * torch.from_numpy(gy)).sum().backward()
        errs = [("output", rel_err(y_nb, y.detach().numpy())), ("grad x", rel_err(gx_nb, xt.grad.numpy()))]
        for k, p in enumerate(layers):
            for name, (t, g) in sorted(p.items()):
                errs.append(("grad conv%d.%s" % (k + 1, name), rel_err(g, t.grad.numpy())))
        cases += 1
        for what, e in errs:
            worst = max(worst, e)
            if not e <= TOL:
                failures += 1
                print("FAIL case %d (n %d, %s) %s: rel err %.3g"
                      % (cases, n, "undirected" if undirected else "directed", what, e))
    print("parity_gcn: %d cases, worst relative error %.2e, %d mismatches (tolerance %g)"
          % (cases, worst, failures, TOL))
    return 1 if failures or cases == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
