# 062_hnsw_replica.pl: a streaming replica of crossmodal_hnsw indexes (float4,
# and the compact forms, which re-rank from the table; built, then inserted
# into, deleted from and vacuumed on the primary) returns the same rows in the
# same order as the primary.
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
CREATE TABLE compact (id int PRIMARY KEY, emb embedding(300));
INSERT INTO compact SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 300) WHERE i > 0)::embedding
	FROM generate_series(1, 1500) i;
CREATE INDEX compact_rq ON compact USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq);
CREATE INDEX compact_h ON compact USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = half);
CREATE INDEX compact_i8 ON compact USING crossmodal_hnsw (emb embedding_ip_ops) WITH (storage = int8);
INSERT INTO compact SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 300) WHERE i > 0)::embedding
	FROM generate_series(1501, 2000) i;
DELETE FROM compact WHERE id % 5 = 0;
VACUUM compact;
DELETE FROM compact WHERE id % 7 = 0;
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

my $compact_queries = q{
SET enable_seqscan = off;
SELECT string_agg(ids, ' ' ORDER BY q) FROM (
	SELECT q, (SELECT string_agg(id::text, ',') FROM (SELECT id FROM compact
		ORDER BY emb <=> (SELECT emb FROM compact WHERE id = q) LIMIT 10) s) ||
	'/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM compact
		ORDER BY emb <-> (SELECT emb FROM compact WHERE id = q) LIMIT 10) s) ||
	'/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM compact
		ORDER BY emb <#> (SELECT emb FROM compact WHERE id = q) LIMIT 10) s) AS ids
	FROM generate_series(1, 2000, 53) q WHERE q % 5 <> 0 AND q % 7 <> 0) t;
};
$on_primary = $primary->safe_psql('postgres', $compact_queries);
$on_standby = $standby->safe_psql('postgres', $compact_queries);
ok(length($on_primary) > 100, 'queries on the compact forms returned rows on the primary');
is($on_standby, $on_primary,
	'the standby returns the same rows in the same order from the rabitq, half and int8 indexes');
is($standby->safe_psql('postgres', q{
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM compact ORDER BY emb <=> (SELECT emb FROM compact WHERE id = 1) LIMIT 10) s
	WHERE id % 7 = 0;
}), '0', 'rows deleted on the primary (not vacuumed) are not returned by the standby');

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
