#!/usr/bin/python3
"""gen_embeddings.py: writes N random unit embeddings of D dimensions as a COPY BINARY stream.

Usage: bench/gen_embeddings.py N D [SEED] | psql -c "COPY t (emb) FROM STDIN (FORMAT binary)"
Each row has one field in the embedding type's binary form (int16 dimensions,
int16 reserved 0, D big-endian float4).
"""
import sys

import numpy as np


def main():
    n, dim = int(sys.argv[1]), int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    rng = np.random.default_rng(seed)
    row = np.dtype([("fields", ">i2"), ("length", ">i4"), ("dim", ">i2"),
                    ("reserved", ">i2"), ("x", ">f4", (dim,))])
    out = sys.stdout.buffer
    out.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
    chunk = 10000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        rows = np.zeros(m, dtype=row)
        rows["fields"] = 1
        rows["length"] = 4 + 4 * dim
        rows["dim"] = dim
        rows["x"] = x
        out.write(rows.tobytes())
    out.write(b"\xff\xff")


if __name__ == "__main__":
    main()
