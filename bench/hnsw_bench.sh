#!/usr/bin/env bash
# Builds bench/hnsw_bench and runs the crossmodal_hnsw benchmark against the
# server named by the PG* environment (the extension must be installed there).
# Usage: bench/hnsw_bench.sh [small|large|both|build] [extra hnsw_bench options...]
#   small: 100,000 x 512, 1,000 clusters   large: 1,000,000 x 128   build: only compile
# large's recall curve (0.95 near ef_search 640, never 0.99 at m = 16; m = 32, ef_construction = 128
# reaches 0.99 at 80) is the data's: hnswlib gives the same
# on the same vectors (--dump DIR, then bench/hnsw_reference.py DIR); see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/build
cc -std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -o bench/build/hnsw_bench \
	bench/hnsw_bench.c -I"$(pg_config --includedir)" -lpq -lm
what=${1:-small}; shift || true
if [ "$what" = small ] || [ "$what" = both ]; then
	bench/build/hnsw_bench --rows 100000 --dims 512 --clusters 1000 --queries 500 "$@"
fi
if [ "$what" = large ] || [ "$what" = both ]; then
	bench/build/hnsw_bench --rows 1000000 --dims 128 --clusters 1000 --queries 500 \
		--table hnsw_bench_large "$@"
fi
