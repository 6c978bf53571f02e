# 071_dump_restore.pl
#	pg_dump / pg_restore of a database that uses every kind of object of the
#	extension: embedding columns with and without a typmod, embedding arrays
#	and a domain, generated encode_text / encode_image columns, HNSW indexes of
#	every operator class and an expression index over an encoder, btree and
#	hash indexes, a view and a materialized view over the aggregates, and an
#	embedding column filled by crossmodal_embed_column.  The extension lives in
#	its own schema, off the restore's search_path, so that anything that
#	depends on search_path shows.  The restored database answers every query
#	exactly as the original (index scans at an ef_search above the row count
#	are exact), in the custom format restored with two jobs and in the plain
#	format restored by psql.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $m = 'tiny-clip-quickgelu-f32';
my $tmp = PostgreSQL::Test::Utils::tempdir;

my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
# Generated columns and expression indexes are computed again on restore,
# in the restoring sessions: the model path must be the server's.
$node->append_conf('postgresql.conf', "crossmodal.model_path = '$golden'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE source');
$node->safe_psql(
	'source', qq{
CREATE SCHEMA cm;
CREATE EXTENSION crossmodal SCHEMA cm;
SET search_path = public, cm;
CREATE DOMAIN unit3 AS embedding(3) CHECK (abs(norm(VALUE) - 1) < 1e-5);
CREATE TABLE items (
	id integer PRIMARY KEY,
	caption text NOT NULL,
	image bytea,
	v embedding(3) NOT NULL,
	u unit3,
	free embedding,
	several embedding[],
	filled embedding,
	caption_emb embedding(48) GENERATED ALWAYS AS (encode_text('$m', caption)) STORED,
	image_emb embedding GENERATED ALWAYS AS (encode_image('$m', image)) STORED
);
INSERT INTO items (id, caption, image, v, u, free, several)
SELECT g, 'caption number ' || g,
       CASE WHEN g <= 10 THEN pg_read_binary_file('$golden/images/' ||
           (SELECT f FROM pg_ls_dir('$golden/images') f ORDER BY f OFFSET g - 1 LIMIT 1)) END,
       ARRAY[sin(g), cos(1.3 * g), sin(0.7 * g + 1)],
       l2_normalize(ARRAY[1 + sin(g), 2, cos(g)]::embedding),
       CASE WHEN g % 3 = 0 THEN ARRAY[g, g + 1]::embedding ELSE ARRAY[g, 0, g % 7, 1]::embedding END,
       ARRAY[ARRAY[g, 1]::embedding, ARRAY[1, g]::embedding]
FROM generate_series(1, 150) g;
CREATE INDEX ON items USING crossmodal_hnsw (caption_emb embedding_cosine_ops) WITH (m = 8, ef_construction = 32);
CREATE INDEX ON items USING crossmodal_hnsw (image_emb embedding_cosine_ops);
CREATE INDEX ON items USING crossmodal_hnsw (v embedding_l2_ops);
CREATE INDEX ON items USING crossmodal_hnsw (v embedding_ip_ops);
CREATE INDEX items_expr ON items USING crossmodal_hnsw ((encode_text('$m', 'a photo of ' || caption)) embedding_cosine_ops);
CREATE INDEX ON items (free);
CREATE INDEX ON items USING hash (v);
CREATE VIEW nearest_to_first AS
	SELECT id, v <-> (SELECT v FROM items WHERE id = 1) AS d FROM items;
CREATE MATERIALIZED VIEW centroids AS
	SELECT id % 5 AS bucket, avg(caption_emb) AS c, sum(v) AS s FROM items GROUP BY 1;
});
# A procedure-filled column: CALL commits, so it runs on its own.
$node->safe_psql('source',
	"SET search_path = public, cm; CALL crossmodal_embed_column('items', 'caption', 'filled', '$m', batch_size => 40)");

my $settings = 'SET search_path = public, cm; SET enable_seqscan = off; SET crossmodal.hnsw_ef_search = 400;';
my %queries = (
	caption_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY caption_emb <=> (SELECT caption_emb FROM items WHERE id = 17) LIMIT 10) q',
	text_query => "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'caption number 42') LIMIT 5) q",
	image_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY image_emb <=> (SELECT image_emb FROM items WHERE id = 2) LIMIT 5) q',
	l2_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY v <-> \'[0.1,0.2,0.3]\' LIMIT 10) q',
	ip_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY v <#> \'[1,0,0]\' LIMIT 10) q',
	expr_knn => "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY encode_text('$m', 'a photo of ' || caption) <=> (SELECT caption_emb FROM items WHERE id = 3) LIMIT 5) q",
	btree => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items WHERE free > \'[100,0]\' ORDER BY free) q',
	hash => 'SELECT id FROM items WHERE v = (SELECT v FROM items WHERE id = 5)',
	values => "SELECT md5(string_agg(concat_ws('|', caption_emb, image_emb, v, u, free, several, filled), ',' ORDER BY id)) FROM items",
	filled => "SELECT count(*) FROM items WHERE filled <=> caption_emb < 1e-6",
	view => "SELECT string_agg(id::text, ',' ORDER BY d, id) FROM nearest_to_first WHERE d < 0.5",
	matview => "SELECT md5(string_agg(c::text || s::text, ',' ORDER BY bucket)) FROM centroids",
	domain_check => "SELECT count(*) FROM items WHERE u IS NOT NULL",
);
my %plans = (
	caption_knn => qr/Index Scan using items_caption_emb_idx/,
	image_knn => qr/Index Scan using items_image_emb_idx/,
	l2_knn => qr/Index Scan using items_v_idx /,
	ip_knn => qr/Index Scan using items_v_idx1/,
	expr_knn => qr/Index Scan using items_expr/,
	btree => qr/Index Scan (using|on) items_free_idx/,
);

my %source = map { $_ => $node->safe_psql('source', "$settings $queries{$_}") } keys %queries;
is($source{filled}, '150', 'the procedure filled its column');

# Compare a restored database with the source, query by query and plan by plan.
sub compare
{
	my ($db, $how) = @_;
	for my $q (sort keys %queries)
	{
		is($node->safe_psql($db, "$settings $queries{$q}"), $source{$q}, "$how: $q gives the same answer");
	}
	for my $q (sort keys %plans)
	{
		like($node->safe_psql($db, "$settings EXPLAIN (COSTS OFF) $queries{$q}"), $plans{$q}, "$how: $q uses its index");
	}
	is($node->safe_psql($db, "SELECT extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'crossmodal'"),
		"0.2.0|cm", "$how: the extension is in its schema");
	# The restored indexes take new rows.
	$node->safe_psql($db,
		"SET search_path = public, cm; INSERT INTO items (id, caption, v) VALUES (1000, 'a brand new caption', '[0.11,0.21,0.31]')");
	is( $node->safe_psql(
			$db,
			"$settings SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY caption_emb <=> encode_text('$m', 'a brand new caption') LIMIT 1) q"
		),
		'1000',
		"$how: a new row is indexed");
}

my $dump = "$tmp/source.dump";
$node->command_ok([ 'pg_dump', '--format=custom', '-f', $dump, '-d', $node->connstr('source') ], 'pg_dump, custom format');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '--jobs=2', '-d', $node->connstr('restored'), $dump ],
	'pg_restore with two jobs');
compare('restored', 'pg_restore');

my $plain = "$tmp/source.sql";
$node->command_ok([ 'pg_dump', '--format=plain', '-f', $plain, '-d', $node->connstr('source') ], 'pg_dump, plain format');
$node->safe_psql('postgres', 'CREATE DATABASE restored_plain');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $plain, '-d', $node->connstr('restored_plain') ],
	'the plain dump restores with psql');
compare('restored_plain', 'psql restore');

# The runs table belongs to the extension: its rows are not dumped.
is($node->safe_psql('restored', 'SELECT count(*) FROM cm.crossmodal_embed_runs'), '0', 'the runs of the source are not restored');

$node->stop;
done_testing();
