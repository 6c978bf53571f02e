# 064_hnsw_vacuum_passes.pl: VACUUM of a crossmodal_hnsw index holds its dead
# elements within maintenance_work_mem.  With the minimum (1MB) and most of
# 8,000 rows deleted it needs several passes (each repairs the links to its
# batch and frees it); afterwards every live row is still in the index and
# reachable through the graph, and the top-10 answers match the exact ones.
# The same with storage = int8, whose repairs choose links on int8 codes.
# Then a VACUUM with nothing to delete, whose search for elements that no
# link leads to must fit maintenance_work_mem.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hnsw_vacuum_passes');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 64MB\nautovacuum = off");
$node->start;

# The index's vacuum reports its passes at DEBUG1.
sub vacuum_passes
{
	my ($mem) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "SET maintenance_work_mem = '$mem'; SET client_min_messages = debug1; VACUUM items",
		stdout => \$out, stderr => \$err, on_error_die => 1);
	$err =~ /removed (\d+) dead elements from index "items_emb" in (\d+) pass/
	  or die "no pass count in VACUUM's messages:\n$err";
	return ($1, $2);
}

sub check_graph
{
	my ($what) = @_;
	my $live = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
	is($node->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_emb')"),
		$live, "$what: the index holds exactly the $live live rows");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM items WHERE ctid NOT IN (SELECT crossmodal_hnsw_heap_tids('items_emb'))"),
		'0', "$what: every live row is in the index");
	my $reach = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000; SET crossmodal.hnsw_scan_sweep = off;
SELECT count(DISTINCT id) FROM (SELECT id FROM items
	ORDER BY emb <-> (SELECT emb FROM items ORDER BY id LIMIT 1) LIMIT 1000000) s;
});
	is($reach, $live, "$what: every live row is reachable through the graph");
	my $r = $node->safe_psql('postgres', 'SELECT exact_match(50)');
	cmp_ok($r, '>=', 0.99, "$what: top-10 matches the exact answer ($r)");
}

# 40 clusters in 32 dimensions (deterministic), m = 16.
$node->safe_psql('postgres', 'CREATE EXTENSION crossmodal');
for my $form ('float4', 'int8')
{
$node->safe_psql('postgres', qq{
DROP TABLE IF EXISTS items, centers;
DROP FUNCTION IF EXISTS exact_match;
SELECT setseed(0.21);
CREATE TABLE centers AS
	SELECT c, (SELECT array_agg(random() - 0.5 ORDER BY j) FROM generate_series(1, 32) j WHERE c > 0) AS v
	FROM generate_series(1, 40) c;
CREATE TABLE items (id int PRIMARY KEY, emb embedding(32));
INSERT INTO items
	SELECT i, (SELECT array_agg(v[j] + 0.2 * (random() - 0.5) ORDER BY j)::real[]
		FROM centers, generate_series(1, 32) j WHERE c = 1 + i % 40)::embedding
	FROM generate_series(1, 8000) i;
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = $form);
CREATE FUNCTION exact_match(nq int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE q embedding; hits int := 0; approx int[]; exact int[];
BEGIN
	FOR i IN 1..nq LOOP
		SELECT emb INTO q FROM items ORDER BY id OFFSET (i * 37) % (SELECT count(*) FROM items) LIMIT 1;
		SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
		SET LOCAL crossmodal.hnsw_ef_search = 200;
		SELECT array_agg(id) INTO approx FROM (SELECT id FROM items ORDER BY emb <-> q LIMIT 10) s;
		SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
		SELECT array_agg(id) INTO exact FROM (SELECT id FROM items ORDER BY emb <-> q LIMIT 10) s;
		hits := hits + (SELECT count(*) FROM unnest(approx) a WHERE a = ANY (exact));
	END LOOP;
	RETURN hits::float8 / (nq * 10);
END \$\$;
});

# Nine rows in ten go, spread over every cluster and every page.
$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 10 <> 0');
my ($removed, $passes) = vacuum_passes('1MB');
is($removed, 7200, "$form: VACUUM at 1MB removed the 7,200 dead elements");
cmp_ok($passes, '>=', 2, "$form: VACUUM at 1MB needed several passes ($passes)");
check_graph("$form, after a multi-pass VACUUM");

# The same work with memory to spare is one pass.
$node->safe_psql('postgres', q{
INSERT INTO items
	SELECT i, (SELECT array_agg(v[j] + 0.2 * (random() - 0.5) ORDER BY j)::real[]
		FROM centers, generate_series(1, 32) j WHERE c = 1 + i % 40)::embedding
	FROM generate_series(8001, 12000) i;
DELETE FROM items WHERE id % 10 <> 0;
});
($removed, $passes) = vacuum_passes('256MB');
is($removed, 3600, "$form: VACUUM at 256MB removed the 3,600 new dead elements");
is($passes, 1, "$form: VACUUM at 256MB needed one pass");
check_graph("$form, after a one-pass VACUUM");
}

# With nothing to delete, VACUUM looks for every element that no link leads
# to, if the index's links fit into maintenance_work_mem.  40,000 elements'
# do not fit into 1MB: it says so, counts the index and changes nothing.
$node->safe_psql('postgres', q{
CREATE TABLE many (id int, emb embedding(4));
INSERT INTO many SELECT i, array[random(), random(), random(), random()]::real[]::embedding
	FROM generate_series(1, 40000) i;
CREATE INDEX many_emb ON many USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 4);
});
for my $case (['1MB', qr/did not look for elements of index "many_emb" that no link leads to/],
	['64MB', qr/linked back \d+ elements of index "many_emb" that no link led to/])
{
	my ($mem, $re) = @$case;
	my ($out, $err) = ('', '');
	$node->safe_psql('postgres', "UPDATE pg_class SET reltuples = -1 WHERE relname = 'many_emb'");
	$node->psql('postgres',
		"SET maintenance_work_mem = '$mem'; SET client_min_messages = debug1; VACUUM many",
		stdout => \$out, stderr => \$err, on_error_die => 1);
	like($err, $re, "VACUUM with nothing to delete at $mem");
	is($node->safe_psql('postgres', "SELECT reltuples FROM pg_class WHERE relname = 'many_emb'"),
		'40000', "it counted the index at $mem");
}

$node->stop;
done_testing();
