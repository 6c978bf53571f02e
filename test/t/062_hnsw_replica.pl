# 062_hnsw_replica.pl: a streaming replica of a crossmodal_hnsw index (built,
# then inserted into, deleted from and vacuumed on the primary) returns the
# same rows in the same order as the primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('hnsw_primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('hnsw_standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
CREATE EXTENSION crossmodal;
SELECT setseed(0.3);
CREATE TABLE items (id int PRIMARY KEY, emb embedding(24));
INSERT INTO items SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 3000) i;
CREATE INDEX items_cos ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
CREATE INDEX items_l2 ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 8, ef_construction = 40);
INSERT INTO items SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(3001, 4000) i;
DELETE FROM items WHERE id % 4 = 0;
VACUUM items;
INSERT INTO items SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(4001, 4500) i;
});
$primary->wait_for_catchup($standby);

my $queries = q{
SET enable_seqscan = off;
SET crossmodal.hnsw_ef_search = 20;
SELECT string_agg(ids, ' ' ORDER BY q) FROM (
	SELECT q, (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
		ORDER BY emb <=> (SELECT emb FROM items WHERE id = q) LIMIT 10) s) ||
	'/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
		ORDER BY emb <-> (SELECT emb FROM items WHERE id = q) LIMIT 10) s) AS ids
	FROM generate_series(1, 4500, 97) q WHERE q % 4 <> 0) t;
};
my $on_primary = $primary->safe_psql('postgres', $queries);
my $on_standby = $standby->safe_psql('postgres', $queries);
ok(length($on_primary) > 100, 'queries returned rows on the primary');
is($on_standby, $on_primary, 'the standby returns the same rows in the same order');

my $plan = $standby->safe_psql('postgres',
	"EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 1) LIMIT 10");
like($plan, qr/Index Scan using items_cos/, 'the standby uses the index');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM items WHERE ctid NOT IN (SELECT crossmodal_hnsw_heap_tids('items_l2'))"),
	'0', 'every row is in the standby\'s index');
is($standby->safe_psql('postgres', "SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_cos')"),
	$standby->safe_psql('postgres', 'SELECT count(*) FROM items'),
	'no dead element survives on the standby');

$standby->stop;
$primary->stop;
done_testing();
