#!/bin/bash
# run.sh: memory of backends running the SQL encoders (see memory.pl): 8
# backends sharing one float32 ViT-B/32-shaped model, and a loop of cancelled
# encodes.  Starts and stops its own throwaway cluster.
#
# usage (as root, after `make install`): bench/encoders_sql/run.sh
#   SESSIONS=8 ROUNDS=30 PORT=55533
#   MODEL_DIR=DIR   a model directory (default: the random ViT-B/32-shaped
#                   model of bench/encoders, generated when missing)
#   PRECISION=bf16  crossmodal.precision of the cluster (default f32): at bf16
#                   each backend holds its own bfloat16 copy of F32 weights
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SESSIONS="${SESSIONS:-8}"
ROUNDS="${ROUNDS:-30}"
PORT="${PORT:-55533}"
PRECISION="${PRECISION:-f32}"
MODEL_DIR="${MODEL_DIR:-$ROOT/bench/encoders/work/clip-vit-b32-random}"
cd "$ROOT"

if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
	echo "== generating $MODEL_DIR" >&2
	nice /usr/bin/python3 bench/encoders/make_vitb32_random.py "$MODEL_DIR"
fi
MODEL_PATH="$(dirname "$MODEL_DIR")"
MODEL_NAME="$(basename "$MODEL_DIR")"
IMAGE="$ROOT/test/golden/images/landscape_320x240.png"

. tools/cluster.sh
cluster_start "$PORT" "crossmodal.model_path = '$MODEL_PATH'" "crossmodal.precision = '$PRECISION'" \
	"shared_buffers = 128MB"
psql -XAtq -c "CREATE EXTENSION IF NOT EXISTS crossmodal" >/dev/null

echo "model: $MODEL_DIR (crossmodal.precision = $PRECISION)"
echo "load: $(uptime)"
psql -XAtq -c "SELECT 'dimensions ' || dimensions || ', image ' || image_size || ', ' || parameters || ' parameters, ' || weight_dtype FROM crossmodal_models() WHERE name = '$MODEL_NAME'"
nice perl "$HERE/memory.pl" "host=$PGHOST port=$PGPORT user=postgres dbname=postgres" \
	"$MODEL_NAME" "$IMAGE" "$SESSIONS" "$ROUNDS"
