# 065_hnsw_entry_point.pl: a crossmodal_hnsw graph keeps a usable entry point
# when every element dies.  Four clients insert while VACUUM removes every
# older element (the entry point included); and after delete-all + VACUUM,
# concurrent inserts start a new graph.  No insert fails, and every row (all
# but the odd one, in the first case: see below) is reachable through an
# index scan.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('hnsw_entry_point');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 64MB\nautovacuum = off");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION crossmodal;
CREATE TABLE items (id serial PRIMARY KEY, emb embedding(24));
INSERT INTO items (emb)
	SELECT (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 2000) i;
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
});

my $script = $node->basedir . '/insert.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
INSERT INTO items (emb) SELECT (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24))::embedding;
});
my @pgbench = ('pgbench', '--no-vacuum', '--client=4', '--file=' . $script,
	'--port=' . $node->port, '--host=' . $node->host, 'postgres');

sub check_reachable
{
	my ($what, $tolerance) = @_;
	my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM items WHERE ctid NOT IN (SELECT crossmodal_hnsw_heap_tids('items_emb'))"),
		'0', "$what: every row is in the index ($rows rows)");
	# From two different query points: the scan walks the whole graph.
	for my $pick ('ORDER BY id LIMIT 1', 'ORDER BY id DESC LIMIT 1')
	{
		my $reach = $node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000; SET crossmodal.hnsw_scan_sweep = off;
SELECT count(DISTINCT id) FROM (SELECT id FROM items
	ORDER BY emb <=> (SELECT emb FROM items $pick) LIMIT 1000000) s;
});
		if ($tolerance)
		{
			cmp_ok($reach, '>=', $rows - $rows * $tolerance,
				"$what: rows reachable through the index ($reach of $rows, query $pick)");
		}
		else
		{
			is($reach, $rows, "$what: every row reachable through the index (query $pick)");
		}
		# With the default sweep, a scan run to the end returns every row.
		is($node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000;
SELECT count(DISTINCT id) FROM (SELECT id FROM items
	ORDER BY emb <=> (SELECT emb FROM items $pick) LIMIT 1000000) s;
}), $rows, "$what: an index scan run to the end returns every row (query $pick)");
	}
}

# Fill the index's free space, delete all, then VACUUM while the inserts
# run.  The VACUUM is slowed down (cost-based delay on every page), so that
# the inserts, started once it works on the indexes, happen while it works:
# they find only dead elements to link to, the entry point is dead, and as
# the index had no free space they go to new pages, beyond those the VACUUM
# found dead elements on.  (At a bounded
# rate: a thousand-odd rows stay, too few for HNSW's ordinary pruning to
# leave one unreachable.)
for my $round (1 .. 3)
{
	my ($out, $err) = ('', '');
	$node->safe_psql('postgres', q{
INSERT INTO items (emb)
	SELECT (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 2000) i;
DELETE FROM items;
});
	my $vacuum = $node->background_psql('postgres');
	$vacuum->query_until(qr/started/, q{
SET vacuum_cost_delay = '2ms';
SET vacuum_cost_limit = 1;
\echo started
VACUUM items;
});
	# Once VACUUM works on the indexes, every element it finds is dead.
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_progress_vacuum WHERE phase = 'vacuuming indexes'")
	  or die 'VACUUM did not reach its index phase';
	my $h = IPC::Run::start([ @pgbench, '--time=3', '--rate=300' ], '>', \$out, '2>', \$err);
	$vacuum->quit;
	ok($h->finish, "round $round: no insert failed")
	  or diag("pgbench stdout:\n$out\npgbench stderr:\n$err");
	like($out, qr/number of failed transactions: 0/, "round $round: pgbench reports no failed transaction");
	# Known gap: an insert that runs while VACUUM collects, from an entry
	# point it has already marked, may link only to dead elements; their
	# back-links to it come after VACUUM copied their lists, so afterwards no
	# live element may link to it.  Seen as at most one row of ~850, in
	# about a third of the runs, and 2 of 910 once (before the entry point was
	# handled, a third of the rows were lost): allow 1% through the links
	# alone.  With the sweep (check_reachable's last check) every row is
	# returned, exactly.
	check_reachable("round $round, right after the inserts", 0.01);
	$node->safe_psql('postgres', q{
VACUUM items;
INSERT INTO items (emb)
	SELECT (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 200) i;
});
	check_reachable("round $round, after one more VACUUM and 200 inserts", 0.01);
}

# Delete all, VACUUM, then concurrent inserts into the emptied graph.
$node->safe_psql('postgres', 'DELETE FROM items');
$node->safe_psql('postgres', 'VACUUM items');
is($node->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_emb')"),
	'0', 'VACUUM freed every element');
$node->command_ok([ @pgbench, '--transactions=150' ], 'concurrent inserts into the emptied graph');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), '600', '600 new rows');
check_reachable('inserts after delete-all and VACUUM');

$node->stop;
done_testing();
