"""NumPy side of the NPY parity chain (tests/data.cmake).

Usage: parity_data.py DIR

1. Checks the files nabla wrote (DIR/c_*.npy, described by DIR/c_expected.txt):
   np.load reads each one; dtype, shape and every value match exactly; the
   header is version 1.0 and the data starts at a multiple of 64.
2. Writes NumPy files for nabla to read (DIR/py_*.npy) and DIR/py_expected.txt:
     ok NAME DTYPE NDIM D0 .. N V0 ..   (nabla's dtype name and exact values)
     err NAME MESSAGE                   (nabla must refuse it with this text)

Exits non-zero on any mismatch. Run with /usr/bin/python3 (Debian's numpy).
"""
import os
import sys

import numpy as np

# nabla dtype name -> the dtype nb_npy_write must produce
C_DTYPES = {"f32": "<f4", "f64": "<f8", "i32": "<i4", "i64": "<i8", "u8": "|u1"}
# NumPy dtype -> the dtype nabla reads it as
NB_OF = {"f4": "f32", "f8": "f64", "i1": "i32", "i2": "i32", "i4": "i32", "u2": "i32",
         "i8": "i64", "u4": "i64", "u1": "u8", "b1": "u8"}


def fail(msg):
    print("FAIL:", msg)
    fail.count += 1


fail.count = 0


def parse_values(tokens, dtype):
    if dtype.kind == "f":
        return np.array([float(t) for t in tokens], dtype=np.float64)
    return np.array([int(t) for t in tokens], dtype=np.int64)


def check_c_files(d):
    lines = open(os.path.join(d, "c_expected.txt")).read().split("\n")
    n = 0
    for line in filter(None, lines):
        tok = line.split()
        name, dt, ndim = tok[0], tok[1], int(tok[2])
        shape = tuple(int(t) for t in tok[3:3 + ndim])
        numel = int(tok[3 + ndim])
        vals = tok[4 + ndim:]
        path = os.path.join(d, name + ".npy")
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:8] != b"\x93NUMPY\x01\x00":
            fail(f"{name}: preamble {raw[:8]!r}, want version 1.0")
        hlen = int.from_bytes(raw[8:10], "little")
        if (10 + hlen) % 64 != 0 or raw[10 + hlen - 1:10 + hlen] != b"\n":
            fail(f"{name}: header of {hlen} bytes: data not at a multiple of 64 or no newline")
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(f)
        if version != (1, 0) or fortran:
            fail(f"{name}: version {version}, fortran_order {fortran}")
        a = np.load(path, allow_pickle=False)
        if a.dtype.str != C_DTYPES[dt] or hdtype.str != C_DTYPES[dt]:
            fail(f"{name}: dtype {a.dtype.str}, want {C_DTYPES[dt]}")
        if a.shape != shape or hshape != shape or a.size != numel or len(vals) != numel:
            fail(f"{name}: shape {a.shape}, want {shape}")
            continue
        want = parse_values(vals, a.dtype).reshape(shape)
        if a.dtype.kind == "f":
            ok = np.array_equal(a.astype(np.float64), want, equal_nan=True)
        else:
            ok = np.array_equal(a.astype(np.int64), want)
        if not ok:
            fail(f"{name}: values differ:\n{a}\nwant\n{want}")
        n += 1
    if n < 10:
        fail(f"only {n} files from nabla were checked")
    print(f"numpy read {n} files written by nabla")


def fmt(v, kind):
    if kind == "f":
        return repr(float(v))  # exact: float32 widens to float64 without loss
    return str(int(v))


def write_numpy_files(d):
    rng = np.random.default_rng(1234)
    out = []  # manifest lines

    def ok(name, a, version=None):
        path = os.path.join(d, name + ".npy")
        if version is None:
            np.save(path, a, allow_pickle=False)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=version, allow_pickle=False)
        c = np.ascontiguousarray(a)
        nb = NB_OF[a.dtype.str[1:]]
        kind = a.dtype.kind
        flat = [fmt(v, "f" if kind == "f" else "i") for v in c.reshape(-1)]
        out.append(" ".join(["ok", name + ".npy", nb, str(a.ndim)] + [str(s) for s in a.shape] +
                            [str(a.size)] + flat))

    def err(name, msg, a=None, raw=None, allow_pickle=False):
        path = os.path.join(d, name + ".npy")
        if raw is not None:
            with open(path, "wb") as f:
                f.write(raw)
        else:
            np.save(path, a, allow_pickle=allow_pickle)
        out.append(f"err {name}.npy {msg}")

    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.4e38, -1.5])
    f4 = np.concatenate([special, rng.standard_normal(4)]).astype("<f4").reshape(3, 4)
    f8 = np.concatenate([special[:5], [5e-324, 1.7976931348623157e308], rng.standard_normal(3)])
    i4 = np.array([[-2**31, -1, 0], [1, 7, 2**31 - 1]], dtype="<i4")
    i8 = np.array([-2**63, -1, 2**53 + 1, 2**63 - 1], dtype="<i8")
    ok("py_f4", f4)
    ok("py_f8", f8.astype("<f8"))
    ok("py_i4", i4)
    ok("py_i8", i8)
    ok("py_u1", np.arange(0, 256, 32, dtype="|u1").reshape(2, 2, 2))
    ok("py_b1", np.array([True, False, True, True, False]))
    ok("py_be_f4", f4.astype(">f4"))
    ok("py_be_f8", f8.astype(">f8"))
    ok("py_be_i4", i4.astype(">i4"))
    ok("py_be_i8", i8.astype(">i8"))
    ok("py_i1", np.array([-128, -1, 0, 127], dtype="|i1"))
    ok("py_i2", np.array([-32768, -2, 300, 32767], dtype="<i2"))
    ok("py_be_i2", np.array([-32768, 5, 32767], dtype=">i2"))
    ok("py_u2", np.array([0, 1, 65535], dtype="<u2"))
    ok("py_u4", np.array([0, 4294967295], dtype="<u4"))
    ok("py_v2", rng.standard_normal((2, 5)).astype("<f4"), version=(2, 0))
    ok("py_v3", np.arange(6, dtype="<i8").reshape(3, 2), version=(3, 0))
    ok("py_0d", np.array(2.5))
    ok("py_0d_i4", np.array(-7, dtype="<i4"))
    ok("py_empty", np.zeros((0,), dtype="<f4"))
    ok("py_empty3", np.zeros((2, 0, 3), dtype="<f8"))
    ok("py_one", np.array([42], dtype="<i8"))
    ok("py_8d", np.arange(2**8, dtype="<i4").reshape((2,) * 8))
    ok("py_big", rng.standard_normal((1000, 37)).astype("<f4"))
    ok("py_strided", rng.standard_normal((6, 5))[::2, ::-1])  # saved in C order by NumPy
    err("py_fortran", "fortran_order is True", np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    err("py_f2", "unsupported descr '<f2'", np.ones(3, dtype="<f2"))
    err("py_c8", "unsupported descr '<c8'", np.ones(3, dtype="<c8"))
    err("py_u8", "unsupported descr '<u8'", np.ones(3, dtype="<u8"))
    err("py_U", "unsupported descr '<U3'", np.array(["abc", "de"]))
    err("py_struct", "structured dtypes are not supported",
        np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    err("py_object", "unsupported descr '|O'", np.array([1, "x"], dtype=object), allow_pickle=True)
    err("py_9d", "shape has more than 8 dimensions", np.zeros((1,) * 9, dtype="<f4"))
    good = open(os.path.join(d, "py_f4.npy"), "rb").read()
    err("py_truncated", "truncated: 45 of 48 data bytes", raw=good[:-3])
    err("py_trailing", "2 trailing bytes after 48 data bytes", raw=good + b"xx")
    err("py_header_cut", "truncated", raw=good[:40])
    with open(os.path.join(d, "py_expected.txt"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"numpy wrote {len(out)} files for nabla to read")


def main():
    d = sys.argv[1]
    check_c_files(d)
    write_numpy_files(d)
    if fail.count:
        print(f"{fail.count} failures")
        sys.exit(1)


if __name__ == "__main__":
    main()
