#!/usr/bin/python3
"""
hnsw_graph_stats.py
    Layer-0 degree and reachability of an HNSW graph: a crossmodal_hnsw index file or an hnswlib saved index.

For each graph: mean out-degree, the share of elements with in-degree 0 and
<= 2, and how many elements a breadth-first walk over layer-0 links from the
entry point does not reach.  Elements with very few incoming links are the
ones searches miss whatever ef is (see bench/README.md).

crossmodal: FILE is the index's main fork as pg_relation_filepath() names it
under the data directory (CHECKPOINT first; segments FILE.1, FILE.2, ... are
read too); the page layout is that of extension/hnsw.h, HNSW_VERSION 1.
hnswlib: FILE is what Index.save_index wrote (hnswlib 0.6, as
bench/hnsw_reference.py --index PATH saves it).

--indegree-out OUT.npy writes the in-degree of each element indexed by table
id (crossmodal: needs --ctid-csv, lines "id,block,offset" from
`COPY (SELECT id, (ctid::text::point)[0]::int, (ctid::text::point)[1]::int FROM t) TO STDOUT CSV`;
hnswlib: ids are the labels).

Usage: bench/hnsw_graph_stats.py crossmodal FILE [--ctid-csv CSV] [--indegree-out OUT.npy]
       bench/hnsw_graph_stats.py hnswlib FILE [--indegree-out OUT.npy]
"""
import argparse
import os

import numpy as np

BLCKSZ = 8192
PAGE_HEADER = 24            # SizeOfPageHeaderData, already MAXALIGNed
ELEMENT_HEADER = 12         # level, flags, unused, heaptid, pad
HNSW_MAGIC = 0x434D4857
HNSW_HEADER = 96            # hnswlib's saveIndex header


def reachable(nbr, valid, entry):
    """Breadth-first walk over the valid links from entry; returns a mask."""
    seen = np.zeros(len(nbr), bool)
    seen[entry] = True
    front = np.array([entry])
    while len(front):
        nxt = np.unique(nbr[front][valid[front]])
        nxt = nxt[~seen[nxt]]
        seen[nxt] = True
        front = nxt
    return seen


def report(name, nbr, valid, entry):
    n = len(nbr)
    indeg = np.bincount(nbr[valid], minlength=n)
    outdeg = valid.sum(1)
    seen = reachable(nbr, valid, entry)
    print(f"{name}: {n} elements; layer-0 out-degree mean {outdeg.mean():.2f} of {nbr.shape[1]} "
          f"(full lists {np.mean(outdeg == nbr.shape[1]):.1%}); in-degree 0: {np.sum(indeg == 0)} "
          f"({np.mean(indeg == 0):.3%}), <= 2: {np.mean(indeg <= 2):.2%}; "
          f"not reachable from the entry point on layer 0: {n - seen.sum()} ({1 - seen.mean():.3%})")
    return indeg


def read_segments(path):
    parts = [np.fromfile(path, np.uint8)]
    i = 1
    while os.path.exists(f"{path}.{i}"):
        parts.append(np.fromfile(f"{path}.{i}", np.uint8))
        i += 1
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def u16(a):
    return a.view("<u2").astype(np.int64)


def crossmodal(path, ctid_csv):
    raw = read_segments(path)
    pages = raw.reshape(-1, BLCKSZ)
    meta = pages[0, PAGE_HEADER:PAGE_HEADER + 24]
    magic, version, dims = (int(x) for x in meta[0:12].view("<u4"))
    m = int(u16(meta[12:14])[0])
    if magic != HNSW_MAGIC or version != 1:
        raise SystemExit(f"{path}: not a crossmodal_hnsw index of version 1")
    entry_tid = u16(meta[16:22])
    entry_key = ((entry_tid[0] << 16) | entry_tid[1]) * 65536 + entry_tid[2]

    starts, keys, levels = [], [], []
    for p in range(1, len(pages)):
        lower = int(u16(pages[p, 12:14])[0])
        for i, lp in enumerate(pages[p, PAGE_HEADER:lower].view("<u4").tolist()):
            if (lp >> 15) & 3 != 1:            # LP_NORMAL only
                continue
            off = lp & 0x7FFF
            starts.append(p * BLCKSZ + off)
            keys.append(p * 65536 + i + 1)
            levels.append(int(pages[p, off]))
    starts, keys, levels = (np.array(x, np.int64) for x in (starts, keys, levels))
    print(f"crossmodal_hnsw: {dims} dimensions, m = {m}; elements per top level: "
          f"{np.bincount(levels).tolist()}")

    # layer 0's 2m neighbour TIDs follow the vector and the distances of every slot
    tidstart = starts + ELEMENT_HEADER + 4 * dims + 4 * (2 * m + levels * m)
    tids = u16(raw[tidstart[:, None] + np.arange(2 * m * 6)[None, :]]).reshape(len(starts), 2 * m, 3)
    blk = (tids[:, :, 0] << 16) | tids[:, :, 1]
    linkkey = blk * 65536 + tids[:, :, 2]
    valid = (tids[:, :, 2] != 0) & (blk != 0xFFFFFFFF)
    order = np.argsort(keys)
    nbr = order[np.searchsorted(keys[order], linkkey).clip(0, len(keys) - 1)]
    valid &= keys[nbr] == linkkey
    entry = order[np.searchsorted(keys[order], entry_key)]
    indeg = report("crossmodal_hnsw", nbr, valid, entry)

    ids = None
    if ctid_csv:
        ht = u16(raw[(starts + 4)[:, None] + np.arange(6)[None, :]]).reshape(len(starts), 3)
        heapkey = ((ht[:, 0] << 16) | ht[:, 1]) * 65536 + ht[:, 2]
        c = np.loadtxt(ctid_csv, delimiter=",", dtype=np.int64, ndmin=2)
        ckey = c[:, 1] * 65536 + c[:, 2]
        o = np.argsort(ckey)
        ids = c[o, 0][np.searchsorted(ckey[o], heapkey).clip(0, len(c) - 1)]
    return ids, indeg


def hnswlib_file(path):
    raw = np.fromfile(path, np.uint8)
    head = raw[:HNSW_HEADER]
    off0, _, count, size, label_off, data_off = head[:48].view("<u8").tolist()
    entry = int(head[52:56].view("<u4")[0])
    _, max_m0, m = head[56:80].view("<u8").tolist()
    if off0 != 0 or size != label_off + 8 or data_off != 4 + 4 * max_m0:
        raise SystemExit(f"{path}: not an hnswlib 0.6 index as expected")
    level0 = raw[HNSW_HEADER:HNSW_HEADER + count * size].reshape(count, size)
    counts = u16(level0[:, 0:2].copy()).ravel()
    nbr = level0[:, 4:4 + 4 * max_m0].copy().view("<u4").astype(np.int64)
    valid = np.arange(max_m0)[None, :] < counts[:, None]
    print(f"hnswlib: M = {m}, layer-0 lists of {max_m0}")
    indeg = report("hnswlib", nbr, valid, entry)
    ids = level0[:, label_off:label_off + 8].copy().view("<u8").ravel().astype(np.int64)
    return ids, indeg


def main():
    ap = argparse.ArgumentParser(description="Layer-0 degree and reachability of an HNSW graph.")
    ap.add_argument("kind", choices=["crossmodal", "hnswlib"])
    ap.add_argument("file")
    ap.add_argument("--ctid-csv")
    ap.add_argument("--indegree-out")
    args = ap.parse_args()
    if args.kind == "crossmodal":
        ids, indeg = crossmodal(args.file, args.ctid_csv)
    else:
        ids, indeg = hnswlib_file(args.file)
    if args.indegree_out:
        if ids is None:
            raise SystemExit("--indegree-out needs --ctid-csv for a crossmodal index")
        byid = np.full(ids.max() + 1, -1, np.int64)
        byid[ids] = indeg
        np.save(args.indegree_out, byid)


if __name__ == "__main__":
    main()
