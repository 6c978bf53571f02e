#!/usr/bin/env bash
# Runs the client examples against a throwaway cluster, as CI does: the Python
# (psycopg 3) and Node.js (pg) programs, and the gallery's end-to-end test in
# headless chromium.  The extension must be installed (make install).
# Usage: examples/run.sh [python] [node] [gallery]   (default: all three)
#   examples/run.sh gallery    runs the browser test alone, which also
#                              rewrites examples/gallery/screenshot.png
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(python node gallery)

# The cluster runs as postgres; the examples connect over its Unix socket.
. tools/cluster.sh
cluster_start 54337
export PGDATABASE=postgres

failed=0
run() {	# run NAME COMMAND...
	echo "== $1"
	shift
	if ! "$@"; then echo "-- FAILED: $*"; failed=$((failed + 1)); fi
}
npm_ci() {	# dependencies exactly as package-lock.json pins them
	(cd "$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}
for kind in "${kinds[@]}"; do
	case $kind in
	python)
		run "Python: search" /usr/bin/python3 examples/python/search.py
		run "Python: translate" /usr/bin/python3 examples/python/translate.py
		;;
	node)
		run "Node.js: npm ci" npm_ci examples/node
		run "Node.js: search" node examples/node/search.mjs
		run "Node.js: translate" node examples/node/translate.mjs
		;;
	gallery)
		run "gallery: npm ci" npm_ci examples/gallery
		run "gallery: browser test" bash -c 'cd examples/gallery && npm test'
		;;
	*) echo "unknown example kind: $kind (python, node, gallery)" >&2; exit 2 ;;
	esac
done
cluster_stop
[ "$failed" -eq 0 ]
