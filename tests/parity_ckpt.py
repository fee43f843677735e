#!/usr/bin/python3
"""Checkpoints between nabla and PyTorch (with test_ckpt_torch.c).
1. The checkpoint nabla wrote parses with json + numpy: format "pt" metadata,
   optimizer tensors under "optim.", and the model tensors load into
   torch.nn (strict state_dict) and reproduce nabla's outputs within 1e-5.
2. A torch model's state_dict is written as safetensors (by hand, the
   format has no Debian Python package) with its outputs, for the C side.
Usage: parity_ckpt.py DIR"""
import json
import os
import struct
import sys

import numpy as np
import torch

DT = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(buf[b:end], dtype=DT[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, meta):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        raw = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model():
    m = torch.nn.Sequential()
    m.add_module("fc1", torch.nn.Linear(20, 16))
    m.add_module("1", torch.nn.Tanh())
    m.add_module("fc2", torch.nn.Linear(16, 3))
    return m


def main(d):
    torch.set_num_threads(1)
    tensors, meta = read_safetensors(os.path.join(d, "nabla.safetensors"))
    assert meta.get("format") == "pt", meta
    assert meta.get("epoch") == "1" and "config" in meta, meta
    optim = [k for k in tensors if k.startswith("optim.")]
    assert "optim.fc1.weight.exp_avg" in optim and "optim.fc2.bias.exp_avg_sq" in optim, optim
    m = model()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("optim.")})
    x = torch.from_numpy(np.load(os.path.join(d, "batch.npy")))
    want = np.load(os.path.join(d, "out_nabla.npy"))
    with torch.no_grad():
        got = m(x).numpy()
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(got)), 1e-30)
    print("nabla checkpoint in torch: outputs within %.2e relative" % err)
    if not err <= 1e-5:
        return 1
    torch.manual_seed(4)
    t = model()
    with torch.no_grad():
        np.save(os.path.join(d, "out_torch.npy"), t(x).numpy())
    write_safetensors(os.path.join(d, "torch.safetensors"),
                      {k: v.detach().numpy() for k, v in t.state_dict().items()}, {"format": "pt"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
