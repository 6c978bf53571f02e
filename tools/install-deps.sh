#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need.
# Usage: tools/install-deps.sh [--test|--train|--bench]   (as root; --test adds the test-only packages
#        (the examples' and the gallery test's npm packages are installed by examples/run.sh with npm ci),
#        --train the packages that prepare the emoji data and train the default model, --bench those of
#        the benchmarks' reference implementations (PyTorch, hnswlib);
#        fetching that data also needs the `npm` client)
set -euo pipefail

packages=(make gcc pkg-config postgresql-15 postgresql-server-dev-15
          libopenblas-dev libstb-dev libcjson-dev libutf8proc-dev
          libjpeg62-turbo-dev libwebp-dev libtiff-dev zlib1g-dev)
if [ "${1:-}" = "--test" ]; then
	packages+=(clang libclang-rt-14-dev libipc-run-perl python3-numpy
	           git python3-psycopg  # TAP 070 (0.1.0 from history); the Python examples
	           chromium             # the gallery's browser test (driven by playwright-core from npm)
	           dpkg-dev debhelper fakeroot)  # test/debian_package.sh: dpkg-buildpackage
	# The Node.js examples and the gallery need node and npm: Debian's, unless
	# the machine already has a Node.js (its npm comes with it).
	command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi
if [ "${1:-}" = "--bench" ]; then  # bench/encoders/torch_clip.py, bench/hnsw_reference.py, bench/images
	packages+=(python3-torch python3-numpy python3-hnswlib python3-pil)
fi
if [ "${1:-}" = "--train" ]; then  # tools/emoji_data.py, tools/train.py, tools/evaluate.py
	packages+=(librsvg2-bin python3-torch python3-numpy python3-pil python3-regex)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
