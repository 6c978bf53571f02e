# 073_pgvector_coexistence.pl
#	crossmodal in one backend with pgvector.  PostgreSQL loads extension
#	libraries with global symbol binding, so a name two libraries both export
#	can bind a call in one to the other's function.  pgvector is not in
#	Debian, so the test builds a stand-in library exporting the C names that
#	pgvector 0.8's vector.so shares with crossmodal 0.1.0's library, with a
#	_PG_init that, like pgvector's, defines hnsw.ef_search through HnswInit.
#	Loaded before and after crossmodal, with LOAD and through
#	shared_preload_libraries, crossmodal's type, every distance operator, an
#	HNSW build, insert and scan and an encoder must give the results of a
#	backend without it, and the stand-in's own initialisation must work.
#	Where pgvector is installed, the same with real pgvector, and casts
#	between vector and embedding in one query.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $model = 'tiny-clip-quickgelu-f32';

# The names vector.so (pgvector 0.8.6) exported that crossmodal 0.1.0's
# library exported too (nm -D --defined-only of both).
my @functions = qw(HnswGetEfConstruction HnswGetM HnswInitPage HnswParallelBuildMain
  HnswSearchLayer hnswbeginscan hnswbuild hnswbuildempty hnswbulkdelete hnswendscan
  hnswgettuple hnswinsert hnswrescan hnswvacuumcleanup);
my @sql_functions = qw(cosine_distance inner_product l1_distance l2_distance l2_normalize
  subvector);
my @variables = qw(hnsw_ef_search hnsw_max_scan_tuples);

my $dir = PostgreSQL::Test::Utils::tempdir;
my $standin = "$dir/vector_standin.so";
{
	my $c = qq{#include "postgres.h"
#include "fmgr.h"
#include "utils/guc.h"
PG_MODULE_MAGIC;
void _PG_init(void);
void HnswInit(void);
};
	# Any call of these from crossmodal is an error that names it.
	$c .= "void $_(void); void $_(void) { elog(ERROR, \"vector stand-in: $_ called\"); }\n"
	  for @functions;
	$c .= "PG_FUNCTION_INFO_V1($_); Datum $_(PG_FUNCTION_ARGS); "
	  . "Datum $_(PG_FUNCTION_ARGS) { elog(ERROR, \"vector stand-in: $_ called\"); PG_RETURN_NULL(); }\n"
	  for @sql_functions;
	$c .= "int $_ = 1;\n" for @variables;
	# pgvector's _PG_init defines its settings in HnswInit: a call that
	# binds to another library's HnswInit defines that library's settings
	# twice ("attempt to redefine parameter").
	$c .= q{
void
HnswInit(void)
{
	DefineCustomIntVariable("hnsw.ef_search", "stand-in", NULL, &hnsw_ef_search,
							1, 1, 1000, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("hnsw");
}

void
_PG_init(void)
{
	HnswInit();
}
};
	open(my $fh, '>', "$dir/vector_standin.c") or die $!;
	print $fh $c;
	close $fh;
	my $includedir = `pg_config --includedir-server`;
	chomp $includedir;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'cc', '-shared', '-fPIC', "-I$includedir", '-o', $standin,
			"$dir/vector_standin.c" ], '>', \$stdout, '2>', \$stderr);
	ok($ok, 'the stand-in library builds') or diag($stderr);
}

my $node = PostgreSQL::Test::Cluster->new('coexistence');
$node->init;
$node->append_conf('postgresql.conf', qq{
crossmodal.model_path = '$golden'
max_parallel_maintenance_workers = 2
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crossmodal');

# Everything compared: values and every distance between them, functions,
# aggregates, casts, an HNSW build (parallel where the planner chooses),
# inserts into the built indexes, index scans with each operator class, and
# an encoder.  ef_search set under both prefixes: were crossmodal to read
# the other library's variable, its scans would change.
my $workload = qq{
SET hnsw.ef_search = 1;
SET crossmodal.hnsw_ef_search = 200;
DROP TABLE IF EXISTS items;
CREATE TABLE items (id int PRIMARY KEY, e embedding(8));
INSERT INTO items
SELECT i, ARRAY[sin(i), cos(1.3 * i), sin(0.7 * i), cos(i) * 2, sin(2.1 * i),
                cos(0.4 * i), sin(i) * cos(i), 0.5]::real[]
FROM generate_series(1, 400) i;
ALTER TABLE items SET (parallel_workers = 2);
CREATE INDEX items_l2 ON items USING crossmodal_hnsw (e embedding_l2_ops);
CREATE INDEX items_cos ON items USING crossmodal_hnsw (e embedding_cosine_ops);
CREATE INDEX items_ip ON items USING crossmodal_hnsw (e embedding_ip_ops);
CREATE INDEX items_l1 ON items USING crossmodal_hnsw (e embedding_l1_ops);
INSERT INTO items
SELECT i, ARRAY[sin(i), cos(1.3 * i), sin(0.7 * i), cos(i) * 2, sin(2.1 * i),
                cos(0.4 * i), sin(i) * cos(i), 0.5]::real[]
FROM generate_series(401, 500) i;
SET enable_seqscan = off;
SELECT 'l2', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <-> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'cos', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <=> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'ip', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <#> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'l1', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <+> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
RESET enable_seqscan;
SELECT a <-> b, a <=> b, a <#> b, a <+> b, l2_distance(a, b), cosine_distance(a, b),
       inner_product(a, b), l1_distance(a, b), a + b, a - b, a * b, a < b, a = a,
       l2_normalize(a), subvector(a, 2, 3), norm(a), dims(a), a::real[]
FROM (SELECT '[1,2,3,4]'::embedding AS a, '[-1,0.5,2,8]'::embedding AS b) v;
SELECT avg(e), sum(e), count(DISTINCT e) FROM items;
SELECT encode_text('$model', 'a photo of a cat');
SELECT encode_image('$model', pg_read_binary_file('$golden/images/tiny_7x5.png'));
};

sub run_workload
{
	my ($before) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "$before\n$workload", on_error_stop => 1);
	return $ret == 0 ? $stdout : "failed: $stderr";
}

my $baseline = run_workload('');
unlike($baseline, qr/^failed/, 'the workload runs in a backend with crossmodal only')
  or diag($baseline);

# The baseline's index scans return what exact scans return.
my $exact = $node->safe_psql('postgres', q{
SET enable_indexscan = off;
SELECT 'l2', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <-> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'cos', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <=> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'ip', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <#> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
SELECT 'l1', string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY e <+> '[0.3,0.1,-0.2,1,0,0.5,0.1,0.5]' LIMIT 10) s;
});
my @scan_lines = grep { /^(l2|cos|ip|l1)\|/ } split /\n/, $baseline;
is(join("\n", @scan_lines), $exact, 'baseline index scans equal exact scans');

is(run_workload("LOAD '$standin';"), $baseline, 'LOAD: stand-in first, then crossmodal');
is(run_workload("DO \$\$ BEGIN PERFORM '[1]'::embedding; END \$\$; LOAD '$standin';"),
	$baseline, 'LOAD: crossmodal first, then the stand-in');
for my $order ([ "$standin,crossmodal", 'stand-in, crossmodal' ],
	[ "crossmodal,$standin", 'crossmodal, stand-in' ])
{
	$node->append_conf('postgresql.conf', "shared_preload_libraries = '$order->[0]'\n");
	$node->restart;
	is(run_workload(''), $baseline, "shared_preload_libraries: $order->[1]");
	is($node->safe_psql('postgres', 'SHOW hnsw.ef_search'), '1',
		"shared_preload_libraries: $order->[1]: the stand-in's setting is defined");
}
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;

# With pgvector installed on this machine, the same with the real library.
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
SKIP:
{
	skip 'pgvector is not installed here (it is not in Debian): real-pgvector part not run', 10
	  unless -e "$sharedir/extension/vector.control";

	$node->safe_psql('postgres', 'CREATE EXTENSION vector');
	my $both = q{
SELECT '[1,2,3]'::vector::text::embedding AS to_embedding, '[1,2,3]'::embedding::text::vector AS to_vector,
       '[1,2,3]'::vector <-> '[3,2,1]'::vector AS vector_l2, '[1,2,3]'::embedding <-> '[3,2,1]' AS embedding_l2;
SET hnsw.ef_search = 10;
CREATE TEMP TABLE vecs AS SELECT i AS id, ARRAY[i, i % 5, 1]::vector(3) AS v FROM generate_series(1, 100) i;
CREATE INDEX ON vecs USING hnsw (v vector_l2_ops);
SET enable_seqscan = off;
SELECT string_agg(id::text, ',') FROM (SELECT id FROM vecs ORDER BY v <-> '[50,0,1]' LIMIT 3) s;
};
	my $expected_both = "[1,2,3]|[1,2,3]|2.8284271247461903|2.8284271247461903\n50,51,52";

	my $out = run_workload("DO \$\$ BEGIN PERFORM '[1]'::vector; END \$\$;");
	is($out, $baseline, 'LOAD: pgvector first, then crossmodal');
	$out = run_workload("DO \$\$ BEGIN PERFORM '[1]'::embedding; PERFORM '[1]'::vector; END \$\$;");
	is($out, $baseline, 'LOAD: crossmodal first, then pgvector');
	for my $order ('vector,crossmodal', 'crossmodal,vector')
	{
		$node->append_conf('postgresql.conf', "shared_preload_libraries = '$order'\n");
		$node->restart;
		is(run_workload(''), $baseline, "shared_preload_libraries = $order: crossmodal's results");
		is($node->safe_psql('postgres', $both), $expected_both,
			"shared_preload_libraries = $order: pgvector works and casts both ways in one query");
	}

	# The README's migration of a column in place, both ways: the values
	# come back unchanged, and each index serves its type.
	my $original = q{SELECT string_agg(emb::text, '|' ORDER BY id) FROM mig};
	$node->safe_psql('postgres', q{
CREATE TABLE mig (id int PRIMARY KEY, emb vector(3));
INSERT INTO mig SELECT i, ARRAY[sin(i), cos(i) * 1e-3, i * 1e5]::vector(3) FROM generate_series(1, 50) i;
CREATE INDEX mig_idx ON mig USING hnsw (emb vector_l2_ops);
});
	my $before = $node->safe_psql('postgres', $original);
	$node->safe_psql('postgres', q{
DROP INDEX mig_idx;
ALTER TABLE mig ALTER COLUMN emb TYPE embedding(3) USING emb::text::embedding;
CREATE INDEX mig_idx ON mig USING crossmodal_hnsw (emb embedding_l2_ops);
});
	is($node->safe_psql('postgres', $original), $before, 'vector column migrated to embedding: same values');
	is($node->safe_psql('postgres', q{SET enable_seqscan = off;
SELECT id FROM mig ORDER BY emb <-> (SELECT emb FROM mig WHERE id = 7) LIMIT 1}), '7',
		'the migrated column has its crossmodal_hnsw index');
	$node->safe_psql('postgres', q{
DROP INDEX mig_idx;
ALTER TABLE mig ALTER COLUMN emb TYPE vector(3) USING emb::text::vector;
CREATE INDEX mig_idx ON mig USING hnsw (emb vector_l2_ops);
});
	is($node->safe_psql('postgres', $original), $before, 'and back to vector: same values');

	# The binary forms are the same: a binary COPY of one type loads into the other.
	$node->safe_psql('postgres', qq{
COPY (SELECT id, emb FROM mig) TO '$dir/mig.bin' (FORMAT binary);
CREATE TABLE mig2 (id int, emb embedding(3));
COPY mig2 FROM '$dir/mig.bin' (FORMAT binary);
});
	is($node->safe_psql('postgres', q{SELECT string_agg(emb::text, '|' ORDER BY id) FROM mig2}), $before,
		'binary COPY from vector into embedding');
}

$node->stop;
done_testing();
