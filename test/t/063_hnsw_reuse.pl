# 063_hnsw_reuse.pl: VACUUM frees the space of deleted elements and inserts
# reuse it, so delete-all + reinsert cycles (and partial ones) do not grow a
# crossmodal_hnsw index.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hnsw_reuse');
$node->init;
$node->start;
my $rows = 2000;
my $fill = qq{
INSERT INTO items SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 64) WHERE i > 0)::embedding
	FROM generate_series(1, $rows) i;
};
$node->safe_psql('postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE items (id int, emb embedding(64));
$fill
CREATE INDEX items_emb ON items USING crossmodal_hnsw (emb embedding_l2_ops);
});
# The build packs pages tightly; the first round of inserts settles the size
# that inserts give, later rounds must stay there.
my $built = $node->safe_psql('postgres', "SELECT pg_relation_size('items_emb')");
my @sizes;
for my $round (1 .. 3)
{
	$node->safe_psql('postgres', 'DELETE FROM items');
	$node->safe_psql('postgres', 'VACUUM items');
	is($node->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_emb')"),
		'0', "round $round: VACUUM freed every element");
	$node->safe_psql('postgres', $fill);
	push @sizes, $node->safe_psql('postgres', "SELECT pg_relation_size('items_emb')");
}
note("built: $built bytes; after each delete-all + reinsert: @sizes");
cmp_ok($sizes[0], '<=', $built * 1.10, "first reinsert within 10% of the built size ($sizes[0] vs $built)");
cmp_ok($sizes[-1], '<=', $sizes[0] * 1.03, "later rounds within 3% ($sizes[-1] vs $sizes[0])");

# Half the rows at a time.
for my $round (1 .. 3)
{
	$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 2 = ' . ($round % 2));
	$node->safe_psql('postgres', 'VACUUM items');
	$node->safe_psql('postgres', qq{
INSERT INTO items SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 64) WHERE i > 0)::embedding
	FROM generate_series(1, $rows) i WHERE i % 2 = $round % 2;
});
}
my $half = $node->safe_psql('postgres', "SELECT pg_relation_size('items_emb')");
cmp_ok($half, '<=', $sizes[0] * 1.05, "half delete + reinsert rounds within 5% ($half vs $sizes[0])");

# Still a working index: every row stored and found.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM items WHERE ctid NOT IN (SELECT crossmodal_hnsw_heap_tids('items_emb'))"),
	'0', 'every row is in the index');
my $reach = $node->safe_psql('postgres', q{
SET enable_seqscan = off; SET crossmodal.hnsw_max_scan_tuples = 1000000; SET crossmodal.hnsw_scan_sweep = off;
SELECT count(*) FROM (SELECT id FROM items ORDER BY emb <-> (SELECT emb FROM items LIMIT 1) LIMIT 100000) s;
});
cmp_ok($reach, '>=', $rows - 2, "rows reachable through the graph ($reach of $rows)");

$node->stop;
done_testing();
