#!/bin/bash
# run.sh: the image benchmark in one command.  Builds bench_images, writes the photo-like test images
# if missing (bench/images/make_photos.py), then for 0.3, 2, 12 and 24 MP JPEG and WebP prints ms per
# image for decode + resize + crop + normalise to 224 px: ours (exact decode and reduced-scale decodes
# with several margins, interleaved run by run) and PIL + CLIPImageProcessor's steps in Python, one
# after the other for each file; then, on the six 12 MP photos, the embedding cosine of each reduced
# decode against the exact one and encode_image's end-to-end ms (exact and default) on the
# ViT-B/32-shaped model and on the shipped default model; last, whether compositing transparent icons
# onto a background helps the shipped model (bench/images/icons.c).  One thread throughout.
#
# usage: bench/images/run.sh          (about 6 minutes on 2 busy cores, plus ~1 minute to write the
#                                      images and, the first time, ~2 minutes for the ViT-B/32 model)
#   REPEATS=7     timed runs per case (median)
#   MODEL=DIR     the ViT-B/32-shaped model (default: bench/encoders/work/clip-vit-b32-random)
#   NICE="nice"   prefix for the heavy steps (the machine is shared)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
MODEL="${MODEL:-$ROOT/bench/encoders/work/clip-vit-b32-random}"
REPEATS="${REPEATS:-7}"
NICE="${NICE:-nice}"
PY=/usr/bin/python3
BIN="$ROOT/build/bench"
cd "$ROOT"

echo "== build" >&2
make -s -C encoders lib
mkdir -p "$BIN" "$WORK"
BLAS_CFLAGS="$(pkg-config --cflags openblas 2>/dev/null || true)"
BLAS_LIBS="$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)"
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iencoders -I/usr/include/cjson $BLAS_CFLAGS \
	bench/images/bench_images.c build/libcmenc.a $BLAS_LIBS -lcjson -lutf8proc \
	-ljpeg -lwebp -lwebpdemux -ltiff -lz -lm -lpthread -o "$BIN/bench_images"
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iencoders -I/usr/include/cjson $BLAS_CFLAGS \
	bench/images/icons.c build/libcmenc.a $BLAS_LIBS -lcjson -lutf8proc \
	-ljpeg -lwebp -lwebpdemux -ltiff -lz -lm -lpthread -o "$BIN/icons"
$NICE $PY bench/images/make_photos.py "$WORK/photos"
if [ ! -f "$MODEL/config.json" ]; then
	echo "== generating $MODEL (~600 MB)" >&2
	$NICE $PY bench/encoders/make_vitb32_random.py "$MODEL"
fi

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "load before: $(uptime | sed 's/^ *//')"
echo
echo "== decode + resize + crop + normalise to 224 px, ms per image (one thread)"
rows='1,2p'                     # the header once, then each file's row
for size in 0.3mp 2mp 12mp 24mp; do
	for ext in jpg webp; do
		f="$WORK/photos/${size}_1.$ext"
		$NICE "$BIN/bench_images" --repeats "$REPEATS" "$f" | sed -n "$rows"
		rows='2p'
		$NICE $PY bench/images/pil_preprocess.py --repeats "$REPEATS" "$f"
	done
done
echo
echo "== 12 MP photos: embedding cosine of each reduced decode to the exact decode; encode_image end to end"
$NICE "$BIN/bench_images" --repeats "$REPEATS" --model "$MODEL" --model "$ROOT/models/emoji-clip-en-ko" \
	"$WORK"/photos/12mp_*.jpg "$WORK"/photos/12mp_*.webp
echo
echo "== transparent icons: the image background on the shipped model"
$NICE "$BIN/icons" models/emoji-clip-en-ko models/emoji-clip-en-ko/samples
echo
echo "load after: $(uptime | sed 's/^ *//')"
