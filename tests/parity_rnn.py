#!/usr/bin/python3
"""The recurrent layers of test_rnn.c in PyTorch: each case's weights are
loaded into torch.nn.RNN/LSTM/GRU under the names nabla wrote (its registry
names are torch's state_dict keys), run on the same input, h0/c0 and lengths
(pack_padded_sequence, enforce_sorted=False), backpropagated from the same
upstream gradients of output, hn and cn. Output, hn, cn and the gradients of
the input, h0, c0 and every parameter must agree within 1e-5 relative to each
tensor's largest value. Usage: parity_rnn.py DUMP_FILE"""
import os
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5
KINDS = {0: ("rnn", "tanh"), 1: ("rnn", "relu"), 2: ("lstm", None), 3: ("gru", None)}


def leaf(a):
    return None if a is None else torch.from_numpy(a).requires_grad_(True)


def run_case(r):
    kind, layers, bidir, bf, bias = (r.u32() for _ in range(5))
    x, h0, c0, lens, gy, gh, gc, y_nb, hn_nb, cn_nb, gx_nb, gh0_nb, gc0_nb = (
        r.tensor()[0] for _ in range(13))
    params = {}
    for _ in range(r.u32()):
        name = r.str()
        w, _ = r.tensor()
        g, _ = r.tensor()
        params[name] = (w, g)
    mod, act = KINDS[kind]
    T, N = (x.shape[1], x.shape[0]) if bf else (x.shape[0], x.shape[1])
    I, H = x.shape[2], hn_nb.shape[2]
    kw = dict(num_layers=layers, bidirectional=bool(bidir), batch_first=bool(bf), bias=bool(bias))
    if mod == "rnn":
        m = torch.nn.RNN(I, H, nonlinearity=act, **kw)
    else:
        m = getattr(torch.nn, mod.upper())(I, H, **kw)
    m.load_state_dict({k: torch.from_numpy(v[0]) for k, v in params.items()})
    xt, h0t, c0t = leaf(x), leaf(h0), leaf(c0)
    inp = xt
    if lens is not None:
        inp = pack_padded_sequence(xt, torch.from_numpy(lens).long(), batch_first=bool(bf),
                                   enforce_sorted=False)
    state = None
    if h0t is not None:
        state = (h0t, c0t) if mod == "lstm" else h0t
    if state is None and mod == "lstm" and c0t is not None:
        raise ValueError("c0 without h0")
    out, st = m(inp, state)
    if lens is not None:
        out, _ = pad_packed_sequence(out, batch_first=bool(bf), total_length=T)
    hn, cn = (st if mod == "lstm" else (st, None))
    loss = (out * torch.from_numpy(gy)).sum() + (hn * torch.from_numpy(gh)).sum()
    if cn is not None:
        loss = loss + (cn * torch.from_numpy(gc)).sum()
    loss.backward()
    checks = [("output", y_nb, out), ("hn", hn_nb, hn), ("cn", cn_nb, cn),
              ("x.grad", gx_nb, xt.grad),
              ("h0.grad", gh0_nb, None if h0t is None else h0t.grad),
              ("c0.grad", gc0_nb, None if c0t is None else c0t.grad)]
    checks += [(k + ".grad", params[k][1], p.grad) for k, p in m.named_parameters()]
    tag = "%s%s L%d%s%s%s%s" % (mod, "/" + act if act else "", layers, " bidir" if bidir else "",
                                " batch_first" if bf else "", "" if bias else " nobias",
                                " lengths" if lens is not None else "")
    worst, ok = 0.0, True
    for name, ours, ref in checks:
        if ref is None and ours is None:
            continue
        if ref is None or ours is None:
            print("  %s: %s missing on one side" % (tag, name))
            ok = False
            continue
        e = rel_err(ours, ref.detach().numpy())
        if e > TOL:
            print("  %s: %s rel err %.2e" % (tag, name, e))
            ok = False
        worst = max(worst, e)
    print("%-42s worst rel err %.2e %s" % (tag, worst, "ok" if ok else "MISMATCH"))
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
    print("rnn parity: %d cases, worst %.2e:" % (n, worst), "ok" if ok and n else "MISMATCH",
          "(tolerance %g)" % TOL)
    return 0 if ok and n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
