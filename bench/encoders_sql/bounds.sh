#!/bin/bash
# bounds.sh: a backend's peak memory (VmHWM, from /proc) with the largest
# inputs the default settings allow, each case in a fresh backend, and how
# soon statement_timeout stops the long ones.  Issue 19.
#
#   - encode_image of a PNG at the pixel limit (crossmodal.max_image_pixels,
#     40,000,000 by default) and of a JPEG near the byte limit (32 MB)
#   - encode_images of a 10,000-element array, encode_texts of 10,000 texts
#   - 16,000-dimension embeddings: text input, avg() over 1,000 rows, an
#     exact top-10 over them, a rabitq index built on them
#   - the same batch encode and index build under statement_timeout = 1s
#
# usage (as root, after `make install`): bench/encoders_sql/bounds.sh
#   PORT=55534  MODEL=emoji-clip-en-ko (the shipped default; MODEL_DIR=DIR for
#   another model directory, e.g. bench/encoders/work/clip-vit-b32-random)
# Runs about 2 minutes with the default model on a quiet machine (the
# images are generated first, with /usr/bin/python3 and PIL).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT="${PORT:-55534}"
cd "$ROOT"

WORK=$(mktemp -d /tmp/crossmodal-bounds.XXXXXX)
chmod 755 "$WORK"
/usr/bin/python3 - "$WORK" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
w = sys.argv[1]
side = 6324                                     # 6324^2 = 39,992,976 pixels, under 40,000,000
x = np.arange(side, dtype=np.uint32)[None, :]
y = np.arange(side, dtype=np.uint32)[:, None]
img = np.empty((side, side, 3), dtype=np.uint8)
img[..., 0] = (x * 255 // side).astype(np.uint8)
img[..., 1] = (y * 255 // side).astype(np.uint8)
img[..., 2] = ((x + y) % 256).astype(np.uint8)
Image.fromarray(img).save(f"{w}/limit_pixels.png", compress_level=1)
rng = np.random.default_rng(19)
noise = rng.integers(0, 256, size=(4700, 4700, 3), dtype=np.uint8)
Image.fromarray(noise).save(f"{w}/near_bytes.jpg", quality=97)
for n in ("limit_pixels.png", "near_bytes.jpg"):
    im = Image.open(f"{w}/{n}")
    print(f"{n}: {im.size[0]} x {im.size[1]} px, {os.path.getsize(f'{w}/{n}') / 2**20:.1f} MiB")
EOF
SMALL="$ROOT/test/images/png_rgb8.png"
[ -f "$SMALL" ] || SMALL=$(ls "$ROOT"/test/images/*.png | head -1)

. tools/cluster.sh
settings=("shared_buffers = 128MB")
if [ -n "${MODEL_DIR:-}" ]; then
	settings+=("crossmodal.model_path = '$(dirname "$MODEL_DIR")'")
	MODEL=$(basename "$MODEL_DIR")
fi
MODEL=${MODEL:-emoji-clip-en-ko}
cluster_start "$PORT" "${settings[@]}"
chown -R postgres: "$WORK"
psql -XAtq -c "CREATE EXTENSION IF NOT EXISTS crossmodal" >/dev/null
echo "load before: $(uptime)"
echo "model: $MODEL; $(psql -XAtq -c "LOAD 'crossmodal'" -c "SELECT string_agg(name || ' ' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('crossmodal.max_image_pixels', 'crossmodal.max_image_bytes', 'work_mem', 'maintenance_work_mem', 'shared_buffers')")"
echo "VmHWM: the backend's peak resident memory (the shared buffers and mapped model pages it touched included);"
echo "VmRSS, RssAnon (private) and RssShmem (shared buffers): at the end of the case"
psql -XAtq -c "CREATE TABLE wide AS SELECT i, (SELECT array_agg(sin(i * 7 + j * 0.37))::real[] FROM generate_series(1, 16000) j WHERE i > 0)::embedding(16000) AS emb FROM generate_series(1, 1000) i" >/dev/null
psql -XAtq -c "CREATE TABLE lit AS SELECT (SELECT array_agg(sin(j * 0.37))::real[] FROM generate_series(1, 16000) j)::embedding::text AS t" >/dev/null

# case LABEL SQL: runs SQL in a new backend, prints its peak and final memory and the time taken
case_run() {
	local label=$1 sql=$2 out
	out=$(psql -XAtq -v ON_ERROR_STOP=0 2>&1 <<EOF
SELECT pg_backend_pid() AS pid \gset
\setenv BPID :pid
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$sql
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000) AS ms \gset
\! awk '/VmHWM|VmRSS|RssAnon|RssShmem/ {printf "%s %.1f MiB  ", \$1, \$2 / 1024}' /proc/\$BPID/status
\echo :ms ms
EOF
)
	printf '%-58s %s\n' "$label" "$(tr '\n' ' ' <<<"$out" | sed 's/  */ /g')"
}

img() { echo "pg_read_binary_file('$1')"; }
case_run "baseline: SELECT 1" "SELECT 1 \\g /dev/null"
case_run "encode_image, PNG at the pixel limit" "SELECT dims(encode_image('$MODEL', $(img "$WORK/limit_pixels.png"))) \\g /dev/null"
case_run "encode_image, JPEG near the byte limit" "SELECT dims(encode_image('$MODEL', $(img "$WORK/near_bytes.jpg"))) \\g /dev/null"
case_run "encode_images, 10,000 small PNGs" "SELECT cardinality(encode_images('$MODEL', array_fill($(img "$SMALL"), ARRAY[10000]))) \\g /dev/null"
case_run "encode_texts, 10,000 texts" "SELECT cardinality(encode_texts('$MODEL', (SELECT array_agg('a photo number ' || g || ' of a cat on a red sofa') FROM generate_series(1, 10000) g))) \\g /dev/null"
case_run "16,000-d text input x 100" "SELECT count(dims(t::embedding)) FROM lit, generate_series(1, 100) \\g /dev/null"
case_run "avg() of 1,000 x 16,000-d" "SELECT dims(avg(emb)) FROM wide \\g /dev/null"
case_run "exact top-10 over 1,000 x 16,000-d" "SELECT i FROM wide ORDER BY emb <=> (SELECT emb FROM wide WHERE i = 7) LIMIT 10 \\g /dev/null"
case_run "rabitq index on 1,000 x 16,000-d" "CREATE INDEX wide_rq ON wide USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq); DROP INDEX wide_rq;"
case_run "encode_images x 10,000, statement_timeout 1s" "SET statement_timeout = '1s'; SELECT cardinality(encode_images('$MODEL', array_fill($(img "$SMALL"), ARRAY[10000]))) \\g /dev/null"
case_run "rabitq index build, statement_timeout 1s" "SET statement_timeout = '1s'; CREATE INDEX wide_rq ON wide USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq, ef_construction = 400);"
echo "load after: $(uptime)"
rm -rf "$WORK"
