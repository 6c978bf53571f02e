#!/usr/bin/env python3
"""pgvector_parity.py: runs pgvector's own regression SQL against pgvector and,
translated to crossmodal's names, against crossmodal, in two databases of one
cluster, and compares the two statement by statement: success or failure, the
SQLSTATE class of a failure, and the rows returned (psql's unaligned output).

pgvector is not part of this repository: give the path of its test/sql
directory (from a checkout of pgvector; both extensions must be installed in
the server the PG* environment variables point at).

    tools/pgvector_parity.py PGVECTOR/test/sql [FILE ...] [--both] [--verbose]

FILE defaults to vector_type cast btree copy hnsw_vector.  Statements about
pgvector types crossmodal does not have (halfvec, sparsevec, bit) are set
apart.  A statement whose outcomes differ is listed with the reason when it
is a documented difference (README, "Coming from pgvector") and as
UNEXPLAINED otherwise.  --both runs the crossmodal side in a database
where pgvector is installed too (overloaded names, unknown-typed literals).
Exit status: 0 when every difference is documented.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_FILES = ["vector_type", "cast", "btree", "copy", "hnsw_vector"]

# pgvector names -> crossmodal names, applied in order with word boundaries.
TRANSLATIONS = [
    (r"\bvector_l2_ops\b", "embedding_l2_ops"),
    (r"\bvector_ip_ops\b", "embedding_ip_ops"),
    (r"\bvector_cosine_ops\b", "embedding_cosine_ops"),
    (r"\bvector_l1_ops\b", "embedding_l1_ops"),
    (r"\bUSING hnsw\b", "USING crossmodal_hnsw"),
    (r"\bhnsw\.ef_search\b", "crossmodal.hnsw_ef_search"),
    (r"\bhnsw\.iterative_scan\b", "crossmodal.hnsw_iterative_scan"),
    (r"\bhnsw\.max_scan_tuples\b", "crossmodal.hnsw_max_scan_tuples"),
    (r"\bhnsw\.scan_mem_multiplier\b", "crossmodal.hnsw_scan_mem_multiplier"),
    (r"\bvector_dims\b", "dims"),
    (r"\bvector_norm\b", "norm"),
    (r"\bvector_cmp\b", "embedding_cmp"),
    (r"\barray_to_vector\b", "array_to_embedding"),
    (r"\bvector_accum\b", "embedding_accum"),
    (r"\bvector_combine\b", "embedding_combine"),
    (r"\bvector_avg\b", "embedding_avg_final"),
    (r"\bvector\b", "embedding"),
]

NOT_APPLICABLE = re.compile(r"\b(halfvec|sparsevec|bit|binary_quantize)\b", re.I)
NA_SECTIONS = {"halfvec", "sparsevec", "bit"}

# Deliberate differences, each described in the README's "Coming from
# pgvector": a pattern over the previous statement and this one, and why.
DOCUMENTED = [
    (r"1e-46",
     "an element that rounds to zero in float4 is out of range (22003), as for PostgreSQL's real; "
     "pgvector stores 0"),
    (r"\n\s*SELECT (l2_distance|inner_product|cosine_distance|l1_distance)\('\[3e38\]'",
     "a distance whose float4 sum overflows is recomputed in double; pgvector gives Infinity or NaN"),
    (r"\n\s*SHOW hnsw\.iterative_scan",
     "iterative scans default to relaxed_order, what 0.1.0 did; pgvector's default is off"),
    (r"vector\(2000\)\);\n\s*CREATE INDEX ON t USING hnsw",
     "a crossmodal_hnsw element and its links must fit a page: 1,955 dimensions at m = 16 with the "
     "default storage = float4, up to 16,000 with a compact storage form"),
    (r"\n\s*SELECT vector_(avg|accum|combine)\([^\n]*'\{(\{|\}|[^}']*NULL)[^\n]*$",
     "a malformed aggregate state (two-dimensional, empty, with NULLs) is 22023 invalid_parameter_value; "
     "pgvector raises an internal error (XX000)"),
    (r"\n\s*SELECT vector_combine\('\{0\}', '\{0\}'\);$",
     "two empty states ({0}, pgvector's INITCOND) combine to the empty state; pgvector raises 22000, "
     "as its avg() does over no rows in a parallel plan"),
]


def split_statements(text):
    """(line, statement, section) for each SQL statement or psql meta-command."""
    out = []
    section = ""
    buf = []
    start = 0
    quote = None  # "'" or a dollar tag
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf and quote is None:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("--"):
                section = stripped[2:].strip().lower()
                continue
            if stripped.startswith("\\"):
                out.append((lineno, stripped, section))
                continue
            start = lineno
        buf.append(line)
        i = 0
        ended = False
        while i < len(line):
            c = line[i]
            if quote is None:
                if c == "'":
                    quote = "'"
                elif c == "$":
                    m = re.match(r"\$[A-Za-z_]*\$", line[i:])
                    if m:
                        quote = m.group(0)
                        i += len(quote) - 1
                elif line.startswith("--", i):
                    break
                elif c == ";":
                    ended = True
            elif quote == "'":
                if c == "'":
                    quote = None
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = None
            i += 1
        if ended and quote is None:
            out.append((start, "\n".join(buf).strip(), section))
            buf = []
    if buf:
        out.append((start, "\n".join(buf).strip(), section))
    return out


def translate(stmt):
    for pattern, repl in TRANSLATIONS:
        stmt = re.sub(pattern, repl, stmt)
    return stmt


MARK = "@@@parity"


def run(db, statements, workdir):
    """Runs the statements in one psql session; (ok, sqlstate, rows) each."""
    script = ["\\set ON_ERROR_STOP 0"]
    for i, stmt in enumerate(statements):
        script.append("\\set SQLSTATE none")
        script.append(stmt)
        script.append("\\echo %s %d :SQLSTATE" % (MARK, i))
    proc = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-P", "pager=off", "-d", db],
                          input="\n".join(script) + "\n", capture_output=True, text=True,
                          cwd=workdir)
    results = []
    rows = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^%s (\d+) (\S+)$" % MARK, line)
        if m:
            sqlstate = m.group(2)
            ok = sqlstate == "00000"
            results.append((ok, sqlstate, "\n".join(rows)))
            rows = []
        else:
            rows.append(line)
    if len(results) != len(statements):
        sys.exit("psql on %s stopped after %d of %d statements:\n%s"
                 % (db, len(results), len(statements), proc.stderr[-2000:]))
    return results


def outcome(r):
    ok, sqlstate, rows = r
    if not ok:
        return "error " + sqlstate
    text = rows.replace("\n", " / ")
    if len(text) > 120:
        text = "%s... (%d characters)" % (text[:100], len(text))
    return "ok" + (": " + text if text else "")


def same(a, b):
    if a[0] != b[0]:
        return False
    if not a[0]:
        return a[1][:2] == b[1][:2]
    return a[2] == b[2]


def psql_admin(sql):
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sqldir", help="pgvector's test/sql directory")
    ap.add_argument("files", nargs="*", default=DEFAULT_FILES)
    ap.add_argument("--both", action="store_true",
                    help="install pgvector in crossmodal's database too")
    ap.add_argument("--verbose", action="store_true", help="list agreeing statements too")
    args = ap.parse_args()

    for db in ("parity_vector", "parity_crossmodal"):
        psql_admin("DROP DATABASE IF EXISTS %s" % db)
        psql_admin("CREATE DATABASE %s" % db)
    subprocess.run(["psql", "-X", "-q", "-d", "parity_vector", "-c", "CREATE EXTENSION vector"],
                   check=True)
    subprocess.run(["psql", "-X", "-q", "-d", "parity_crossmodal", "-c",
                    "CREATE EXTENSION crossmodal" + ("; CREATE EXTENSION vector" if args.both else "")],
                   check=True)

    total = agree = na = documented = 0
    unexplained = []
    print("pgvector statement (file:line) -> pgvector | crossmodal")
    for name in args.files:
        path = os.path.join(args.sqldir, name + ".sql")
        with open(path) as f:
            stmts = split_statements(f.read())
        applicable = [(l, s) for l, s, sec in stmts
                      if sec not in NA_SECTIONS and not NOT_APPLICABLE.search(s)]
        na_here = len(stmts) - len(applicable)
        with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
            for d in (d1, d2):
                os.mkdir(os.path.join(d, "results"))
                os.chmod(d, 0o777)
                os.chmod(os.path.join(d, "results"), 0o777)
            ref = run("parity_vector", [s for _, s in applicable], d1)
            ours = run("parity_crossmodal", [translate(s) for _, s in applicable], d2)
        file_agree = 0
        prev = ""
        for (line, stmt), a, b in zip(applicable, ref, ours):
            context = prev + "\n" + stmt
            prev = stmt
            if same(a, b):
                file_agree += 1
                if args.verbose:
                    print("  same %s:%d %s" % (name, line, stmt.replace("\n", " ")))
                continue
            reason = next((r for p, r in DOCUMENTED if re.search(p, context)), None)
            tag = "documented: " + reason if reason else "UNEXPLAINED"
            print("  DIFF %s:%d %s\n       pgvector:   %s\n       crossmodal: %s\n       %s"
                  % (name, line, stmt.replace("\n", " "), outcome(a), outcome(b), tag))
            if reason:
                documented += 1
            else:
                unexplained.append("%s:%d" % (name, line))
        print("%-12s %3d statements, %3d alike; apart: %3d on types crossmodal lacks"
              % (name, len(applicable), file_agree, na_here))
        total += len(applicable)
        agree += file_agree
        na += na_here
    print("total: %d of %d statements alike (%.1f%%); %d documented differences, %d unexplained"
          % (agree, total, 100.0 * agree / max(total, 1), documented, len(unexplained)))
    print("apart: %d statements on types crossmodal does not have (halfvec, sparsevec, bit)" % na)
    return 0 if not unexplained else 1


if __name__ == "__main__":
    sys.exit(main())
