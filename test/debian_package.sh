#!/usr/bin/env bash
# Builds the Debian package postgresql-15-crossmodal from this tree with
# dpkg-buildpackage, checks its files and dependencies, and checks that it
# works where it installs: CREATE EXTENSION, the shipped default model found
# on the default model path, an encode, an HNSW index.
#
# Where it installs: when the PostgreSQL under test is Debian's own
# (pg_config is /usr/lib/postgresql/15/bin's, as in CI) and this runs as root,
# the package is installed for real with apt-get (then removed, and the
# extension installed again with make install, as the test run had it);
# otherwise its files are unpacked into a private copy of the PostgreSQL
# installation (tools/private-pg.sh), at the paths the package gives them.
# Usage (from test/run.sh, or alone, as root): test/debian_package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=$(sed -n 's/^crossmodal (\([^)]*\)).*/\1/p;q' debian/changelog)
EXTVERSION=$(sed -n 's/^EXTVERSION = //p' Makefile)
WORK=$(mktemp -d /tmp/crossmodal-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() { echo "debian package: $*" >&2; exit 1; }

# Versions agree: the package, the extension, PGXN's META.json.
[ "$VERSION" = "$EXTVERSION" ] || fail "debian/changelog says $VERSION, the Makefile $EXTVERSION"
grep -q "\"version\": \"$EXTVERSION\"" META.json || fail "META.json does not say version $EXTVERSION"
grep -q "default_version = '$EXTVERSION'" crossmodal.control || fail "crossmodal.control's default_version is not $EXTVERSION"

# 1. Build from the tree's files (tracked and new, not ignored: no build output).
src=$WORK/crossmodal-$VERSION
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -c --no-recursion -f - | tar -x -C "$src"
echo "building postgresql-15-crossmodal $VERSION"
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$WORK/build.log" 2>&1 \
	|| { tail -n 40 "$WORK/build.log"; fail "dpkg-buildpackage failed"; }
echo "built in $(( $(date +%s) - start )) s"
deb=$(ls "$WORK"/postgresql-15-crossmodal_"$VERSION"_*.deb)

# 2. What it holds and what it needs.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/lib/postgresql/15/lib/crossmodal.so \
	./usr/share/postgresql/15/extension/crossmodal.control \
	"./usr/share/postgresql/15/extension/crossmodal--$EXTVERSION.sql" \
	"./usr/share/postgresql/15/extension/crossmodal--0.1.0--$EXTVERSION.sql" \
	./usr/share/doc/postgresql-15-crossmodal/README.md.gz \
	$(for m in models/*/config.json; do m=$(dirname "$m"); for f in config.json model.safetensors; do
		echo "./usr/share/postgresql/15/extension/crossmodal_models/${m#models/}/$f"; done; done); do
	grep -qxF "$f" <<<"$contents" || fail "the package lacks $f"
done
if grep -v -e '^\./usr/lib/postgresql/15/lib/' -e '^\./usr/share/postgresql/15/extension/' \
	-e '^\./usr/share/doc/postgresql-15-crossmodal/' -e '^\./$' -e '^\./usr/$' -e '^\./usr/lib/$' \
	-e '^\./usr/lib/postgresql/$' -e '^\./usr/lib/postgresql/15/$' -e '^\./usr/share/$' \
	-e '^\./usr/share/doc/$' -e '^\./usr/share/postgresql/$' -e '^\./usr/share/postgresql/15/$' <<<"$contents"; then
	fail "the package installs files outside PostgreSQL's directories (above)"
fi
depends=$(dpkg-deb -f "$deb" Depends)
for d in postgresql-15 libopenblas libcjson libutf8proc; do
	grep -q "$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB; Depends: $depends"
dpkg --dry-run -i "$deb" >/dev/null || fail "dpkg cannot install it here (dependencies above)"

# 3. It works where it installs.
. tools/cluster.sh
check_installation() {	# BINDIR: a cluster from those binaries uses the installed extension
	local PG_BINDIR=$1 out
	cluster_start 54336
	trap 'cluster_stop; rm -rf "$WORK"' EXIT
	# The default model must be on the default model path, loadable; any use
	# of the extension loads its library, which defines its settings.
	out=$(as_postgres "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 <<-'SQL'
		CREATE EXTENSION crossmodal;
		SELECT extversion FROM pg_extension WHERE extname = 'crossmodal';
		SELECT current_setting('crossmodal.default_model') AS m FROM (SELECT '[0]'::embedding) AS load \gset
		SELECT coalesce(problem, 'loads') FROM crossmodal_models() WHERE name = :'m';
		CREATE TABLE t (id int, emb embedding);
		INSERT INTO t SELECT g, encode_text(w) FROM unnest(ARRAY['cow', 'cat', '고양이']) WITH ORDINALITY AS u(w, g);
		CREATE INDEX ON t USING crossmodal_hnsw (emb embedding_cosine_ops);
		SET enable_seqscan = off;
		SELECT id FROM t ORDER BY emb <=> encode_text('cow') LIMIT 1;
	SQL
	)
	cluster_stop
	[ "$out" = "$(printf '%s\n%s\n%s' "$EXTVERSION" loads 1)" ] || fail "unexpected answers from the installed package: $out"
}

if [ "$(pg_config --bindir)" = /usr/lib/postgresql/15/bin ] && [ "$(id -u)" -eq 0 ]; then
	echo "installing the package into Debian's PostgreSQL"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$WORK/install.log" 2>&1 \
		|| { cat "$WORK/install.log"; fail "apt-get install failed"; }
	dpkg -L postgresql-15-crossmodal | grep -qx /usr/lib/postgresql/15/lib/crossmodal.so || fail "dpkg -L lacks the library"
	status=0
	(check_installation /usr/lib/postgresql/15/bin) || status=$?
	DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq postgresql-15-crossmodal >/dev/null 2>&1 || status=1
	# The package's removal took the files make install had put there.
	make -s install >/dev/null || status=1
	[ "$status" -eq 0 ] || fail "the installed package does not work"
	echo "installed, checked and removed"
else
	echo "unpacking the package into a private copy of the PostgreSQL installation"
	bindir=$(tools/private-pg.sh "$WORK/pg")
	pkglibdir=$("$bindir/pg_config" --pkglibdir)
	sharedir=$("$bindir/pg_config" --sharedir)
	rm -rf "$pkglibdir"/crossmodal.so "$pkglibdir"/bitcode/crossmodal* "$sharedir"/extension/crossmodal*
	dpkg-deb -x "$deb" "$WORK/unpacked"
	cp -a "$WORK/unpacked/usr/lib/postgresql/15/lib/." "$pkglibdir/"
	cp -a "$WORK/unpacked/usr/share/postgresql/15/extension/." "$sharedir/extension/"
	chmod -R a+rX "$WORK"
	check_installation "$bindir"
	echo "unpacked and checked"
fi
