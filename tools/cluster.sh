# Throwaway PostgreSQL cluster helpers, sourced by the demo and the test runner.
# initdb refuses root, so the cluster runs as the postgres system user in a
# directory that user owns.  Sets PGHOST, PGPORT, PGUSER for the caller.

PG_BINDIR=$(pg_config --bindir)

as_postgres() {
	if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# cluster_start PORT [extra postgresql.conf lines...]
cluster_start() {
	local port=$1; shift
	CLUSTER_DIR=$(mktemp -d /tmp/crossmodal-cluster.XXXXXX)
	chown postgres: "$CLUSTER_DIR" 2>/dev/null || true
	as_postgres "$PG_BINDIR/initdb" -D "$CLUSTER_DIR/data" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 \
		|| { cat "$CLUSTER_DIR/initdb.log"; return 1; }
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$CLUSTER_DIR'"
		echo "port = $port"
		echo "fsync = off"
		for line in "$@"; do echo "$line"; done
	} | as_postgres tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null
	as_postgres "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w start >/dev/null \
		|| { cat "$CLUSTER_DIR/server.log"; return 1; }
	export PGHOST=$CLUSTER_DIR PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	trap cluster_stop EXIT
}

cluster_stop() {
	if [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR/data" ]; then
		as_postgres "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$CLUSTER_DIR"
	fi
	CLUSTER_DIR=
}
