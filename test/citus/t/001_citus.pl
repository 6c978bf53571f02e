# 001_citus.pl
#	crossmodal on Citus (13.2.x, the last line for PostgreSQL 15): a
#	coordinator and two workers started by the test, Citus preloaded on each.
#	Citus is not in Debian and CI does not have it: `test/run.sh citus` runs
#	this test where Citus is installed into the PostgreSQL under test (it fails,
#	saying so, where it is not).  It checks the README's "Scaling out" recipe:
#	- CREATE EXTENSION crossmodal on the coordinator reaches the workers;
#	- a distributed table (8 shards) with generated encode_text / encode_image
#	  columns takes INSERT ... SELECT and COPY, each embedding computed on the
#	  worker that stores the row; a reference table of label texts is embedded
#	  on every node that holds it;
#	- CREATE INDEX ... USING crossmodal_hnsw builds one index per shard;
#	- a top-k is sent to every shard and merged, and equals a local table's at
#	  a high ef_search; the query text is encoded once, on the coordinator, in
#	  the forms the README recommends, the bare default-model form
#	  encode_text('...') included (crossmodal preloaded after Citus, whose
#	  planner then gets the call as a sub-select); with the defaults a LIMIT
#	  above ef_search, filtered or not, returns LIMIT rows;
#	- SET LOCAL with citus.propagate_set_commands = 'local', and ALTER DATABASE
#	  ... SET, reach the shards;
#	- avg(embedding), sum(embedding), the distance functions, image_labels and
#	  the binary protocol work on distributed tables;
#	- after a shard is moved to the other worker, its index moved with it; the
#	  move encoded a generated column's rows again, not a plain column's.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $m = 'tiny-clip-quickgelu-f32';

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
-e "$pkglibdir/citus.so"
  or BAIL_OUT("Citus is not installed in $pkglibdir: this test needs Citus 13.2 built for this PostgreSQL (README, Scaling out)");

my @nodes;
for my $name ('coordinator', 'worker1', 'worker2')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'citus,crossmodal'
citus.local_hostname = '@{[ $node->host ]}'
max_connections = 100
crossmodal.model_path = '$golden'
crossmodal.default_model = '$m'
track_functions = 'all'
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	push @nodes, $node;
}
my ($coord, @workers) = @nodes;
$coord->safe_psql('postgres', sprintf("SELECT citus_set_coordinator_host('%s', %d)", $coord->host, $coord->port));
$coord->safe_psql('postgres', sprintf("SELECT citus_add_node('%s', %d)", $_->host, $_->port)) for @workers;

# Function calls per node.  A session's counts are in once it has ended:
# settle() ends every other session (on the workers, Citus's cached
# connections).
sub calls
{
	my ($node, $func) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = '$func'");
}
sub settle
{
	for my $node (@nodes)
	{
		my $pids = $node->safe_psql('postgres',
			"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
		);
		next if $pids eq '';
		$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM unnest('{$pids}'::int[]) pid");
		$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid IN ($pids)")
		  or die 'sessions did not end';
	}
}
sub reset_counts
{
	settle();
	$_->safe_psql('postgres', 'SELECT pg_stat_reset()') for @nodes;
}
sub worker_calls
{
	my ($func) = @_;
	return calls($workers[0], $func) + calls($workers[1], $func);
}

# 1. The extension reaches the workers.
$coord->safe_psql('postgres', 'CREATE EXTENSION crossmodal');
is($_->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'crossmodal'"),
	'0.2.0', $_->name . ': CREATE EXTENSION reached it')
  for @workers;

# 2. A distributed table with generated embeddings, and a reference table.
$coord->safe_psql(
	'postgres', qq{
SET citus.shard_count = 8;
CREATE TABLE items (
	id integer PRIMARY KEY,
	category integer NOT NULL,
	caption text NOT NULL,
	image bytea,
	caption_emb embedding(48) GENERATED ALWAYS AS (encode_text('$m', caption)) STORED,
	image_emb embedding(48) GENERATED ALWAYS AS (encode_image('$m', image)) STORED
);
SELECT create_distributed_table('items', 'id');
CREATE TABLE labels (label text PRIMARY KEY, emb embedding(48) GENERATED ALWAYS AS (encode_text('$m', label)) STORED);
SELECT create_reference_table('labels');
CREATE TABLE items_local (LIKE items INCLUDING GENERATED);
});
reset_counts();
my $rows = 2000;
my $fill = qq{
INSERT INTO %s (id, category, caption, image)
SELECT g, g % 10, 'caption number ' || g,
       CASE WHEN g <= 10 THEN pg_read_binary_file('$golden/images/' ||
           (SELECT f FROM pg_ls_dir('$golden/images') f ORDER BY f OFFSET g - 1 LIMIT 1)) END
FROM generate_series(1, $rows - 100) g;
COPY %s (id, category, caption) FROM STDIN;
};
$fill .= join('', map { "$_\t" . ($_ % 10) . "\tcopied caption $_\n" } ($rows - 99) .. $rows) . "\\.\n";
$coord->safe_psql('postgres', sprintf($fill, 'items', 'items'));
settle();
is(calls($coord, 'encode_text') + calls($coord, 'encode_image'), 0,
	'the coordinator encoded nothing for the distributed table');
is(worker_calls('encode_text'), $rows, 'the workers encoded every caption once');
is(worker_calls('encode_image'), 10, 'the workers encoded the 10 images');
reset_counts();
$coord->safe_psql('postgres', "INSERT INTO labels (label) VALUES ('a cow'), ('a red apple'), ('a cat'), ('고양이')");
settle();
my $placements = $coord->safe_psql('postgres',
	"SELECT count(*) FROM citus_shards WHERE table_name = 'labels'::regclass");
is(calls($coord, 'encode_text') + worker_calls('encode_text'), 4 * $placements,
	"the reference table's labels were encoded on each of its $placements nodes");
is( $coord->safe_psql('postgres',
		"SELECT count(*) FROM items WHERE caption_emb IS NOT NULL AND (image_emb IS NOT NULL) = (image IS NOT NULL)"),
	$rows, 'every embedding is stored');
$coord->safe_psql('postgres', sprintf($fill, 'items_local', 'items_local'));
is( $coord->safe_psql('postgres',
		'SELECT count(*) FROM items d JOIN items_local l USING (id) WHERE d.caption_emb = l.caption_emb'
		  . ' AND (d.image_emb = l.image_emb OR (d.image_emb IS NULL AND l.image_emb IS NULL))'),
	$rows, 'the workers computed the embeddings a single node computes');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM labels WHERE emb IS NOT NULL'), '4', 'the reference table is embedded');

# 3. One index per shard.
$coord->safe_psql('postgres',
	'CREATE INDEX items_caption_idx ON items USING crossmodal_hnsw (caption_emb embedding_cosine_ops) WITH (m = 8, ef_construction = 32)');
# (Citus hides shards from pg_class unless told not to; the workers also
# hold the distributed table's own definition, with its index.)
my $show_shards = 'SET citus.override_table_visibility = off;';
my $indexes = 0;
$indexes += $_->safe_psql('postgres',
	"$show_shards SELECT count(*) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname ~ '^items_caption_idx_[0-9]+\$' AND a.amname = 'crossmodal_hnsw'")
  for @workers;
is($indexes, 8, 'CREATE INDEX built one crossmodal_hnsw index per shard');

# 4. Top-k: merged, equal to the local table's at a high ef_search (set with
# SET LOCAL, which Citus propagates to the shards with the setting below).
$coord->append_conf('postgresql.conf', "citus.propagate_set_commands = 'local'\n");
$coord->reload;
my $topk = sub {
	my ($table, $order, $k, $where) = @_;
	$where //= 'true';
	return "SELECT count(*) || ' ' || string_agg(id || ':' || round(d::numeric, 5), ',' ORDER BY d, id) FROM "
	  . "(SELECT id, $order AS d FROM $table WHERE $where ORDER BY $order, id LIMIT $k) s";
};
my $exact = 'BEGIN; SET LOCAL crossmodal.hnsw_ef_search = 1000; SET LOCAL enable_seqscan = off;';
for my $q ("caption_emb <=> encode_text('$m', 'caption number 42')", "caption_emb <=> encode_text('$m', 'copied caption 1950')")
{
	for my $k (5, 50)
	{
		my $distributed = $coord->safe_psql('postgres', "$exact " . $topk->('items', $q, $k) . '; COMMIT;');
		is($distributed, $coord->safe_psql('postgres', $topk->('items_local', $q, $k)), "top-$k by $q equals a single node's");
	}
}
my $plan = $coord->safe_psql('postgres',
	"$exact EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'cow') LIMIT 5; COMMIT;");
like($plan, qr/Task Count: 8/, 'the top-k is sent to the 8 shards');
like($plan, qr/Query: SELECT .*ORDER BY \(caption_emb OPERATOR\(public\.<=>\) '\[.*LIMIT '?5/, 'each shard gets the distance to a constant and the LIMIT');
like($plan, qr/Index Scan using items_caption_idx_\d+/, 'a shard answers with its index');
unlike($plan, qr/encode_text/, 'the query text was encoded on the coordinator');

# The query text is encoded once, on the coordinator, in the recommended
# forms, and in the bare default-model forms (crossmodal.encode_once, on by
# default: crossmodal's planner hook gives Citus the call as a sub-select).
my $image_file = "pg_read_binary_file('$golden/images/tiny_7x5.png')";
my %once = (
	'named model' => "SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'caption number 42') LIMIT 5",
	'default model, scalar subquery' =>
	  "SELECT id FROM items ORDER BY caption_emb <=> (SELECT encode_text('caption number 42')) LIMIT 5",
	'default model, image, scalar subquery' =>
	  "SELECT id FROM items ORDER BY image_emb <=> (SELECT encode_image($image_file)) LIMIT 5",
	'default model, EXECUTE argument' =>
	  "PREPARE knn(embedding) AS SELECT id FROM items ORDER BY caption_emb <=> \$1 LIMIT 5; EXECUTE knn(encode_text('caption number 42'))",
	'default model, bare' =>
	  "SELECT id FROM items ORDER BY caption_emb <=> encode_text('caption number 42') LIMIT 5",
	'default model, bare, filtered' =>
	  "SELECT id FROM items WHERE caption_emb <=> encode_text('caption number 42') < 0.5 AND category = 2 ORDER BY caption_emb <=> encode_text('caption number 42') LIMIT 5",
	'default model, bare, statement parameter' =>
	  "PREPARE knn_text(text) AS SELECT id FROM items ORDER BY caption_emb <=> encode_text(\$1) LIMIT 5; EXECUTE knn_text('caption number 42')",
	'default model, image, bare statement parameter' =>
	  "PREPARE knn_image(bytea) AS SELECT id FROM items ORDER BY image_emb <=> encode_image(\$1) LIMIT 5; EXECUTE knn_image($image_file)",
);
for my $form (sort keys %once)
{
	reset_counts();
	$coord->safe_psql('postgres', $once{$form});
	settle();
	# (two calls of one text in one query: the second is found in the
	# coordinator's encode cache; the count here is of calls)
	my $expected = $form =~ /filtered/ ? 2 : 1;
	is(calls($coord, 'encode_text') + calls($coord, 'encode_image'), $expected, "$form: encoded on the coordinator");
	is(worker_calls('encode_text') + worker_calls('encode_image'), 0, "$form: the workers encoded nothing");
}
my $bare = "SELECT id FROM items ORDER BY caption_emb <=> encode_text('caption number 42') LIMIT 5";
my $named = "SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'caption number 42') LIMIT 5";
is($coord->safe_psql('postgres', "$exact $bare; COMMIT;"), $coord->safe_psql('postgres', "$exact $named; COMMIT;"),
	'bare default-model form: the named form\'s rows');
$plan = $coord->safe_psql('postgres', "$exact EXPLAIN (VERBOSE, COSTS OFF) $bare; COMMIT;");
like($plan, qr/Task Count: 8/, 'bare default-model form: sent to the 8 shards');
like($plan, qr/Distributed Subplan .*\n.*\n\s+Output: encode_text\('caption number 42'::text\)/,
	'bare default-model form: encoded in a subplan on the coordinator');
like($plan, qr/Index Scan using items_caption_idx_\d+ .*\n.*\n\s+Order By: \(items\.caption_emb <=> \$0\)/,
	'bare default-model form: a shard answers with its index, ordered by the subplan\'s value');

# A query that Citus routes to one shard is sent there whole: the sub-select
# goes with it and that shard's worker evaluates it, once (with its own
# default_model).
reset_counts();
$coord->safe_psql('postgres', "SELECT id FROM items WHERE id = 42 AND caption_emb <=> encode_text('caption number 42') < 1");
settle();
is(calls($coord, 'encode_text'), 0, 'a query routed to one shard: the coordinator does not encode');
is(worker_calls('encode_text'), 1, 'a query routed to one shard: its worker encodes once');

# A prepared statement, past PostgreSQL's five custom plans: once per
# execution, with the session's crossmodal.default_model at that execution.
reset_counts();
my $executions = "PREPARE knn_text(text) AS SELECT id FROM items ORDER BY caption_emb <=> encode_text(\$1) LIMIT 5;"
  . join('', map { " EXECUTE knn_text('caption number $_');" } 1 .. 7);
my @bare_rows = split /\n/, $coord->safe_psql('postgres', $executions);
settle();
is(calls($coord, 'encode_text'), 7, 'prepared, 7 executions: 7 encodes on the coordinator');
is(worker_calls('encode_text'), 0, 'prepared, 7 executions: none on the workers');
my @named_rows = split /\n/, $coord->safe_psql('postgres',
	join('', map { "SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'caption number $_') LIMIT 5;" } 1 .. 7));
is_deeply(\@bare_rows, \@named_rows, 'prepared, 7 executions: the named form\'s rows');
my ($rc, $out, $err) = $coord->psql('postgres',
	"SET crossmodal.default_model = 'tiny-clip-gelu-p16-f16'; $executions");
like($err, qr/different embedding dimensions (48 and 40|40 and 48)/,
	"the coordinator's session setting is the model used (a 40-dimension model against 48-dimension rows)");

# crossmodal.encode_once = off, or crossmodal not preloaded: Citus does not
# evaluate a SELECT's STABLE functions on the coordinator, so every shard
# encodes the bare form (with the workers' crossmodal.default_model).
reset_counts();
$coord->safe_psql('postgres', "SET crossmodal.encode_once = off; $bare");
settle();
is(calls($coord, 'encode_text'), 0, 'encode_once off: the coordinator does not encode the bare form');
cmp_ok(worker_calls('encode_text'), '>=', 2, 'encode_once off: the shards encode it');

# 5. Settings: SET LOCAL reaches the shards (with the propagation set), a
# session SET does not; ALTER DATABASE ... SET is propagated to the workers.
my $on_shards = 'SELECT string_agg(DISTINCT current_setting(\'crossmodal.hnsw_ef_search\'), \',\') FROM items';
is($coord->safe_psql('postgres', "BEGIN; SET LOCAL crossmodal.hnsw_ef_search = 123; $on_shards; COMMIT;"),
	'123', 'SET LOCAL reaches the shards');
is($coord->safe_psql('postgres', "SET crossmodal.hnsw_ef_search = 124; $on_shards"), '40',
	'a session SET does not reach the shards');
$coord->safe_psql('postgres', 'ALTER DATABASE postgres SET crossmodal.hnsw_ef_search = 125');
settle();
is($coord->safe_psql('postgres', $on_shards), '125', 'ALTER DATABASE ... SET reaches the shards');
$coord->safe_psql('postgres', 'ALTER DATABASE postgres RESET crossmodal.hnsw_ef_search');
settle();

# With the defaults (ef_search 40 on every shard), LIMIT rows when they
# exist: above ef_search, and with a filter that rejects 9 rows in 10.  The
# shards' sequential scans are off (SET LOCAL) so that their indexes answer.
my $index_only = 'BEGIN; SET LOCAL enable_seqscan = off;';
for my $case ([ 100, 'true' ], [ 300, 'true' ], [ 60, 'category = 3' ])
{
	my ($k, $where) = @$case;
	my $order = "caption_emb <=> encode_text('$m', 'caption 7')";
	my $expected = $coord->safe_psql('postgres', "SELECT least($k, count(*)) FROM items WHERE $where");
	like($coord->safe_psql('postgres', "$index_only " . $topk->('items', $order, $k, $where) . '; COMMIT;'),
		qr/^$expected /, "defaults: LIMIT $k WHERE $where returns $expected rows");
	like( $coord->safe_psql('postgres',
			"$index_only EXPLAIN (COSTS OFF) SELECT id FROM items WHERE $where ORDER BY $order LIMIT $k; COMMIT;"),
		qr/Index Scan using items_caption_idx_\d+/, "defaults: LIMIT $k WHERE $where: the shards use their index");
}

# 6. Aggregates, distances, zero-shot labels, the binary protocol.
is( $coord->safe_psql('postgres',
		'SELECT (SELECT avg(caption_emb) FROM items) = (SELECT avg(caption_emb) FROM items_local)'
		  . ' AND (SELECT sum(caption_emb) FROM items) = (SELECT sum(caption_emb) FROM items_local)'),
	't', 'avg and sum over the distributed table equal a single node\'s');
like($coord->safe_psql('postgres', 'EXPLAIN (VERBOSE, COSTS OFF) SELECT avg(caption_emb) FROM items'),
	qr/worker_partial_agg/, 'avg is computed on the shards and combined on the coordinator');
is( $coord->safe_psql('postgres',
		'SELECT string_agg(category || \':\' || a::text, \',\' ORDER BY category) FROM (SELECT category, avg(caption_emb) a FROM items GROUP BY 1) s'),
	$coord->safe_psql('postgres',
		'SELECT string_agg(category || \':\' || a::text, \',\' ORDER BY category) FROM (SELECT category, avg(caption_emb) a FROM items_local GROUP BY 1) s'),
	'avg GROUP BY a column other than the distribution column equals a single node\'s');
my $distances = "SELECT string_agg(concat_ws(':', id, round(cosine_distance(caption_emb, q)::numeric, 5), round(l2_distance(caption_emb, q)::numeric, 5),"
  . " round(inner_product(caption_emb, q)::numeric, 5), round(l1_distance(caption_emb, q)::numeric, 5), round((caption_emb <#> q)::numeric, 5)), ',' ORDER BY id)"
  . " FROM %s, (SELECT encode_text('$m', 'number 5') AS q) c WHERE id % 97 = 0";
is($coord->safe_psql('postgres', sprintf($distances, 'items')), $coord->safe_psql('postgres', sprintf($distances, 'items_local')),
	'the distance functions give a single node\'s values');
my $labels = "SELECT string_agg(id || ':' || (SELECT label FROM image_labels('$m', image, ARRAY['a cow', 'a cat', 'a heart', 'a car'], 1)), ',' ORDER BY id) FROM %s WHERE image IS NOT NULL";
is($coord->safe_psql('postgres', sprintf($labels, 'items')), $coord->safe_psql('postgres', sprintf($labels, 'items_local')),
	'image_labels on the shards gives a single node\'s labels');
is( $coord->safe_psql('postgres',
		'SELECT string_agg(id || \':\' || l.label, \',\' ORDER BY id) FROM items i CROSS JOIN LATERAL '
		  . '(SELECT label FROM labels ORDER BY labels.emb <=> i.caption_emb LIMIT 1) l WHERE id <= 20'),
	$coord->safe_psql('postgres',
		'SELECT string_agg(id || \':\' || l.label, \',\' ORDER BY id) FROM items_local i CROSS JOIN LATERAL '
		  . '(SELECT label FROM labels ORDER BY labels.emb <=> i.caption_emb LIMIT 1) l WHERE id <= 20'),
	'a join with the reference table of labels');
my $md5 = 'SELECT md5(string_agg(caption_emb::text, \',\' ORDER BY id)) FROM items';
is($coord->safe_psql('postgres', "SET citus.enable_binary_protocol = on; $md5"),
	$coord->safe_psql('postgres', "SET citus.enable_binary_protocol = off; $md5"),
	'embeddings read from the workers in the binary protocol equal the text protocol\'s');

# 7. Moving a shard moves its index (re-balancing does this for every shard).
# PostgreSQL computes stored generated columns again when the shard's rows
# are copied to the new worker, so the move encodes the shard's rows again;
# a plain embedding column, filled by an UPDATE that runs on the shards,
# moves without encoding (the README's advice for tables that will move).
$coord->safe_psql(
	'postgres', qq{
CREATE TABLE notes (id integer PRIMARY KEY, caption text NOT NULL, emb embedding(48));
SELECT create_distributed_table('notes', 'id', colocate_with => 'items');
INSERT INTO notes (id, caption) SELECT id, caption FROM items;
});
reset_counts();
$coord->safe_psql('postgres', "UPDATE notes SET emb = encode_text('$m', caption) WHERE emb IS NULL");
settle();
is(calls($coord, 'encode_text'), 0, 'an UPDATE filling a plain column encodes nothing on the coordinator');
is(worker_calls('encode_text'), $rows, 'the shards encode their rows');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM notes n JOIN items_local l USING (id) WHERE n.emb = l.caption_emb'),
	$rows, 'the filled column equals the generated one');

my $shard = $coord->safe_psql('postgres',
	"SELECT shardid FROM citus_shards WHERE table_name = 'items'::regclass AND nodeport = " . $workers[0]->port . ' LIMIT 1');
my $moved_rows = $coord->safe_psql('postgres', "SELECT count(*) FROM items WHERE get_shard_id_for_distribution_column('items', id) = $shard");
reset_counts();
$coord->safe_psql('postgres',
	sprintf("SELECT citus_move_shard_placement(%d, '%s', %d, '%s', %d, shard_transfer_mode => 'block_writes')",
		$shard, $workers[0]->host, $workers[0]->port, $workers[1]->host, $workers[1]->port));
settle();
is(calls($workers[1], 'encode_text'), $moved_rows,
	"the move encoded the moved shard's $moved_rows captions again (generated column), and not the plain column's");
is($workers[1]->safe_psql('postgres', "$show_shards SELECT count(*) FROM pg_class WHERE relname = 'items_caption_idx_$shard'"),
	'1', 'the moved shard has its index on the new worker');
my $q = "caption_emb <=> encode_text('$m', 'caption number 7')";
is($coord->safe_psql('postgres', "$exact " . $topk->('items', $q, 20) . '; COMMIT;'),
	$coord->safe_psql('postgres', $topk->('items_local', $q, 20)), 'after the move the top-k equals a single node\'s');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM notes n JOIN items_local l USING (id) WHERE n.emb = l.caption_emb'),
	$rows, 'the plain column moved with its values');

$_->stop for @nodes;
done_testing();
