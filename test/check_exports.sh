#!/usr/bin/env bash
# Checks the dynamic symbols that the built library exports against the
# allow-list of what PostgreSQL looks up by name: Pg_magic_func, _PG_init,
# for every C function the install script declares the symbol it names and
# its pg_finfo_ record, and the entry points of parallel workers (the names
# given to CreateParallelContext in extension/*.c).  Anything more is a name
# another library loaded into the same backend could bind to
# (extension/crossmodal.h); anything less is a function PostgreSQL cannot
# find.  Every exported function must carry the crossmodal_ prefix, and every
# symbol an update script names must be exported.
# Usage: test/check_exports.sh LIBRARY INSTALL_SCRIPT [UPDATE_SCRIPT...]
set -euo pipefail

lib=$1; install_script=$2; shift 2

# The C symbols a script binds: AS 'MODULE_PATHNAME', 'symbol', or the SQL
# name when the symbol is left out.
symbols_of() {
	perl -0ne '
		s/--[^\n]*//g;
		while (/CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:\w+\.)?(\w+)\s*\((.*?);/gsi) {
			my ($name, $rest) = ($1, $2);
			next unless $rest =~ /\bAS\s+\x27MODULE_PATHNAME\x27(?:\s*,\s*\x27(\w+)\x27)?/si;
			print((defined $1 ? $1 : $name), "\n");
		}' "$@" | sort -u
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

symbols_of "$install_script" >"$tmp/functions"
if [ ! -s "$tmp/functions" ]; then
	echo "no C functions found in $install_script" >&2
	exit 1
fi
perl -ne 'print "$1\n" while /CreateParallelContext\(\s*"crossmodal"\s*,\s*"(\w+)"/g' \
	"$(dirname "$0")"/../extension/*.c | sort -u >"$tmp/workers"
{
	printf '%s\n' Pg_magic_func _PG_init
	cat "$tmp/functions" "$tmp/workers"
	sed 's/^/pg_finfo_/' "$tmp/functions"
} | sort -u >"$tmp/allowed"

# Defined dynamic symbols of every kind (functions, data, weak, ...).
nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u >"$tmp/exported"

status=0
extra=$(comm -13 "$tmp/allowed" "$tmp/exported")
missing=$(comm -23 "$tmp/allowed" "$tmp/exported")
unprefixed=$(cat "$tmp/functions" "$tmp/workers" | grep -v '^crossmodal_' || true)
if [ -n "$extra" ]; then
	echo "exported but not on the allow-list:"; echo "$extra" | sed 's/^/  /'; status=1
fi
if [ -n "$missing" ]; then
	echo "named by $install_script but not exported:"; echo "$missing" | sed 's/^/  /'; status=1
fi
if [ -n "$unprefixed" ]; then
	echo "exported functions without the crossmodal_ prefix:"; echo "$unprefixed" | sed 's/^/  /'; status=1
fi
if [ $# -gt 0 ]; then
	symbols_of "$@" >"$tmp/updated"
	unknown=$(comm -23 "$tmp/updated" "$tmp/exported")
	if [ -n "$unknown" ]; then
		echo "named by an update script but not exported:"; echo "$unknown" | sed 's/^/  /'; status=1
	fi
fi
echo "$(wc -l <"$tmp/exported") exported symbols: $(wc -l <"$tmp/functions") SQL-callable functions," \
	"$(wc -l <"$tmp/workers") parallel worker entry points"
exit $status
