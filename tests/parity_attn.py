#!/usr/bin/python3
"""The attention cases of test_attn.c in PyTorch. MHA cases: the weights are
loaded into torch.nn.MultiheadAttention(E, H, batch_first=True) under the
names nabla wrote (its registry names are torch's state_dict keys) and run as
self-attention on the same input with attn_mask = the causal mask and
key_padding_mask, need_weights=False. Transformer-block cases: the same into
torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu",
dropout=0, batch_first=True) with src_mask and src_key_padding_mask. nb_attention cases: softmax(q k^T /
sqrt(D) + mask) v computed by hand (torch 1.13 has no
scaled_dot_product_attention), causal meaning key j visible to query i when
j <= i + Tk - Tq. Both are backpropagated from the same upstream gradient;
outputs and the gradients of the inputs and every parameter must agree
within 1e-5 relative to each tensor's largest value.
Usage: parity_attn.py DUMP_FILE"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5


def leaf(a):
    return torch.from_numpy(a).requires_grad_(True)


def causal_mask(tq, tk):
    i = torch.arange(tq).unsqueeze(1)
    j = torch.arange(tk).unsqueeze(0)
    return j > i + (tk - tq)  # True: hidden


def mha_case(r, heads, causal, block=False):
    x, kp, gy, y_nb, gx_nb = (r.tensor()[0] for _ in range(5))
    params = {}
    for _ in range(r.u32()):
        name = r.str()
        w, _ = r.tensor()
        g, _ = r.tensor()
        params[name] = (w, g)
    N, T, E = x.shape
    if block:
        m = torch.nn.TransformerEncoderLayer(E, heads, dim_feedforward=params["linear1.weight"][0].shape[0],
                                             dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True)
    else:
        m = torch.nn.MultiheadAttention(E, heads, batch_first=True)
    m.load_state_dict({k: torch.from_numpy(v[0]) for k, v in params.items()})
    xt = leaf(x)
    am = causal_mask(T, T) if causal else None
    kpm = torch.from_numpy(kp).bool() if kp is not None else None
    if block:
        out = m(xt, src_mask=am, src_key_padding_mask=kpm)
    else:
        out, _ = m(xt, xt, xt, attn_mask=am, key_padding_mask=kpm, need_weights=False)
    (out * torch.from_numpy(gy)).sum().backward()
    checks = [("output", y_nb, out), ("x.grad", gx_nb, xt.grad)]
    checks += [(k + ".grad", params[k][1], p.grad) for k, p in m.named_parameters()]
    if set(params) != set(k for k, _ in m.named_parameters()):
        print("  names differ: %s vs %s" % (sorted(params), sorted(k for k, _ in m.named_parameters())))
        checks.append(("names", None, out))
    return checks


def attn_case(r, causal):
    q, k, v, kp, gy, y_nb, gq_nb, gk_nb, gv_nb = (r.tensor()[0] for _ in range(9))
    qt, kt, vt = leaf(q), leaf(k), leaf(v)
    tq, tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    s = torch.matmul(qt, kt.transpose(-2, -1)) / math.sqrt(d)
    hide = torch.zeros(q.shape[0], 1, tq, tk, dtype=torch.bool)
    if causal:
        hide = hide | causal_mask(tq, tk)
    if kp is not None:
        hide = hide | torch.from_numpy(kp).bool()[:, None, None, :]
    s = s.masked_fill(hide, float("-inf"))
    out = torch.matmul(torch.softmax(s, -1), vt)
    (out * torch.from_numpy(gy)).sum().backward()
    return [("output", y_nb, out), ("q.grad", gq_nb, qt.grad), ("k.grad", gk_nb, kt.grad),
            ("v.grad", gv_nb, vt.grad)]


def run_case(r):
    kind, heads, causal, pad = (r.u32() for _ in range(4))
    checks = mha_case(r, heads, causal, kind == 2) if kind != 1 else attn_case(r, causal)
    tag = "%s H%d%s%s" % (("mha", "attention", "transformer block")[kind], heads, " causal" if causal else "",
                          " key_pad" if pad else "")
    worst, ok = 0.0, True
    for name, ours, ref in checks:
        if ref is None or ours is None:
            print("  %s: %s missing on one side" % (tag, name))
            ok = False
            continue
        e = rel_err(ours, ref.detach().numpy())
        if not e <= TOL:
            print("  %s: %s rel err %.2e" % (tag, name, e))
            ok = False
        worst = max(worst, e)
    print("%-36s worst rel err %.2e %s" % (tag, worst, "ok" if ok else "MISMATCH"))
    return ok, worst


def main(path):
    torch.set_num_threads(1)
    r = Reader(open(path, "rb").read())
    ok, worst, n = True, 0.0, 0
    while not r.done():
        c_ok, w = run_case(r)
        ok &= c_ok
        worst = max(worst, w)
        n += 1
    print("attention parity: %d cases, worst %.2e:" % (n, worst), "ok" if ok and n else "MISMATCH",
          "(tolerance %g)" % TOL)
    return 0 if ok and n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
