"""Reader of the binary stream written by tests/dump.c."""
import struct

import numpy as np

DTYPES = {0: np.float32, 1: np.float64, 2: np.int32, 3: np.int64, 4: np.uint8}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def done(self):
        return self.p >= len(self.d)

    def take(self, n):
        b = self.d[self.p:self.p + n]
        if len(b) != n:
            raise EOFError("dump truncated")
        self.p += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def str(self):
        return self.take(self.u32()).decode()

    def tensor(self):
        """(array, requires_grad), or (None, False) for an absent tensor."""
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
    """max |ours - ref| / max |ref|: the error relative to the tensor's scale."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))
