#!/usr/bin/python3
"""Optimizers and schedules against PyTorch: replays test_optim's runs (same
initial weights, same batches, 50 steps) with torch.optim and compares the lr
at every step and the final parameters, within 1e-5 relative to each
tensor's largest value. Usage: parity_optim.py DUMP_FILE"""
import math  # noqa: F401  (used by the schedule expressions)
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdump import Reader, rel_err  # noqa: E402

TOL = 1e-5
NAMES = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def main(path):
    torch.set_num_threads(1)
    r = Reader(open(path, "rb").read())
    n, failures = r.u32(), 0
    for _ in range(n):
        opt_expr, sched_expr = r.str(), r.str()
        steps, clip = r.u32(), r.u32()
        init = [r.tensor()[0] for _ in NAMES]
        batches = [(r.tensor()[0], r.tensor()[0]) for _ in range(steps)]
        lrs_nb = r.tensor()[0]
        final_nb = [r.tensor()[0] for _ in NAMES]

        model = torch.nn.Sequential()
        model.add_module("fc1", torch.nn.Linear(6, 5))
        model.add_module("tanh", torch.nn.Tanh())
        model.add_module("fc2", torch.nn.Linear(5, 3))
        model.load_state_dict({k: torch.from_numpy(v) for k, v in zip(NAMES, init)})
        params = list(model.parameters())
        weights, biases = [params[0], params[2]], [params[1], params[3]]
        env = {"torch": torch, "math": math, "params": params, "weights": weights, "biases": biases}
        opt = eval(opt_expr.split("  #")[0], env)  # noqa: S307 (our own test's expressions)
        env["opt"] = opt
        sched = eval(sched_expr, env) if sched_expr else None  # noqa: S307
        plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        lrs = []
        for x, y in batches:
            lrs.append(opt.param_groups[0]["lr"])
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, 0.25)
            opt.step()
            if sched is not None:
                sched.step(loss.item()) if plateau else sched.step()
        errs = [("lr", rel_err(lrs_nb, lrs))]
        for name, ours, p in zip(NAMES, final_nb, params):
            errs.append((name, rel_err(ours, p.detach().numpy())))
        worst = max(e for _, e in errs)
        ok = worst <= TOL
        failures += not ok
        what = sched_expr.split("(")[0].split(".")[-1] if sched_expr else opt_expr.split("(")[0].split(".")[-1]
        print("%s %-18s worst rel err %.2e  %s%s" % ("ok  " if ok else "FAIL", what, worst,
              opt_expr[:70], "" if ok else "  " + str(errs)))
    print("optim parity: %d configurations, %d mismatches (tolerance %g)" % (n, failures, TOL))
    return 1 if failures or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
