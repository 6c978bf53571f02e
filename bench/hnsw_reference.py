#!/usr/bin/python3
"""
hnsw_reference.py
    Recall@10 of hnswlib on the data bench/hnsw_bench dumped, as a reference for crossmodal_hnsw.

Reads DIR/base.npy, DIR/queries.npy and DIR/truth.npy (written by
`bench/build/hnsw_bench ... --dump DIR`; truth holds table ids, row i of base
is id i + 1), builds an hnswlib index with the same parameters as the
benchmark's CREATE INDEX (cosine, m = 16, ef_construction = 64 unless told
otherwise) and prints recall@10 against the file's truth and queries/s (one
query at a time, one thread) for each ef.  The build uses --threads threads
(default 2); hnswlib's graph then depends on thread timing, not its quality.

Needs Debian's python3-numpy and python3-hnswlib; run with /usr/bin/python3.
--self-check N searches for N base vectors (spread evenly over the rows)
themselves, top-10 at the largest ef, and counts how many come back: an
element that does not is, in practice, unreachable in the graph, and caps
recall at any ef.
--index PATH saves the built index there, or loads it if the file exists.

Usage: bench/hnsw_reference.py DIR [--m 16] [--ef-construction 64]
           [--ef 10,20,40,80,160,320] [--threads 2] [--check-truth]
           [--self-check N] [--index PATH]
"""
import argparse
import os
import sys
import time

import hnswlib
import numpy as np


def check_truth(base, queries, truth, k):
    """Recomputes the exact top-k in float32 by blocks; returns the overlap with the file."""
    hits = 0
    for start in range(0, len(queries), 100):
        q = queries[start:start + 100]
        best = None
        for row in range(0, len(base), 200_000):
            dots = q @ base[row:row + 200_000].T
            part = np.argpartition(-dots, k - 1, axis=1)[:, :k]
            cand = np.concatenate([part + row, best[0]], axis=1) if best is not None else part + row
            vals = np.concatenate([np.take_along_axis(dots, part, axis=1), best[1]], axis=1) \
                if best is not None else np.take_along_axis(dots, part, axis=1)
            order = np.argsort(-vals, axis=1)[:, :k]
            best = (np.take_along_axis(cand, order, axis=1), np.take_along_axis(vals, order, axis=1))
        for i in range(len(q)):
            hits += len(set((best[0][i] + 1).tolist()) & set(truth[start + i].tolist()))
    return hits / truth.size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[2].strip())
    ap.add_argument("dir")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef", default="10,20,40,80,160,320")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--self-check", type=int, default=0, metavar="N")
    ap.add_argument("--index", metavar="PATH")
    ap.add_argument("--check-truth", action="store_true",
                    help="recompute the exact top-10 with numpy and report its overlap with truth.npy")
    args = ap.parse_args()

    base = np.load(f"{args.dir}/base.npy", mmap_mode="r")
    queries = np.load(f"{args.dir}/queries.npy")
    truth = np.load(f"{args.dir}/truth.npy")
    rows, dims = base.shape
    k = truth.shape[1]
    print(f"data: {rows} x {dims}, {len(queries)} queries, truth top-{k}; hnswlib "
          f"space cosine, M = {args.m}, ef_construction = {args.ef_construction}, "
          f"{args.threads} build threads, seed {args.seed}")
    sys.stdout.flush()
    if args.check_truth:
        t0 = time.time()
        overlap = check_truth(np.asarray(base), queries, truth, k)
        print(f"truth.npy agrees with a float32 numpy exact search on {overlap:.4f} of ids "
              f"({time.time() - t0:.1f} s)")

    index = hnswlib.Index(space="cosine", dim=dims)
    if args.index and os.path.exists(args.index):
        index.load_index(args.index, max_elements=rows)
        print(f"loaded {args.index}")
    else:
        index.init_index(max_elements=rows, ef_construction=args.ef_construction, M=args.m,
                         random_seed=args.seed)
        t0 = time.time()
        for start in range(0, rows, 100_000):  # in slices, so the mapping need not be copied at once
            chunk = np.ascontiguousarray(base[start:start + 100_000])
            index.add_items(chunk, np.arange(start + 1, start + 1 + len(chunk)), num_threads=args.threads)
        print(f"build: {time.time() - t0:.1f} s")
        if args.index:
            index.save_index(args.index)

    print(f"{'ef':>8} {'recall@10':>10} {'queries/s':>10}")
    at95 = at99 = None
    for ef in [int(x) for x in args.ef.split(",")]:
        index.set_ef(max(ef, k))
        t0 = time.time()
        labels = np.vstack([index.knn_query(q[None, :], k=k, num_threads=1)[0] for q in queries])
        elapsed = time.time() - t0
        hits = sum(len(set(labels[i].tolist()) & set(truth[i].tolist())) for i in range(len(queries)))
        recall = hits / truth.size
        print(f"{ef:8d} {recall:10.4f} {len(queries) / elapsed:10.1f}")
        sys.stdout.flush()
        if at95 is None and recall >= 0.95:
            at95 = ef
        if at99 is None and recall >= 0.99:
            at99 = ef
    print(f"recall@10 >= 0.95 from ef {at95 if at95 is not None else '(none)'}, "
          f">= 0.99 from ef {at99 if at99 is not None else '(none)'}")

    if args.self_check > 0:
        n = min(args.self_check, rows)
        ids = np.arange(n) * rows // n  # rows spread evenly, as hnsw_bench --self-check takes them
        labels, _ = index.knn_query(np.asarray(base[ids]), k=k, num_threads=args.threads)
        found = int(sum((i + 1) in set(row.tolist()) for i, row in zip(ids, labels)))
        print(f"self-check at ef {max(ef, k)}: {found} of {len(ids)} base vectors find themselves "
              f"in their top-{k}")


if __name__ == "__main__":
    main()
