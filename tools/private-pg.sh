#!/usr/bin/env bash
# Makes a private copy of the PostgreSQL installation that the pg_config on
# PATH describes (binaries and libraries, share files with the extensions
# installed there, headers) under DEST, keeping each directory's absolute path
# below DEST.  PostgreSQL finds its share, lib and include directories relative
# to its binaries, so the copy's pg_config, server and PGXS builds use only the
# copy: a test can install another version of an extension there, or unpack a
# package into it, without touching the real installation.
# Usage: tools/private-pg.sh DEST   (prints the copy's bindir)
set -euo pipefail
dest=${1:?usage: tools/private-pg.sh DEST}
bindir=$(pg_config --bindir)
# bindir's parent holds bin/ and lib/ (pkglibdir) in Debian's layout.
for dir in "$(dirname "$bindir")" "$(pg_config --pkglibdir)" "$(pg_config --sharedir)" "$(pg_config --includedir)"; do
	mkdir -p "$dest$(dirname "$dir")"
	[ -e "$dest$dir" ] || cp -a "$dir" "$dest$dir"
done
echo "$dest$bindir"
