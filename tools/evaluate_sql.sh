#!/usr/bin/env bash
# evaluate_sql.sh - the retrieval figures of tools/evaluate.py, measured through the extension itself:
# the held-out styles' pictures are written as PNG files, stored in a table and embedded by the server
# (encode_image), each concept's English and Korean label is embedded by encode_text, and text->image
# recall@1/5/10 is counted in SQL with an exact scan (ORDER BY emb <=> ... LIMIT 10).  This checks that
# the runtime's decoder, tokenizer and forward give what the training code measured.
#
# Usage (as root on Debian 12, extension installed): tools/evaluate_sql.sh [--heldout-families] MODEL_DIR
#   --heldout-families: the model was trained without the held-out concept families; each set is then
#   also split into those families and the others (each ranked within its own gallery, as evaluate.py does).
# Needs tools/cache/prepared/ (tools/emoji_data.py prepare and openmoji).  Runs about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
families=false
if [ "${1:-}" = --heldout-families ]; then families=true; shift; fi
[ $# -eq 1 ] && [ -f "$1/config.json" ] || { echo "usage: tools/evaluate_sql.sh [--heldout-families] MODEL_DIR" >&2; exit 2; }
MODEL_DIR=$(cd "$1" && pwd)
uptime

WORK=$(mktemp -d /tmp/crossmodal-evalsql.XXXXXX)
mkdir -p "$WORK/models" "$WORK/png"
cp -r "$MODEL_DIR" "$WORK/models/eval-model"
# The pictures as a user would store them: the RGBA files (the runtime drops alpha, as evaluate.py's
# "rgb" arrays do), skin-tone variants left out as in evaluate.py.
/usr/bin/python3 - "$WORK/png" <<'EOF'
import json, os, sys
import numpy as np
from PIL import Image
prep = "tools/cache/prepared"
out = sys.argv[1]
concepts = json.load(open(os.path.join(prep, "concepts.json")))
with open(os.path.join(out, "pictures.tsv"), "w", encoding="utf-8") as f:
    for name in ("openmoji", "streamline"):
        d = np.load(os.path.join(prep, name + ".npz"))
        rgba = d["rgba"]  # read once: every d[...] reads the array from the archive again
        for i, h in enumerate(d["hex"]):
            c = concepts[str(h)]
            if c["skin"]:
                continue
            file = "%s_%s.png" % (name, str(h).lower())
            Image.fromarray(rgba[i], "RGBA").save(os.path.join(out, file))
            f.write("\t".join([file, name, str(h), c["en"], c["ko"], "t" if c["heldout"] else "f"]) + "\n")
EOF
chown -R postgres: "$WORK"
trap 'rm -rf "$WORK"' EXIT

. tools/cluster.sh
cluster_start 54339 "crossmodal.model_path = '$WORK/models'"
trap 'cluster_stop; rm -rf "$WORK"' EXIT
start=$(date +%s)
as_postgres "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -v dir="$WORK/png/" -v families="$families" <<'SQL'
CREATE EXTENSION crossmodal;
CREATE TABLE pics (file text, set text, hex text, en text, ko text, heldout bool);
\set tsv :dir 'pictures.tsv'
COPY pics FROM :'tsv' WITH (FORMAT text);
CREATE TABLE img AS
	SELECT file, set, hex, heldout, encode_image('eval-model', pg_read_binary_file(:'dir' || file)) AS emb FROM pics;
CREATE TABLE qry AS
	SELECT p.set, p.hex, p.heldout, l.lang, encode_text('eval-model', l.label) AS v
	FROM pics p CROSS JOIN LATERAL (VALUES ('en', p.en), ('ko', p.ko)) l(lang, label);
SELECT name, dimensions, image_size, parameters FROM crossmodal_models();
-- Subsets: every concept; with --heldout-families also the held-out families and the others, each
-- query ranked within the gallery of its own subset.
CREATE TABLE subsets (subset text, held bool);
INSERT INTO subsets VALUES ('all', NULL);
INSERT INTO subsets SELECT * FROM (VALUES ('heldout_families', true), ('other_families', false)) s
	WHERE :'families'::bool;
SELECT q.set, s.subset, count(*) AS concepts, q.lang,
	   round(avg((h.first <= 1)::int), 3) AS "t2i_R@1",
	   round(avg((h.first <= 5)::int), 3) AS "t2i_R@5",
	   round(avg((h.first <= 10)::int), 3) AS "t2i_R@10"
FROM subsets s
JOIN qry q ON s.held IS NULL OR q.heldout = s.held
CROSS JOIN LATERAL (
	SELECT coalesce(min(t.r) FILTER (WHERE t.hex = q.hex), 11) AS first
	FROM (SELECT top.hex, row_number() OVER () AS r
		  FROM (SELECT i.hex FROM img i
				WHERE i.set = q.set AND (s.held IS NULL OR i.heldout = s.held)
				ORDER BY i.emb <=> q.v LIMIT 10) top) t
) h
GROUP BY q.set, s.subset, q.lang
ORDER BY q.set, s.subset, q.lang;
SQL
echo "evaluate_sql: $(($(date +%s) - start)) s in the server"
