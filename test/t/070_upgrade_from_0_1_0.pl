# 070_upgrade_from_0_1_0.pl
#	ALTER EXTENSION crossmodal UPDATE from the released 0.1.0, as a user meets
#	it: 0.1.0 is built from this repository's history (the commit tagged
#	v0.1.0) and installed into a private copy of the PostgreSQL installation; a
#	database there gets data, generated encode columns and every kind of index;
#	then 0.2.0's files replace 0.1.0's, as a package upgrade does, and the
#	extension is updated.  Afterwards the data, the generated columns and the
#	indexes give the same answers and keep working (inserts, VACUUM, REINDEX),
#	and the catalog of the updated extension is the catalog of a fresh 0.2.0
#	install (pg_dump --binary-upgrade lists every member object with its full
#	definition), which catches any change missing from the update script.
#
#	The git repository is $CROSSMODAL_SOURCE_DIR (test/run.sh sets it to a
#	clone), or else the current directory; its history must hold the 0.1.0
#	commit.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(move);
use File::Path qw(make_path remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $v010_commit = 'd104d86ba979becc81d7dbe4933286ecaa5095a1';    # tag v0.1.0
my $src = abs_path($ENV{CROSSMODAL_SOURCE_DIR} // '.');
my $golden = abs_path('test/golden');
my $model = 'tiny-clip-quickgelu-f32';
my $tmp = PostgreSQL::Test::Utils::tempdir;

# Run a shell command, its output to a log; die with the log's tail on failure.
sub shell
{
	my ($what, $cmd) = @_;
	my $log = "$tmp/$what.log";
	$log =~ s/ /_/g;
	if (system("($cmd) >'$log' 2>&1") != 0)
	{
		my $tail = `tail -n 30 '$log'`;
		die "$what failed:\n$tail";
	}
}

# 1. The released sources and a private installation.
my $git = "git -c safe.directory='*' -C '$src'";
system("$git cat-file -e '$v010_commit^{commit}' 2>/dev/null") == 0
  or die "the 0.1.0 commit $v010_commit is not in the history of $src (a shallow clone?): "
  . 'this test needs it; set CROSSMODAL_SOURCE_DIR to a full clone';
make_path("$tmp/src-0.1.0");
shell('archive 0.1.0', "$git archive '$v010_commit' | tar -x -C '$tmp/src-0.1.0'");

my $bindir = `bash tools/private-pg.sh '$tmp/pg'`;
chomp $bindir;
-x "$bindir/pg_config" or die "no private installation at $bindir";
my $sharedir = `'$bindir/pg_config' --sharedir`;
my $pkglibdir = `'$bindir/pg_config' --pkglibdir`;
chomp($sharedir, $pkglibdir);

# The copy holds the installed 0.2.0: set its files aside (the "package" of
# 0.2.0), then install 0.1.0 in their place.
my @ours = (glob("$sharedir/extension/crossmodal*"), "$pkglibdir/crossmodal.so", glob("$pkglibdir/bitcode/crossmodal*"));
ok(-f "$pkglibdir/crossmodal.so" && -f "$sharedir/extension/crossmodal--0.1.0--0.2.0.sql",
	'0.2.0 with its update script is installed');
make_path("$tmp/v0.2.0");
my %saved;
for my $f (@ours)
{
	next unless -e $f;
	my $to = "$tmp/v0.2.0/" . ($f =~ s{^/}{}r =~ s{/}{%}gr);
	move($f, $to) or die "move $f: $!";
	$saved{$f} = $to;
}
shell('build 0.1.0',
	"make -C '$tmp/src-0.1.0' -s -j2 PG_CONFIG='$bindir/pg_config' with_llvm=no && "
	  . "make -C '$tmp/src-0.1.0' -s install PG_CONFIG='$bindir/pg_config' with_llvm=no");
ok(-f "$sharedir/extension/crossmodal--0.1.0.sql", '0.1.0 is built from history and installed');

# 2. A database of 0.1.0 with data, generated columns and indexes.
my $node = PostgreSQL::Test::Cluster->new('upgrade', install_path => dirname($bindir));
$node->init;
$node->append_conf('postgresql.conf', "crossmodal.model_path = '$golden'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE app; CREATE DATABASE catalog_updated');
$node->safe_psql('catalog_updated', 'CREATE EXTENSION crossmodal');
$node->safe_psql(
	'app', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE items (
	id integer PRIMARY KEY,
	caption text,
	image bytea,
	v embedding(3),
	caption_emb embedding GENERATED ALWAYS AS (encode_text('$model', caption)) STORED,
	image_emb embedding GENERATED ALWAYS AS (encode_image('$model', image)) STORED
);
INSERT INTO items (id, caption, image, v)
SELECT g, 'caption number ' || g,
       CASE WHEN g <= 10 THEN pg_read_binary_file('$golden/images/' ||
           (SELECT f FROM pg_ls_dir('$golden/images') f ORDER BY f OFFSET g - 1 LIMIT 1)) END,
       ARRAY[sin(g), cos(1.3 * g), sin(0.7 * g + 1)]
FROM generate_series(1, 200) g;
CREATE INDEX items_caption_hnsw ON items USING crossmodal_hnsw (caption_emb embedding_cosine_ops);
CREATE INDEX items_image_hnsw ON items USING crossmodal_hnsw (image_emb embedding_cosine_ops);
CREATE INDEX items_v_l2 ON items USING crossmodal_hnsw (v embedding_l2_ops) WITH (m = 4, ef_construction = 16);
CREATE INDEX items_v_ip ON items USING crossmodal_hnsw (v embedding_ip_ops);
CREATE INDEX items_expr ON items USING crossmodal_hnsw
	((encode_text('$model', 'a photo of ' || caption)) embedding_cosine_ops);
CREATE INDEX items_v_btree ON items (v);
CREATE INDEX items_v_hash ON items USING hash (v);
CREATE VIEW centroid AS SELECT avg(caption_emb) AS c, sum(v) AS s FROM items;
});
is($node->safe_psql('app', "SELECT extversion FROM pg_extension WHERE extname = 'crossmodal'"), '0.1.0', 'the database runs 0.1.0');

# Answers that must survive the update, through index scans where there are
# indexes (ef_search above the row count: the searches are exact).
my $settings = 'SET enable_seqscan = off; SET crossmodal.hnsw_ef_search = 400;';
my %queries = (
	caption_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY caption_emb <=> (SELECT caption_emb FROM items WHERE id = 17) LIMIT 10) q',
	image_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY image_emb <=> (SELECT image_emb FROM items WHERE id = 2) LIMIT 5) q',
	l2_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY v <-> \'[0.1,0.2,0.3]\' LIMIT 10) q',
	ip_knn => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items ORDER BY v <#> \'[1,0,0]\' LIMIT 10) q',
	expr_knn => "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY encode_text('$model', 'a photo of ' || caption) <=> (SELECT caption_emb FROM items WHERE id = 3) LIMIT 5) q",
	btree => 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM items WHERE v < \'[-0.9,0,0]\' ORDER BY v) q',
	hash => 'SELECT id FROM items WHERE v = (SELECT v FROM items WHERE id = 5)',
	values => "SELECT md5(string_agg(concat_ws('|', caption_emb, image_emb, v), ',' ORDER BY id)) FROM items",
	view => 'SELECT md5(c::text || s::text) FROM centroid',
	distances => "SELECT round((sum(caption_emb <=> encode_text('$model', 'caption number 1')) + sum(v <-> '[1,1,1]') + sum(v <+> '[1,1,1]') + sum(inner_product(v, '[1,2,3]')))::numeric, 4) FROM items",
);
my %before = map { $_ => $node->safe_psql('app', "$settings $queries{$_}") } keys %queries;
like($before{caption_knn}, qr/^17(,\d+){9}$/, 'a caption finds itself first before the update');

# 3. The "package upgrade": 0.2.0's files replace 0.1.0's (its install script
# and library go; the models of 0.2.0 replace those of 0.1.0), then UPDATE.
remove_tree($_) for (glob("$sharedir/extension/crossmodal*"), glob("$pkglibdir/bitcode/crossmodal*"));
unlink "$pkglibdir/crossmodal.so";
move($saved{$_}, $_) or die "restore $_: $!" for keys %saved;
ok(!-e "$sharedir/extension/crossmodal--0.1.0.sql", "0.1.0's install script is gone, as after a package upgrade");

$node->safe_psql('app', 'ALTER EXTENSION crossmodal UPDATE');
$node->safe_psql('catalog_updated', 'ALTER EXTENSION crossmodal UPDATE');
is($node->safe_psql('app', "SELECT extversion FROM pg_extension WHERE extname = 'crossmodal'"), '0.2.0', 'updated to 0.2.0');

for my $q (sort keys %queries)
{
	is($node->safe_psql('app', "$settings $queries{$q}"), $before{$q}, "$q: the same answer after the update");
}
like($node->safe_psql('app', "$settings EXPLAIN (COSTS OFF) $queries{caption_knn}"), qr/Index Scan using items_caption_hnsw/,
	'through the HNSW index');

# 4. Everything keeps working: generated columns compute, indexes take new rows,
# VACUUM and REINDEX, the 0.2.0 procedure.
$node->safe_psql(
	'app', qq{
INSERT INTO items (id, caption, image, v)
SELECT 201, 'caption number 201', image, '[0.5,0.5,0.5]' FROM items WHERE id = 3;
DELETE FROM items WHERE id BETWEEN 150 AND 159;
VACUUM items;
});
is( $node->safe_psql(
		'app', "SELECT caption_emb <=> encode_text('$model', 'caption number 201') < 1e-6, dims(image_emb) FROM items WHERE id = 201"),
	"t|48",
	'a new row gets its generated embeddings');
is( $node->safe_psql(
		'app',
		"$settings SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY caption_emb <=> (SELECT caption_emb FROM items WHERE id = 201) LIMIT 1) q"
	),
	'201',
	'the caption index finds the new row');
is( $node->safe_psql(
		'app',
		"$settings SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM items ORDER BY image_emb <=> (SELECT image_emb FROM items WHERE id = 201) LIMIT 2) q"
	),
	'3,201',
	'the image index finds the new row next to the row with the same image');
is($node->safe_psql('app', "$settings SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> '[0,0,0]') q"),
	'191', 'after VACUUM the l2 index returns every live row');
$node->safe_psql('app', 'REINDEX TABLE items');
is( $node->safe_psql('app', "$settings $queries{l2_knn}"),
	$node->safe_psql('app', "SET enable_indexscan = off; SET enable_bitmapscan = off; $queries{l2_knn}"),
	'after REINDEX the l2 index agrees with an exact scan');
$node->safe_psql('app',
	"ALTER TABLE items ADD COLUMN caption_emb2 embedding; CALL crossmodal_embed_column('items', 'caption', 'caption_emb2', '$model')");
is($node->safe_psql('app', 'SELECT count(*) FROM items WHERE caption_emb2 <=> caption_emb < 1e-6'),
	'191', "0.2.0's crossmodal_embed_column works on the updated database");

# 5. The updated extension's catalog is a fresh 0.2.0 install's.
$node->safe_psql('postgres', 'CREATE DATABASE catalog_fresh');
$node->safe_psql('catalog_fresh', 'CREATE EXTENSION crossmodal');
sub catalog
{
	my ($db) = @_;
	my $out = "$tmp/$db.sql";
	PostgreSQL::Test::Utils::system_or_bail("$bindir/pg_dump", '--schema-only', '--binary-upgrade', '-f', $out,
		'-d', $node->connstr($db));
	my @lines = grep { !/^\\(un)?restrict |binary_upgrade_set_next_|^-- Dumped / } split /\n/,
	  PostgreSQL::Test::Utils::slurp_file($out);
	# Transaction ids and OIDs differ between any two databases.
	my $text = join("\n", @lines) =~ s/\n{3,}/\n\n/gr =~ s/(relfrozenxid|relminmxid) = '\d+'/$1 = N/gr
	  =~ s/WHERE oid = '\d+'/WHERE oid = N/gr;
	PostgreSQL::Test::Utils::append_to_file("$out.normalised", $text);
	return $text;
}
my ($updated, $fresh) = (catalog('catalog_updated'), catalog('catalog_fresh'));
like($fresh, qr/CREATE FUNCTION public\.encode_text/, 'the catalog dump lists the member objects');
my $same = $updated eq $fresh;
ok($same, "the updated extension's catalog equals a fresh 0.2.0 install's");
diag(`diff -u '$tmp/catalog_fresh.sql.normalised' '$tmp/catalog_updated.sql.normalised' | head -n 80`) unless $same;
# pg_dump does not show dependencies; the update script edits some (the
# aggregates' support functions), so compare those of every member object.
my $dependencies = q{
WITH members AS (
	SELECT classid, objid FROM pg_depend
	WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crossmodal'))
SELECT string_agg(dependency, E'\n' ORDER BY dependency) FROM (
	SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
		|| pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' (' || d.deptype::text || ')' AS dependency
	FROM pg_depend d JOIN members USING (classid, objid) WHERE d.deptype <> 'e') s
};
is($node->safe_psql('catalog_updated', $dependencies), $node->safe_psql('catalog_fresh', $dependencies),
	"the updated extension's dependencies equal a fresh install's");

$node->stop;
done_testing();
