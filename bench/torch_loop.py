"""The timed PyTorch training loop shared by the training benchmarks: u8
data in memory, normalised per batch, shuffled by index each epoch; `warm`
untimed steps, then the median of three rounds of `steps` steps. Prints the
same line as the C benchmark."""
import resource
import time

import torch


def run(name, model, x, y, batch, steps, warm):
    n = x.shape[0]
    mean, std = x.float().mean(), x.float().std()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm, pos, times, t0 = torch.randperm(n), 0, [], 0.0
    for s in range(-warm, 3 * steps):
        if s >= 0 and s % steps == 0:
            t1 = time.perf_counter()
            if s > 0:
                times.append(t1 - t0)
            t0 = t1
        if pos + batch > n:
            perm, pos = torch.randperm(n), 0
        idx = perm[pos:pos + batch]
        pos += batch
        xb = (x[idx].float() - mean) / std
        loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - t0)
    t = sorted(times)[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("%s steps=%d seconds=%.4f samples_per_s=%.0f rss_mb=%.1f" % (name, steps, t, steps * batch / t, rss))
