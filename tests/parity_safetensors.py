"""safetensors parity between nabla and Python/PyTorch (no safetensors package:
the format is parsed and written here by hand with json + numpy).

usage: parity_safetensors.py NABLA_FILE TEST_BINARY WORKDIR

(a) NABLA_FILE, written by `test_safetensors --write-parity`, is parsed
    strictly (header length, JSON without duplicate keys, space padding, data
    8-aligned, entries tiling the buffer, 8-byte dtypes first) and every
    tensor is compared with values recomputed here; f16/bf16 storage of 4096
    random float32 bit patterns and 4096 exact ties must equal PyTorch's
    .half()/.bfloat16() bit for bit (NaNs: NaN of either payload).
(b) a torch.nn.Linear state dict (F32, plus BF16/F16 copies and an I64
    counter) is written the way the reference writer does ({"format":"pt"}
    metadata first, tensors by alignment then name) with a text file of the
    expected values; `TEST_BINARY --read-torch` must read them back exactly.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

DT = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2", "I32": "<i4", "I64": "<i8",
      "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "U32": "<u4", "U64": "<u8",
      "BOOL": "u1"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys in header"
    return dict(pairs)


def parse(path):
    """Strict reader: returns (entries, metadata, data bytes, header bytes)."""
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    assert n <= 100_000_000 and 8 + n <= len(b), "header length"
    raw = b[8:8 + n]
    assert raw[:1] == b"{", "header start"
    hdr = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    meta = hdr.pop("__metadata__", None)
    data = b[8 + n:]
    at = 0
    for name, e in sorted(hdr.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        b0, b1 = e["data_offsets"]
        size = int(np.prod(e["shape"], dtype=np.int64)) * np.dtype(DT[e["dtype"]]).itemsize
        assert b0 == at and b1 - b0 == size, f"{name}: offsets {e['data_offsets']}"
        at = b1
    assert at == len(data), "trailing or missing data"
    return hdr, meta, data, raw


def tensor(hdr, data, name):
    e = hdr[name]
    b0, b1 = e["data_offsets"]
    return np.frombuffer(data[b0:b1], dtype=DT[e["dtype"]]).reshape(e["shape"])


def parity_source():
    """As write_parity in test_safetensors.c: 4096 LCG bit patterns, 2048
    exact float16 ties, 2048 exact bfloat16 ties (float32 bits)."""
    out, s = np.empty(8192, np.uint32), 2024
    for i in range(8192):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        h, bits, sign = s >> 16, s, (s & 1) << 31
        if 4096 <= i < 6144:
            h %= 0x7BFF
            lo, hi = np.array([h, h + 1], np.uint16).view(np.float16).astype(np.float64)
            bits = int(np.array((lo + hi) / 2, np.float32).view(np.uint32)) | sign
        elif i >= 6144:
            bits = ((h % 0x7F7F) << 16) | 0x8000 | sign
        out[i] = bits
    return out.view(np.float32)


def check_nabla_file(path):
    hdr, meta, data, raw = parse(path)
    check((8 + len(raw)) % 8 == 0, "data buffer starts at a multiple of 8")
    js = raw.rstrip(b" ")
    check(raw[len(js):] == b" " * (len(raw) - len(js)) and len(raw) - len(js) < 8,
          "header padded with fewer than 8 spaces")
    check(meta == {"format": "pt", "producer": "nabla"}, f"metadata {meta}")
    order = sorted(hdr.values(), key=lambda e: e["data_offsets"][0])
    sizes = [np.dtype(DT[e["dtype"]]).itemsize for e in order]
    check(sizes == sorted(sizes, reverse=True), f"alignment order {sizes}")
    w = ((np.arange(12) - 5) * 0.375).astype(np.float32).reshape(3, 4)
    i32 = np.array([-2**31, -1, 0, 1, 2**31 - 1], np.int32)
    src = parity_source()
    with np.errstate(over="ignore"):
        narrowed = np.array([0.1, 1e-40, 1e39]).astype(np.float32)
    want = {
        "w_f32": ("F32", w),
        "d_f64": ("F64", (1.0 / (np.arange(6) + 1)).reshape(2, 3)),
        "idx_i32": ("I32", i32),
        "idx_i64": ("I64", np.array([[-(2**62) - 3, 2**62 + 1], [0, 9007199254740993]], np.int64)),
        "mask_u8": ("U8", np.array([0, 1, 128, 255], np.uint8)),
        "src": ("F32", src),
        "w_t": ("F32", w.T),
        "scalar": ("F64", np.array(2.75)),
        "empty": ("F32", np.zeros((0, 3), np.float32)),
        "i32_as_i64": ("I64", i32.astype(np.int64)),
        "f64_as_f32": ("F32", narrowed),
    }
    check(sorted(hdr) == sorted(list(want) + ["src_f16", "src_bf16"]), f"names {sorted(hdr)}")
    for name, (dt, v) in want.items():
        e = hdr[name]
        check(e["dtype"] == dt and e["shape"] == list(v.shape), f"{name}: {e}")
        got = tensor(hdr, data, name)
        check(got.tobytes() == np.ascontiguousarray(v).astype(got.dtype).tobytes(),
              f"{name}: values differ")
    nan = np.isnan(src)
    t = torch.from_numpy(src.copy())
    for name, ref, expo, man in (("src_f16", t.half().view(torch.int16), 0x7C00, 0x3FF),
                                 ("src_bf16", t.bfloat16().view(torch.int16), 0x7F80, 0x7F)):
        e = hdr[name]
        check(e["dtype"] == ("F16" if name == "src_f16" else "BF16") and e["shape"] == [8192],
              f"{name}: {e}")
        got = tensor(hdr, data, name).view(np.uint16)
        ref = ref.numpy().view(np.uint16)
        bad = np.nonzero((got != ref) & ~nan)[0]
        check(len(bad) == 0, f"{name}: {len(bad)} of 8192 differ from torch, first at "
              f"{bad[:3]}: {got[bad[:3]]} vs {ref[bad[:3]]}")
        gn = ((got & expo) == expo) & ((got & man) != 0)
        check(np.array_equal(gn, nan), f"{name}: NaNs stored as NaN")
    # numpy's float16 (correctly rounded too) agrees
    f16 = tensor(hdr, data, "src_f16").view(np.uint16)
    with np.errstate(over="ignore"):
        ref16 = src.astype(np.float16).view(np.uint16)
    check(np.array_equal(f16[~nan], ref16[~nan]), "src_f16 equals numpy's float16")
    print(f"(a) nabla file: {len(hdr)} tensors, header and values as expected")


def write_torch_file(path, expected):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    sd = lin.state_dict()
    w, b = sd["weight"], sd["bias"]
    tensors = {
        "fc.weight": ("F32", w.numpy()),
        "fc.bias": ("F32", b.numpy()),
        "fc.weight_bf16": ("BF16", w.bfloat16().view(torch.int16).numpy().view(np.uint16)),
        "fc.weight_f16": ("F16", w.half().numpy()),
        "num_batches_tracked": ("I64", np.array(7, np.int64)),
    }
    # the reference writer: by alignment (largest first), then by name
    names = sorted(tensors, key=lambda k: (-np.dtype(DT[tensors[k][0]]).itemsize, k))
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for k in names:
        dt, v = tensors[k]
        blob = np.ascontiguousarray(v).astype(DT[dt]).tobytes()
        header[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-(8 + len(js)) % 8)
    with open(path, "wb") as f:
        f.write(len(js).to_bytes(8, "little") + js + b"".join(blobs))
    # expected values as nabla must read them (f64 for floats, i64 for integers)
    ref = {
        "fc.weight": w.double(), "fc.bias": b.double(),
        "fc.weight_bf16": w.bfloat16().double(), "fc.weight_f16": w.half().double(),
        "num_batches_tracked": torch.tensor(7, dtype=torch.int64),
    }
    with open(expected, "w") as f:
        for k in names:
            v = ref[k].reshape(-1).tolist()
            vals = [str(x) if isinstance(x, int) else float(x).hex() for x in v]
            shape = list(tensors[k][1].shape)
            f.write(" ".join([k, tensors[k][0], str(len(shape))] + [str(s) for s in shape] +
                             [str(len(vals))] + vals) + "\n")


def main():
    nabla_file, binary, workdir = sys.argv[1:4]
    check_nabla_file(nabla_file)
    path = os.path.join(workdir, "st_torch.safetensors")
    expected = os.path.join(workdir, "st_torch_expected.txt")
    write_torch_file(path, expected)
    r = subprocess.run([binary, "--read-torch", path, expected], capture_output=True, text=True)
    print(r.stdout + r.stderr, end="")
    check(r.returncode == 0, "nabla reads the PyTorch file exactly")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("(b) PyTorch file read by nabla: exact")


if __name__ == "__main__":
    main()
