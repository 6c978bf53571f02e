#!/usr/bin/env bash
# crossmodal_hnsw benchmark, one command per configuration: builds bench/build/hnsw_bench, starts a
# throwaway server with fixed settings (the PostgreSQL of `pg_config` on PATH, the extension installed
# there; pgvector too, if it is installed, for a side-by-side run), runs the benchmark and prints the
# machine's load (uptime) before and after.  bench/README.md has the figures and what they mean.
#
# Usage: bench/hnsw_bench.sh CONFIG [extra hnsw_bench options...]
#   quick      20,000 x 512, every storage form and pgvector              (a few minutes: checks the setup)
#   100k512    100,000 x 512, every storage form and pgvector             (the issue 17 reference size)
#   1m512      1,000,000 x 512, every storage form and pgvector           (the full run; see bench/README.md)
#   100k3072   100,000 x 3,072: half, int8, rabitq; pgvector through halfvec (it indexes 2,000 vector dims)
#   small      100,000 x 512, float4 only, against the server in PG* (the issue 6 runs)
#   large      1,000,000 x 128, float4 only, against the server in PG* (bench/README.md's recall analysis)
#   build      only compile bench/build/hnsw_bench
# Environment: BENCH_SHARED_BUFFERS (default: a third of the RAM, at most 8GB), BENCH_PORT (54397).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p bench/build
cc -std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
	-o bench/build/hnsw_bench bench/hnsw_bench.c -I"$(pg_config --includedir)" \
	$(pkg-config --cflags openblas 2>/dev/null) -lpq $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm
what=${1:-quick}; shift || true
[ "$what" = build ] && exit 0

forms=float4,half,int8,rabitq
efs=10,20,40,80,160,320
halfvec=0
case "$what" in
	quick)    args=(--rows 20000 --dims 512 --clusters 200 --queries 200 --ef 10,20,40,80,160 --maintenance-work-mem 1GB) ;;
	100k512)  args=(--rows 100000 --dims 512 --clusters 1000 --queries 500 --ef $efs --maintenance-work-mem 2GB) ;;
	1m512)    args=(--rows 1000000 --dims 512 --clusters 10000 --queries 500 --ef $efs,640 --maintenance-work-mem 8GB) ;;
	100k3072) forms=half,int8,rabitq
	          halfvec=1
	          args=(--rows 100000 --dims 3072 --clusters 1000 --queries 500 --ef $efs --maintenance-work-mem 4GB) ;;
	small)    exec bench/build/hnsw_bench --rows 100000 --dims 512 --clusters 1000 --queries 500 --image-offset 0 "$@" ;;
	large)    exec bench/build/hnsw_bench --rows 1000000 --dims 128 --clusters 1000 --queries 500 \
	              --image-offset 0 --table hnsw_bench_large "$@" ;;
	*) echo "usage: bench/hnsw_bench.sh quick|100k512|1m512|100k3072|small|large|build [options]" >&2; exit 2 ;;
esac
args+=(--storage "$forms" --table "hb_$what")
if [ -f "$(pg_config --sharedir)/extension/vector.control" ]; then
	args+=(--pgvector)
	[ "$halfvec" = 1 ] && args+=(--pgvector-halfvec)
else
	echo "note: pgvector is not installed in $(pg_config --sharedir): crossmodal_hnsw alone"
fi

mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
shared=${BENCH_SHARED_BUFFERS:-$(( mem_kb / 3 / 1024 > 8192 ? 8192 : mem_kb / 3 / 1024 ))MB}
. tools/cluster.sh
cluster_start "${BENCH_PORT:-54397}" "shared_buffers = $shared" "max_wal_size = 8GB" \
	"checkpoint_timeout = 30min" "max_parallel_maintenance_workers = 2" "jit = off" "autovacuum = off"
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(( mem_kb / 1024 / 1024 )) GiB RAM, shared_buffers $shared"
echo "== uptime before: $(uptime)"
start=$(date +%s)
bench/build/hnsw_bench "${args[@]}" "$@"
echo "== uptime after: $(uptime)"
echo "== run time: $(( $(date +%s) - start )) s"
