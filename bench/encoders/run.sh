#!/bin/bash
# run.sh: the encoder benchmark in one command: build, make the ViT-B/32-shaped random model if missing,
# then sgemm peak, the C runtime (F32, then BF16 products), BF16 against F32 in one process (fidelity,
# retrieval ranks, interleaved timing; fidelity on the golden models too), a probe of INT8 weights with
# VNNI (int8_probe.c), the PyTorch reference (as
# installed, then with a tuned environment) and sgemm peak again, one after the other (never
# concurrently: two thread pools on two cores slow each other down), and print the results table.
#
# usage: bench/encoders/run.sh            (from anywhere; about 15 minutes on 2 quiet cores)
#        MODEL_KIND=siglip bench/encoders/run.sh   (a SigLIP-B/16-224-shaped random model instead, generated
#                       once, ~810 MB; texts at SigLIP's 64 padded positions; about 20 minutes)
#   THREADS=1,2    OpenBLAS threads for C; torch intra-op + OpenBLAS threads for PyTorch
#   REPEATS=5      timed runs per case (median reported; long cases stop after 3 runs past their budget)
#   MODEL=DIR      another model directory (default: bench/encoders/work/clip-vit-b32-random)
#   NICE="nice"    prefix for the heavy steps (the machine is shared)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
MODEL_KIND="${MODEL_KIND:-clip}"
case "$MODEL_KIND" in
	clip) MODEL="${MODEL:-$WORK/clip-vit-b32-random}"; MAKE_MODEL=make_vitb32_random.py ;;
	siglip) MODEL="${MODEL:-$WORK/siglip-b16-224-random}"; MAKE_MODEL=make_siglip_b16_random.py ;;
	*) echo "MODEL_KIND is clip or siglip" >&2; exit 2 ;;
esac
THREADS="${THREADS:-1,2}"
REPEATS="${REPEATS:-5}"
NICE="${NICE:-nice}"
PY=/usr/bin/python3          # Debian's python3 with torch and numpy
BIN="$ROOT/build/bench"
cd "$ROOT"

echo "== build" >&2
make -s -C encoders lib
mkdir -p "$BIN" "$WORK"
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE"
BLAS_CFLAGS="$(pkg-config --cflags openblas 2>/dev/null || true)"
BLAS_LIBS="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)"
cc $CFLAGS $BLAS_CFLAGS bench/encoders/sgemm_peak.c $BLAS_LIBS -o "$BIN/sgemm_peak"
cc $CFLAGS -Iencoders -I/usr/include/cjson $BLAS_CFLAGS bench/encoders/bench_encoders.c \
	build/libcmenc.a $BLAS_LIBS -lcjson -lutf8proc -ljpeg -lwebp -lwebpdemux -ltiff -lz -lm -lpthread \
	-o "$BIN/bench_encoders"
cc $CFLAGS -Iencoders -I/usr/include/cjson $BLAS_CFLAGS bench/encoders/bench_precision.c \
	build/libcmenc.a $BLAS_LIBS -lcjson -lutf8proc -ljpeg -lwebp -lwebpdemux -ltiff -lz -lm -lpthread \
	-o "$BIN/bench_precision"
cc $CFLAGS -Iencoders $BLAS_CFLAGS bench/encoders/int8_probe.c build/libcmenc.a $BLAS_LIBS -lm -lpthread \
	-o "$BIN/int8_probe"

if [ ! -f "$MODEL/config.json" ]; then
	echo "== generating $MODEL (600-810 MB)" >&2
	$NICE $PY "bench/encoders/$MAKE_MODEL" "$MODEL"
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$WORK/results-$STAMP.txt"
FEATURES="$WORK/c-features-$STAMP.bin"
{
	echo "RESULT date $STAMP"
	echo "RESULT machine $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -r)"
	echo "RESULT threads $THREADS"
	echo "RESULT model_kind $MODEL_KIND"
	echo "RESULT uptime_before $(uptime | sed 's/^ *//')"
} | tee "$RESULTS"

echo "== sgemm peak (threads $THREADS)" >&2
$NICE "$BIN/sgemm_peak" --threads "$THREADS" --file "$MODEL/model.safetensors" | tee -a "$RESULTS"
echo "== C runtime (threads $THREADS)" >&2
$NICE "$BIN/bench_encoders" "$MODEL" --threads "$THREADS" --repeats "$REPEATS" --rss --dump "$FEATURES" \
	--image test/golden/images/landscape_320x240.png \
	| tee -a "$RESULTS"
echo "== C runtime, BF16 products (threads $THREADS)" >&2
$NICE "$BIN/bench_encoders" "$MODEL" --precision bf16 --threads "$THREADS" --repeats "$REPEATS" --rss \
	--image test/golden/images/landscape_320x240.png | tee -a "$RESULTS"
echo "== BF16 against F32 in one process: fidelity, retrieval, interleaved timing (threads $THREADS)" >&2
$NICE "$BIN/bench_precision" "$MODEL" --threads "$THREADS" --repeats "$REPEATS" | tee -a "$RESULTS"
for golden in test/golden/tiny-* test/golden2/tiny-*; do
	echo "== BF16 against F32, fidelity: $golden" >&2
	$NICE "$BIN/bench_precision" "$golden" --no-timing | tee -a "$RESULTS"
done
echo "== INT8 with VNNI, a probe: the text tower's products at F32, BF16 and INT8 (1 thread)" >&2
$NICE "$BIN/int8_probe" --repeats "$((REPEATS + 2))" | tee -a "$RESULTS"
echo "== PyTorch (threads $THREADS)" >&2
$NICE $PY bench/encoders/torch_clip.py --check-golden "$MODEL" --compare "$FEATURES" \
	--threads "$THREADS" --repeats "$REPEATS" | tee -a "$RESULTS"
echo "== PyTorch, tuned environment (threads $THREADS)" >&2
$NICE $PY bench/encoders/torch_clip.py "$MODEL" --tuned-env --threads "$THREADS" --repeats "$REPEATS" \
	| tee -a "$RESULTS"
echo "== sgemm peak again (the best of both is the peak)" >&2
$NICE "$BIN/sgemm_peak" --threads "$THREADS" --file "$MODEL/model.safetensors" | tee -a "$RESULTS"
echo "RESULT uptime_after $(uptime | sed 's/^ *//')" | tee -a "$RESULTS"

echo "== results ($RESULTS)" >&2
$PY bench/encoders/report.py "$RESULTS" | tee "${RESULTS%.txt}.md"
