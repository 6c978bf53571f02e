# 081_encode_once.pl
#	crossmodal.encode_once on one node, with crossmodal preloaded (the hook
#	that lets Citus encode a query text once, on the coordinator; CI has no
#	Citus, so this shows the rewrite itself): a default-model encode_text or
#	encode_image of a constant or a parameter becomes an InitPlan.
#	- It is called once per execution (call counts of this transaction,
#	  pg_stat_xact_user_functions), not once per row, and a parallel query
#	  encodes it once, not once per process (DEBUG1 lines in the server log);
#	- an ORDER BY on it still uses the crossmodal_hnsw index (EXPLAIN);
#	- results equal those with the setting off, and the named-model form's;
#	- a generic plan of a prepared statement follows crossmodal.default_model
#	  from one execution to the next;
#	- over postgres_fdw partitions (a loopback server here), the ordering by
#	  the InitPlan's value is sent to the shards, with the rows a local table
#	  gives (with the setting off, every row is fetched);
#	- calls in INSERT and UPDATE, in a GROUP BY target, with a column or a
#	  volatile argument, and in a query without FROM are left as they are.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $m48 = 'tiny-clip-quickgelu-f32';
my $m40 = 'tiny-clip-gelu-p16-f16';
my $rows = 600;

my $node = PostgreSQL::Test::Cluster->new('encode_once');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'crossmodal'
crossmodal.model_path = '$golden'
crossmodal.default_model = '$m48'
track_functions = 'all'
max_worker_processes = 8
max_parallel_workers = 4
});
$node->start;
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE items (
	id integer PRIMARY KEY,
	caption text NOT NULL,
	image bytea,
	emb embedding(48) GENERATED ALWAYS AS (encode_text('$m48', caption)) STORED,
	image_emb embedding(48) GENERATED ALWAYS AS (encode_image('$m48', image)) STORED
);
INSERT INTO items (id, caption, image)
SELECT g, 'caption number ' || g,
       CASE WHEN g <= 10 THEN pg_read_binary_file('$golden/images/' ||
           (SELECT f FROM pg_ls_dir('$golden/images') f ORDER BY f OFFSET g - 1 LIMIT 1)) END
FROM generate_series(1, $rows) g;
CREATE INDEX items_emb_idx ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
ANALYZE items;
});

my $png = unpack('H*', slurp_file("$golden/images/tiny_7x5.png"));
my $index_order = 'SET enable_seqscan = off;';
my $seqscan = 'SET enable_indexscan = off; SET enable_bitmapscan = off; SET max_parallel_workers_per_gather = 0;';

# The calls of the default-model encoders made by one query, in one
# transaction (the counts of a transaction are visible to it before commit).
sub calls
{
	my ($setup, $query) = @_;
	my $out = $node->safe_psql('postgres',
		"BEGIN; $setup; $query; SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
		  . "WHERE funcid IN ('encode_text(text)'::regprocedure, 'encode_image(bytea)'::regprocedure); COMMIT;");
	return (split /\n/, $out)[-1];
}
sub result
{
	my ($setup, $query) = @_;
	return $node->safe_psql('postgres', "$setup; $query");
}

# 1. The plan: an InitPlan, and the index scan ordered by its value.
my $knn = "SELECT id FROM items ORDER BY emb <=> encode_text('caption number 42') LIMIT 5";
my $plan = result($index_order, "EXPLAIN (COSTS OFF) $knn");
like($plan, qr/InitPlan 1 \(returns \$0\)/, 'the call is an InitPlan');
like($plan, qr/Index Scan using items_emb_idx on items\n\s+Order By: \(emb <=> \$0\)/,
	'ORDER BY emb <=> the InitPlan uses the crossmodal_hnsw index');
unlike(result("SET crossmodal.encode_once = off; $index_order", "EXPLAIN (COSTS OFF) $knn"), qr/InitPlan/,
	'crossmodal.encode_once = off: the plan evaluates the call where it stands');
my $image_knn = "SELECT id FROM items ORDER BY image_emb <=> encode_image('\\x$png'::bytea) LIMIT 3";
like(result('', "EXPLAIN (COSTS OFF) $image_knn"), qr/InitPlan 1 \(returns \$0\).*image_emb <=> \$0/s,
	'encode_image of a constant: an InitPlan');

# 2. Once per execution, not once per row.
my $filter = "SELECT count(*) FROM items WHERE emb <=> encode_text('caption number 42') < 0.5";
is(calls($seqscan, $filter), 1, 'a filter of a sequential scan: one call');
is(calls("SET crossmodal.encode_once = off; $seqscan", $filter), $rows, "encode_once off: one call per row ($rows)");
is(calls($seqscan, "SELECT id, emb <=> encode_text('caption number 42') AS d FROM items ORDER BY d LIMIT 3"), 1,
	'a sort by distance without the index: one call');
is(calls($seqscan, "SELECT id FROM items ORDER BY image_emb <=> encode_image('\\x$png'::bytea) LIMIT 3"), 1,
	'encode_image of a constant, sorted without the index: one call');

# 3. The same results, with the setting on and off, and as the named form.
my $off = 'SET crossmodal.encode_once = off';
for my $query (
	$knn, $filter, $image_knn,
	"SELECT id, round((emb <=> encode_text('caption 7'))::numeric, 6) FROM items WHERE id % 50 = 0 ORDER BY id",
	"SELECT id FROM items WHERE id IN (SELECT id FROM items ORDER BY emb <=> encode_text('number 9') LIMIT 4) ORDER BY id",
	"WITH near AS (SELECT id FROM items ORDER BY emb <=> encode_text('caption 1') LIMIT 4) SELECT string_agg(id::text, ',' ORDER BY id) FROM near",
	"SELECT id % 3, count(*) FROM items WHERE emb <=> encode_text('caption 33') < 0.3 GROUP BY 1 ORDER BY 1",
	"SELECT CASE WHEN id > 0 THEN 'positive' ELSE (encode_text('never')::text) END FROM items WHERE id = 1")
{
	is(result('', $query), result($off, $query), "same result with encode_once on and off: $query");
}
is(calls('', "SELECT CASE WHEN id > 0 THEN 'positive' ELSE (encode_text('never')::text) END FROM items WHERE id = 1"),
	0, 'a call in a branch never taken is never evaluated');
is(result($index_order, $knn),
	result($index_order, "SELECT id FROM items ORDER BY emb <=> encode_text('$m48', 'caption number 42') LIMIT 5"),
	"the index's top-5 equals the named model's");

# 4. A prepared statement's generic plan: the InitPlan encodes the
# parameter at each execution, with the default model of that moment.
my $prepared = qq{
$index_order
SET plan_cache_mode = force_generic_plan;
PREPARE knn(text) AS SELECT id FROM items ORDER BY emb <=> encode_text(\$1) LIMIT 5;
PREPARE probe(text) AS SELECT encode_text(\$1)::text FROM items WHERE id = 1;
PREPARE probe_where(text) AS SELECT count(*) FROM items WHERE dims(encode_text(\$1)) = 40 AND id <= 3;
};
$plan = result($prepared, "EXPLAIN (COSTS OFF) EXECUTE knn('caption number 42')");
like($plan, qr/InitPlan 1 \(returns \$0\)/, 'generic plan: an InitPlan');
like($plan, qr/Order By: \(emb <=> \$0\)/, 'generic plan: the index scan ordered by it');
is( result($prepared, join(' ', map { "EXECUTE knn('caption number $_');" } 1 .. 7)),
	result('', join(' ', map { "SELECT id FROM items ORDER BY emb <=> encode_text('$m48', 'caption number $_') LIMIT 5;" } 1 .. 7)),
	"generic plan, 7 executions: the named model's rows");
is(calls("$prepared EXECUTE knn('a'); EXECUTE knn('b')", "EXECUTE knn('c')"), 3, 'generic plan: one call per execution');
is( result($prepared, "EXECUTE probe('a cat'); SET crossmodal.default_model = '$m40'; EXECUTE probe('a cat'); EXECUTE probe_where('a cat')"),
	result('', "SELECT encode_text('$m48', 'a cat')::text; SELECT encode_text('$m40', 'a cat')::text; SELECT 3"),
	'generic plan: crossmodal.default_model changed between executions is followed');

# 5. A parallel query encodes once (in the leader, which passes the value to
# its workers), not once in each process that scans rows.  The leader does
# not scan, and the filter keeps every row (a cosine distance is at most 2),
# so a worker that scanned shows rows.
my $parallel = 'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;'
  . ' SET max_parallel_workers_per_gather = 2; SET enable_indexscan = off; SET enable_bitmapscan = off;'
  . ' SET parallel_leader_participation = off;';
sub encodes_logged
{
	my ($setup, $text) = @_;
	my $at = -s $node->logfile;
	my $out = result("$parallel $setup SET log_min_messages = debug1",
		"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM items WHERE emb <=> encode_text('$text') < 3"
	);
	my $log = substr(slurp_file($node->logfile), $at);
	my $encodes = () = $log =~ /crossmodal: encoding 1 text with model/g;
	my ($scan) = $out =~ /(Parallel Seq Scan.*)/s;
	my $scanned = () = ($scan // '') =~ /Worker \d+:\s+actual rows=[1-9]/g;
	return ($encodes, $scanned);
}
my ($n, $scanned) = encodes_logged('', 'parallel once');
cmp_ok($scanned, '>=', 1, 'a parallel worker scanned rows');
is($n, 1, "parallel query ($scanned workers scanned rows): one encode");
($n, $scanned) = encodes_logged("$off;", 'parallel each');
is($n, $scanned, "encode_once off: one encode per worker that scanned rows ($scanned)");

# 6. postgres_fdw sends no STABLE function, but it sends a parameter: the
# InitPlan's value goes to the shards with the ordering.  (Partitions on a
# loopback server, the recipe of the README and of TAP 080.)
$node->safe_psql('postgres', 'CREATE DATABASE shard');
# (No index on the shards: their answers are exact, as the local one is
# with $seqscan.)
$node->safe_psql('shard',
	'CREATE EXTENSION crossmodal; CREATE TABLE items_0 (id integer, emb embedding(48)); CREATE TABLE items_1 (LIKE items_0);');
for my $r (0, 1)
{
	my $copy = $node->safe_psql('postgres', "COPY (SELECT id, emb FROM items WHERE id % 2 = $r) TO STDOUT");
	$node->safe_psql('shard', "COPY items_$r FROM STDIN;\n$copy\n\\.\n");
}
$node->safe_psql(
	'postgres', sprintf(
		q{
CREATE EXTENSION postgres_fdw;
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '%s', port '%d', dbname 'shard', extensions 'crossmodal');
CREATE USER MAPPING FOR CURRENT_USER SERVER loopback;
CREATE TABLE sharded (id integer, emb embedding(48)) PARTITION BY HASH (id);
CREATE FOREIGN TABLE sharded_0 PARTITION OF sharded FOR VALUES WITH (MODULUS 2, REMAINDER 0) SERVER loopback OPTIONS (table_name 'items_0');
CREATE FOREIGN TABLE sharded_1 PARTITION OF sharded FOR VALUES WITH (MODULUS 2, REMAINDER 1) SERVER loopback OPTIONS (table_name 'items_1');
}, $node->host, $node->port));
my $fdw_knn = "SELECT id FROM sharded ORDER BY emb <=> encode_text('caption number 42') LIMIT 5";
like(result('', "EXPLAIN (VERBOSE, COSTS OFF) $fdw_knn"),
	qr/Remote SQL: SELECT id, emb FROM public\.items_0 ORDER BY \(emb OPERATOR\(public\.<=>\) \$1::public\.embedding\)/,
	'postgres_fdw: each shard is sent the ordering by the InitPlan\'s value');
like(result($off, "EXPLAIN (VERBOSE, COSTS OFF) $fdw_knn"), qr/Remote SQL: SELECT id, emb FROM public\.items_0\n/,
	'postgres_fdw, encode_once off: every row is fetched');
is(result('', $fdw_knn), result($seqscan, "SELECT id FROM items ORDER BY emb <=> encode_text('caption number 42') LIMIT 5"),
	'postgres_fdw: the local table\'s rows');
is(calls('', $fdw_knn), 1, 'postgres_fdw: one call on the coordinator');

# 7. Left as they are.
my %untouched = (
	'INSERT ... VALUES' => "INSERT INTO items (id, caption) VALUES (-1, encode_text('x')::text)",
	'UPDATE' => "UPDATE items SET caption = encode_text('x')::text WHERE emb <=> encode_text('y') < 0",
	'a GROUP BY target' => "SELECT emb <=> encode_text('x') FROM items GROUP BY 1",
	'a column argument' => "SELECT id FROM items ORDER BY emb <=> encode_text(caption) LIMIT 1",
	'a volatile argument' => "SELECT id FROM items ORDER BY emb <=> encode_text(random()::text) LIMIT 1",
	'a query without FROM' => "SELECT encode_text('x')",
	'a named model' => "SELECT id FROM items ORDER BY emb <=> encode_text('$m48', 'x') LIMIT 1",
);
for my $what (sort keys %untouched)
{
	unlike(result('', "EXPLAIN (COSTS OFF) $untouched{$what}"), qr/InitPlan/, "not rewritten: $what");
}
like(
	result('', "EXPLAIN (COSTS OFF) SELECT emb <=> encode_text('x') FROM items WHERE emb <=> encode_text('y') < 0.5 GROUP BY 1"),
	qr/InitPlan 1.*Filter: \(\(emb <=> \$0\)/s,
	"a grouped query's WHERE is rewritten");

$node->stop;
done_testing();
