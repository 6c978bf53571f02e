# 080_postgres_fdw_shards.pl
#	PostgreSQL's own sharding, as the README's "Scaling out" recipe builds it:
#	a hash-partitioned table on a coordinator whose partitions are
#	postgres_fdw foreign tables on two shard clusters (servers with
#	extensions 'crossmodal', so that our operators and functions are shipped).
#	- Rows inserted (INSERT and COPY) through the partitioned table are routed
#	  to the shards, and their generated encode_text / encode_image columns are
#	  computed there: the coordinator encodes nothing (function call counts of
#	  every node, from pg_stat_user_functions).
#	- A top-k over the partitioned table sends the distance ordering to each
#	  shard (EXPLAIN VERBOSE: the remote SQL orders by <=>) and merges the
#	  shards' streams; the per-shard form of the recipe sends the LIMIT too.
#	  Both equal a local table holding the same rows, for text and image
#	  queries, and with the defaults return LIMIT rows.
#	- The query text is encoded once, on the coordinator, in every form the
#	  README recommends; the shards encode nothing for a query.
#	- A setting given in the server's options reaches the shards' sessions.
#	- A shard that is down makes queries and inserts fail with a connection
#	  error (SQLSTATE 08001), never a partial answer, and nothing is written.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $m = 'tiny-clip-quickgelu-f32';
my $rows = 300;

# Every node finds the same model files (the recipe's "model files on every
# node") and counts the calls of every function.
my @shards;
for my $i (1, 2)
{
	my $shard = PostgreSQL::Test::Cluster->new("shard$i");
	$shard->init;
	# (log_statement: the remote queries that postgres_fdw sends are checked below)
	$shard->append_conf('postgresql.conf',
		"crossmodal.model_path = '$golden'\ntrack_functions = 'all'\nlog_statement = 'all'\n");
	$shard->start;
	$shard->safe_psql(
		'postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE items (
	id integer PRIMARY KEY,
	caption text NOT NULL,
	image bytea,
	caption_emb embedding(48) GENERATED ALWAYS AS (encode_text('$m', caption)) STORED,
	image_emb embedding(48) GENERATED ALWAYS AS (encode_image('$m', image)) STORED
);
CREATE INDEX ON items USING crossmodal_hnsw (caption_emb embedding_cosine_ops) WITH (m = 8, ef_construction = 32);
CREATE INDEX ON items USING crossmodal_hnsw (image_emb embedding_cosine_ops);
CREATE VIEW session_settings AS SELECT current_setting('crossmodal.hnsw_ef_search') AS ef_search;
});
	push @shards, $shard;
}

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
$coord->init;
$coord->append_conf('postgresql.conf',
	"crossmodal.model_path = '$golden'\ncrossmodal.default_model = '$m'\ntrack_functions = 'all'\n");
$coord->start;

# The coordinator's embedding columns are generated too, as NULL: postgres_fdw
# sends DEFAULT for a generated column, so the shard computes its own
# expression; a real expression here would be computed (and thrown away) on
# the coordinator first.
my $servers = '';
for my $i (1, 2)
{
	my $s = $shards[ $i - 1 ];
	my ($host, $port) = ($s->host, $s->port);
	$servers .= qq{
CREATE SERVER shard$i FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$host', port '$port', dbname 'postgres', extensions 'crossmodal',
	         options '-c crossmodal.hnsw_ef_search=200');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard$i;
CREATE FOREIGN TABLE items_$i PARTITION OF items FOR VALUES WITH (MODULUS 2, REMAINDER @{[ $i - 1 ]})
	SERVER shard$i OPTIONS (table_name 'items');
CREATE FOREIGN TABLE items_${i}_topk (id integer, caption_emb embedding(48))
	SERVER shard$i OPTIONS (table_name 'items', use_remote_estimate 'true');
CREATE FOREIGN TABLE shard${i}_settings (ef_search text) SERVER shard$i OPTIONS (table_name 'session_settings');
};
}
$coord->safe_psql(
	'postgres', qq{
CREATE EXTENSION crossmodal;
CREATE EXTENSION postgres_fdw;
CREATE TABLE items (
	id integer NOT NULL,
	caption text NOT NULL,
	image bytea,
	caption_emb embedding(48) GENERATED ALWAYS AS (NULL) STORED,
	image_emb embedding(48) GENERATED ALWAYS AS (NULL) STORED
) PARTITION BY HASH (id);
$servers
-- The same rows in one local table, encoded here: the reference answers.
CREATE TABLE items_local (
	id integer PRIMARY KEY,
	caption text NOT NULL,
	image bytea,
	caption_emb embedding(48) GENERATED ALWAYS AS (encode_text('$m', caption)) STORED,
	image_emb embedding(48) GENERATED ALWAYS AS (encode_image('$m', image)) STORED
);
-- The per-shard top-k of the README: one subquery per shard, each with its
-- own LIMIT, which postgres_fdw sends to the shard (through foreign tables
-- with use_remote_estimate, which shows it that the LIMIT is cheap there).
CREATE FUNCTION items_nearest(q embedding, k integer)
RETURNS TABLE (id integer, distance double precision)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS \$\$
BEGIN
	RETURN QUERY SELECT s.id, s.d FROM (
		(SELECT i.id, i.caption_emb <=> q AS d FROM items_1_topk i ORDER BY i.caption_emb <=> q LIMIT k)
		UNION ALL
		(SELECT i.id, i.caption_emb <=> q AS d FROM items_2_topk i ORDER BY i.caption_emb <=> q LIMIT k)
	) s ORDER BY s.d LIMIT k;
END
\$\$;
});

# Function call counts, per node: the sessions that made calls must have
# ended (postgres_fdw's connections on the shards) or flushed their counts.
sub calls
{
	my ($node, $func) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = '$func'");
}
sub reset_counts
{
	$coord->safe_psql('postgres', 'SELECT postgres_fdw_disconnect_all()');
	$_->safe_psql('postgres', 'SELECT pg_stat_reset()') for ($coord, @shards);
}
# Waits until the shards' sessions are gone, so that their counts are in.
sub settle
{
	$coord->safe_psql('postgres', 'SELECT postgres_fdw_disconnect_all()');
	for my $s (@shards)
	{
		$s->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
		) or die 'a shard session did not end';
	}
}

# 1. Inserts and COPY through the partitioned table.
reset_counts();
my $insert = qq{
INSERT INTO %s (id, caption, image)
SELECT g, 'caption number ' || g,
       CASE WHEN g <= 10 THEN pg_read_binary_file('$golden/images/' ||
           (SELECT f FROM pg_ls_dir('$golden/images') f ORDER BY f OFFSET g - 1 LIMIT 1)) END
FROM generate_series(1, $rows - 20) g;
COPY %s (id, caption) FROM STDIN;
};
$insert .= join('', map { "$_\tcopied caption $_\n" } ($rows - 19) .. $rows) . "\\.\n";
$coord->safe_psql('postgres', sprintf($insert, 'items', 'items') . 'SELECT pg_stat_force_next_flush();');
settle();
is(calls($coord, 'encode_text') + calls($coord, 'encode_image'), 0, 'the coordinator encoded nothing for the inserts');
my @text_calls = map { calls($_, 'encode_text') } @shards;
my @rows_on = map { $_->safe_psql('postgres', 'SELECT count(*) FROM items') } @shards;
is($rows_on[0] + $rows_on[1], $rows, 'every row reached a shard');
ok($rows_on[0] > 0 && $rows_on[1] > 0, "both shards hold rows ($rows_on[0] and $rows_on[1])");
is_deeply(\@text_calls, \@rows_on, 'each shard encoded the captions of its own rows');
is(calls($shards[0], 'encode_image') + calls($shards[1], 'encode_image'), 10, 'the shards encoded the 10 images');
is( $coord->safe_psql('postgres',
		'SELECT count(*) FROM items WHERE caption_emb IS NOT NULL AND (image_emb IS NOT NULL) = (image IS NOT NULL)'),
	$rows,
	'every embedding is stored on the shards');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM items_1') + 0, $rows_on[0], 'routed by the hash of id');

$coord->safe_psql('postgres', sprintf($insert, 'items_local', 'items_local'));
is( $coord->safe_psql('postgres',
		'SELECT count(*) FROM items d JOIN items_local l USING (id) WHERE d.caption_emb = l.caption_emb'
		  . ' AND (d.image_emb = l.image_emb OR (d.image_emb IS NULL AND l.image_emb IS NULL))'),
	$rows,
	'the shards computed the embeddings the coordinator computes');

# 2. Top-k: the same answer as the local table (the shards' ef_search, 200
# from the server options, is above their row counts: their scans are exact),
# the ordering sent to the shards.  Only 10 rows have an image.
my %queries = (
	text => [ "caption_emb <=> encode_text('$m', 'caption number 42')", 5, 60 ],
	copied => [ "caption_emb <=> encode_text('$m', 'copied caption 290')", 5, 60 ],
	l2 => [ "caption_emb <-> encode_text('$m', 'number 7')", 5, 60 ],
	image => [ 'image_emb <=> (SELECT image_emb FROM items_local WHERE id = 3)', 5, 10 ],
);
for my $q (sort keys %queries)
{
	my ($order, @ks) = @{ $queries{$q} };
	for my $k (@ks)
	{
		my $sql = "SELECT count(*) || ' ' || string_agg(id || ':' || round(d::numeric, 5), ',' ORDER BY d, id) FROM "
		  . "(SELECT id, $order AS d FROM %s WHERE $order IS NOT NULL ORDER BY $order, id LIMIT $k) s";
		my $local = $coord->safe_psql('postgres', sprintf($sql, 'items_local'));
		my $sharded = $coord->safe_psql('postgres', sprintf($sql, 'items'));
		like($sharded, qr/^$k /, "$q, LIMIT $k: LIMIT rows");
		is($sharded, $local, "$q, LIMIT $k: the shards' merged top-k equals the local table's");
	}
}
my $text_order = $queries{text}[0];
# Over the partitioned table each shard gets the ordering by the distance to
# a constant (the query text was encoded while planning, on the coordinator)
# and the shards' ordered rows are merged; PostgreSQL 15 sends no LIMIT to a
# partition: the Limit above stops reading the shards' cursors.
my $plan = $coord->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY $text_order LIMIT 5");
like($plan, qr/Merge Append/, 'partitioned: the shards\' ordered rows are merged');
my @remote = $plan =~ /Remote SQL: (.*)/g;
is(scalar(@remote), 2, 'partitioned: one remote query per shard');
like($_, qr/ORDER BY \(caption_emb OPERATOR\(public\.<=>\) '\[/, 'partitioned: the shard orders by the distance to a constant')
  for @remote;
unlike($plan, qr/encode_text/, 'partitioned: no encoder in the plan');

# The per-shard form sends the distance ordering and the LIMIT to each shard.
my $per_shard = "SELECT * FROM ((SELECT id, caption_emb <=> q AS d FROM items_1_topk ORDER BY caption_emb <=> q LIMIT 5) "
  . "UNION ALL (SELECT id, caption_emb <=> q AS d FROM items_2_topk ORDER BY caption_emb <=> q LIMIT 5)) s ORDER BY d LIMIT 5";
(my $with_const = $per_shard) =~ s/\bq\b/encode_text('$m', 'caption number 42')/g;
$plan = $coord->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) $with_const");
@remote = $plan =~ /Remote SQL: (.*)/g;
is(scalar(@remote), 2, 'per shard: one remote query per shard');
like($_, qr/ORDER BY \(caption_emb OPERATOR\(public\.<=>\) '\[.*\bLIMIT 5::bigint$/, 'per shard: the distance and the LIMIT are sent')
  for @remote;
# And so does items_nearest(), every time (not only while its plans are custom
# by default): the shards' logs show the cursors it opened.
my @log_at = map { -s $_->logfile } @shards;
my $nearest = $coord->safe_psql('postgres',
	join('', map { "SELECT string_agg(id::text, ',' ORDER BY distance, id) FROM items_nearest(encode_text('$m', 'caption number 42'), 5);" } 1 .. 8));
my @answers = split /\n/, $nearest;
is(scalar(@answers), 8, 'per shard: items_nearest() ran 8 times');
for my $i (0, 1)
{
	my $log = substr(PostgreSQL::Test::Utils::slurp_file($shards[$i]->logfile), $log_at[$i]);
	my $sent = () = $log =~ /CURSOR FOR\s+SELECT id, caption_emb FROM public\.items ORDER BY \(caption_emb OPERATOR\(public\.<=>\) '\[[^\n]*\bLIMIT 5::bigint/g;
	is($sent, 8, "per shard: shard @{[ $i + 1 ]} got the distance and the LIMIT in all 8 calls");
}
is( $answers[7],
	$coord->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY d, id) FROM (SELECT id, $text_order AS d FROM items_local ORDER BY d, id LIMIT 5) s"
	),
	'per shard: items_nearest() equals the local table');
is( $coord->safe_psql('postgres',
		"SELECT count(*) FROM items_nearest(encode_text('$m', 'caption number 42'), 60)"),
	'60', 'per shard: LIMIT 60 returns 60 rows');

# 3. The query text is encoded once, on the coordinator.
my %encode_once = (
	'named model' => "SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'caption number 42') LIMIT 5",
	'default model, scalar subquery' =>
	  "SELECT id FROM items ORDER BY caption_emb <=> (SELECT encode_text('caption number 42')) LIMIT 5",
	'per shard, named model' => "SELECT * FROM items_nearest(encode_text('$m', 'caption number 42'), 5)",
	'per shard, default model' => "SELECT * FROM items_nearest(encode_text('caption number 42'), 5)",
);
for my $form (sort keys %encode_once)
{
	reset_counts();
	my $ids = $coord->safe_psql('postgres', "$encode_once{$form}; SELECT pg_stat_force_next_flush();");
	settle();
	is(calls($coord, 'encode_text'), 1, "$form: the coordinator encoded the query text once");
	is(calls($shards[0], 'encode_text') + calls($shards[1], 'encode_text'), 0, "$form: the shards encoded nothing");
	next unless $form =~ /per shard/;
	my $remote_distances = calls($shards[0], 'cosine_distance') + calls($shards[1], 'cosine_distance');
	ok($remote_distances > 0, "$form: the shards computed the distances ($remote_distances)");
}

# 4. A setting in the server's options reaches the shards' sessions (read
# there after a query, which loads the library, in the same connections).
my $settings_after_query = "SELECT count(*) FROM items_nearest(encode_text('$m', 'caption number 42'), 5);"
  . 'SELECT ef_search FROM shard1_settings UNION ALL SELECT ef_search FROM shard2_settings';
is($coord->safe_psql('postgres', $settings_after_query),
	"5\n200\n200", 'crossmodal.hnsw_ef_search from the server options is in force on both shards');

# With the defaults (ef_search 40 on the shards), a LIMIT above ef_search
# still returns LIMIT rows: the shards' index scans go on past ef_search.
# (Sequential scans are off on the shards so that their indexes answer even
# at this size; the index counters show that they did.)
$coord->safe_psql('postgres',
	"ALTER SERVER shard1 OPTIONS (SET options '-c enable_seqscan=off');"
	  . "ALTER SERVER shard2 OPTIONS (SET options '-c enable_seqscan=off');");
reset_counts();
is($coord->safe_psql('postgres', $settings_after_query),
	"5\n40\n40", 'without the setting the shards use the default ef_search');
for my $k (40, 120)
{
	is( $coord->safe_psql('postgres',
			"SELECT count(*) FROM (SELECT id FROM items ORDER BY $text_order LIMIT $k) s"),
		$k, "defaults: LIMIT $k over the partitioned table returns $k rows");
	is( $coord->safe_psql('postgres',
			"SELECT count(*) FROM items_nearest(encode_text('$m', 'caption number 42'), $k)"),
		$k, "defaults: the per-shard form with LIMIT $k returns $k rows");
}
settle();
for my $i (1, 2)
{
	my $scans = $shards[ $i - 1 ]->safe_psql('postgres',
		"SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_caption_emb_idx'");
	ok($scans >= 2, "shard $i answered with its HNSW index ($scans scans)");
}

# 5. A shard down: an error, not a partial answer, and nothing written.
$shards[1]->stop;
my ($ret, $out, $err) = $coord->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT id FROM items ORDER BY $text_order LIMIT 5");
isnt($ret, 0, 'a top-k with a shard down fails');
like($err, qr/ERROR:  08001: could not connect to server "shard2"/, 'with a connection error naming the shard');
is($out, '', 'and returns no rows');
($ret, $out, $err) = $coord->psql('postgres', 'SELECT count(*) FROM items');
like($err, qr/could not connect to server "shard2"/, 'a count with a shard down fails');
($ret, $out, $err) = $coord->psql('postgres',
	"INSERT INTO items (id, caption) SELECT g, 'late ' || g FROM generate_series(1001, 1010) g");
like($err, qr/could not connect to server "shard2"/, 'an insert with a shard down fails');
is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM items'), $rows_on[0],
	'and writes nothing on the shard that is up');
($ret, $out, $err) = $coord->psql('postgres', "SELECT * FROM items_nearest(encode_text('$m', 'caption number 42'), 5)");
like($err, qr/could not connect to server "shard2"/, 'the per-shard form fails too');
$shards[1]->start;
is($coord->safe_psql('postgres', 'SELECT count(*) FROM items'), $rows, 'back up: every row is there');

$coord->stop;
$_->stop for @shards;
done_testing();
