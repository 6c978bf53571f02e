# 060_hnsw_recall.pl: crossmodal_hnsw recall on 10k clustered rows after the
# build, after concurrent inserts from pgbench and after VACUUM; filtered
# queries return LIMIT rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hnsw_recall');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 128MB\nmaintenance_work_mem = 256MB");
$node->start;

# 50 cluster centres in 32 dimensions, 10,000 points around them (deterministic).
$node->safe_psql('postgres', q{
CREATE EXTENSION crossmodal;
SELECT setseed(0.11);
CREATE TABLE centers AS
	SELECT c, (SELECT array_agg(random() - 0.5 ORDER BY j) FROM generate_series(1, 32) j WHERE c > 0) AS v
	FROM generate_series(1, 50) c;
CREATE SEQUENCE ids START 1;
CREATE TABLE items (id int PRIMARY KEY DEFAULT nextval('ids'), cat int, emb embedding(32));
INSERT INTO items (cat, emb)
	SELECT i % 10, (SELECT array_agg(v[j] + 0.15 * (random() - 0.5) ORDER BY j)::real[]
		FROM centers, generate_series(1, 32) j WHERE c = 1 + i % 50)::embedding
	FROM generate_series(1, 10000) i;
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
CREATE FUNCTION recall(nq int, k int, seed float8) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE q embedding; hits int := 0; approx int[]; exact int[];
BEGIN
	PERFORM setseed(seed);
	FOR i IN 1..nq LOOP
		SELECT (SELECT array_agg(v[j] + 0.15 * (random() - 0.5) ORDER BY j)::real[]
			FROM centers, generate_series(1, 32) j WHERE c = 1 + (i * 7) % 50)::embedding INTO q;
		SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
		SELECT array_agg(id) INTO approx FROM (SELECT id FROM items ORDER BY emb <=> q LIMIT k) s;
		SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
		SELECT array_agg(id) INTO exact FROM (SELECT id FROM items ORDER BY emb <=> q LIMIT k) s;
		hits := hits + (SELECT count(*) FROM unnest(approx) a WHERE a = ANY (exact));
	END LOOP;
	RETURN hits::float8 / (nq * k);
END $$;
});

sub recall_at
{
	my ($ef, $seed) = @_;
	return $node->safe_psql('postgres',
		"SET crossmodal.hnsw_ef_search = $ef; SELECT recall(100, 10, $seed);");
}

# A parallel build first (two workers and the leader).
$node->safe_psql('postgres', q{
DROP INDEX items_emb;
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
});
my $r = recall_at(200, 0.4);
cmp_ok($r, '>=', 0.99, "recall\@10 after a parallel build at ef_search 200 ($r)");
is($node->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_emb')"),
	'10000', 'the parallel build stored every row');
$node->safe_psql('postgres', q{
DROP INDEX items_emb;
SET max_parallel_maintenance_workers = 0;
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
});

$r = recall_at(200, 0.5);
cmp_ok($r, '>=', 0.99, "recall\@10 after build at ef_search 200 ($r)");
my $r40 = recall_at(40, 0.5);
cmp_ok($r40, '>=', 0.90, "recall\@10 after build at ef_search 40 ($r40)");

# Plan: the index serves the top-k.
my $plan = $node->safe_psql('postgres',
	"EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 1) LIMIT 10");
like($plan, qr/Index Scan using items_emb/, 'top-10 uses the index');

# Concurrent inserts: 4 clients, 2,000 rows around the same centres.
$node->pgbench(
	'--no-vacuum --client=4 --transactions=500',
	0, [qr{processed: 2000/2000}], [qr{^$}],
	'concurrent inserts',
	{
		'060_insert' => q{
\set c random(1, 50)
INSERT INTO items (cat, emb)
	SELECT :c % 10, (SELECT array_agg(v[j] + 0.15 * (random() - 0.5) ORDER BY j)::real[]
		FROM centers, generate_series(1, 32) j WHERE c = :c)::embedding;
}
	});
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), '12000', '12,000 rows');
$r = recall_at(200, 0.6);
cmp_ok($r, '>=', 0.99, "recall\@10 after concurrent inserts at ef_search 200 ($r)");

# Every row is stored in the index, and (nearly) every one is reachable
# through the graph: HNSW's pruning can, rarely, leave an element with no
# incoming link.  That is the algorithm, not a race between inserters: a new
# element's only in-links are the back-links its neighbours take, and a
# neighbour whose list is full drops one member for it, which may be an
# older element that nothing else points to (hnswlib and pgvector behave
# the same).  Concurrent inserters cannot lose each other's
# links: each list is rewritten under its page's exclusive lock from what is
# on the page, and a re-selection made unlocked is written only if the list
# is unchanged (VACUUM's repair likewise puts links made meanwhile first).  Measured (m = 8, ef_construction = 32, 16 uniform dimensions,
# inserts into an empty index, trials of 3,000 and 5,000 rows): one client
# left 3 unreachable elements in 29,000, four clients 2 in 29,000, so
# inserting alone orphans as often as inserting concurrently.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM items WHERE ctid NOT IN (SELECT crossmodal_hnsw_heap_tids('items_emb'))"),
	'0', 'every row stored in the index after concurrent inserts');
my $reach = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000; SET crossmodal.hnsw_scan_sweep = off;
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 5) LIMIT 100000) s;
});
cmp_ok($reach, '>=', 12000 - 12, "rows reachable through the graph after concurrent inserts ($reach of 12000)");
is($node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000;
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 5) LIMIT 100000) s;
}), '12000', 'every row reachable through the index (with the sweep) after concurrent inserts');

# Delete about a fifth (spread over every cluster), VACUUM: dead rows gone
# from the index, recall holds.
$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 7 = 0 OR id % 11 = 0');
$node->safe_psql('postgres', 'VACUUM items');
$r = recall_at(200, 0.7);
cmp_ok($r, '>=', 0.99, "recall\@10 after delete and VACUUM at ef_search 200 ($r)");
$reach = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000; SET crossmodal.hnsw_scan_sweep = off;
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 7) LIMIT 100000) s;
});
my $live = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
cmp_ok($reach, '>=', $live - 12, "live rows reachable after VACUUM ($reach of $live)");
is($node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000;
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 7) LIMIT 100000) s;
}), $live, 'every live row reachable through the index (with the sweep) after VACUUM');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_emb')"),
	$live, 'VACUUM removed every dead element');
my $tuples = $node->safe_psql('postgres',
	"SELECT reltuples::int FROM pg_class WHERE relname = 'items_emb'");
is($tuples, $live, 'VACUUM counted the live index tuples');

# Filtered queries: 10 rows come back whenever 10 pass the filter.
for my $filter ('cat = 3', 'id % 100 = 7', 'id % 1000 = 1')
{
	my $want = $node->safe_psql('postgres', "SELECT least(10, count(*)) FROM items WHERE $filter");
	my $got = $node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET crossmodal.hnsw_ef_search = 10;
SELECT count(*) FROM (SELECT id FROM items WHERE $filter
	ORDER BY emb <=> (SELECT emb FROM items WHERE id = 1) LIMIT 10) s;
});
	is($got, $want, "filtered query ($filter) returns $want rows");
}

# Progress of a build in pg_stat_progress_create_index, seen from another session.
$node->safe_psql('postgres', q{
CREATE TABLE big AS SELECT i AS id, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 64) WHERE i > 0)::embedding(64) AS emb
	FROM generate_series(1, 20000) i;
});
my $bg = $node->background_psql('postgres');
$bg->query_safe("SET maintenance_work_mem = '256MB'");
$bg->query_until(qr/started/, q{
\echo started
CREATE INDEX big_emb ON big USING crossmodal_hnsw (emb embedding_l2_ops) WITH (ef_construction = 400);
});
ok($node->poll_query_until('postgres', q{
SELECT count(*) > 0 FROM pg_stat_progress_create_index
WHERE phase = 'building index: building graph' AND tuples_done > 0;
}), 'pg_stat_progress_create_index shows the graph being built, with tuples done');
$bg->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('big_emb')"),
	'20000', 'the watched build completed');

$node->stop;
done_testing();
