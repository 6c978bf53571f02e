# 092_out_of_memory.pl: running out of memory inside an encode is an ERROR,
# never a crash or a hang.  The postmaster's address space is limited
# (prlimit --as, as `ulimit -v` would, which new backends inherit) to a
# warmed-up backend's size plus a little, plus more, plus plenty; at each
# limit, fresh sessions encode a text, an image, a 40-megapixel PNG (the
# default crossmodal.max_image_pixels), 2,000 texts and 200 images in one
# call.  Every call must succeed or fail with SQLSTATE 53200 (out of memory)
# or 54000 (a limit), the session must go on working after the error, no
# backend may die, and the tightest limit must really make calls fail.
use strict;
use warnings;
use Compress::Zlib;
use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('out_of_memory');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 16MB\nmax_connections = 10\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crossmodal');

# A 8000 x 5000 RGB PNG (40 million pixels, 120 MB decoded) of one colour:
# a few hundred kilobytes, written without any imaging library.
sub png_chunk
{
	my ($type, $data) = @_;
	return pack('N', length $data) . $type . $data . pack('N', crc32($type . $data));
}
my ($w, $h) = (8000, 5000);
my ($z, $status) = deflateInit(-Level => Z_BEST_SPEED);
my $idat = '';
my $row = "\0" . ("\x60\x90\xc0" x $w);
for (1 .. $h)
{
	my ($out) = $z->deflate($row);
	$idat .= $out;
}
my ($out) = $z->flush();
$idat .= $out;
my $big_png = $node->basedir . '/big.png';
PostgreSQL::Test::Utils::append_to_file($big_png,
	"\x89PNG\r\n\x1a\n" . png_chunk('IHDR', pack('NNCCCCC', $w, $h, 8, 2, 0, 0, 0))
	  . png_chunk('IDAT', $idat) . png_chunk('IEND', ''));
my $small_png = abs_path('test/golden/images/landscape_320x240.png');

my %calls = (
	'a text'            => "SELECT dims(encode_text('a photo of a cat'))",
	'an image'          => "SELECT dims(encode_image(pg_read_binary_file('$small_png')))",
	'a 40 MP PNG'       => "SELECT dims(encode_image(pg_read_binary_file('$big_png')))",
	'2,000 texts'       => "SELECT cardinality(encode_texts(array_agg('caption number ' || g))) FROM generate_series(1, 2000) g",
	'200 images'        => "SELECT cardinality(encode_images(array_fill(pg_read_binary_file('$small_png'), ARRAY[200])))",
);

# The size of a backend that has loaded the model and encoded a text and an image.
my $warm = $node->safe_psql('postgres', qq{
SELECT dims(encode_text('warm')) + dims(encode_image(pg_read_binary_file('$small_png')));
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmSize:\\s+(\\d+) kB'))[1];
});
my ($vmsize_kb) = (split /\n/, $warm)[-1];
ok($vmsize_kb > 0, "a warmed-up backend's address space: $vmsize_kb kB");
my $postmaster = $node->safe_psql('postgres',
	"SELECT (regexp_match(pg_read_file('postmaster.pid'), '^(\\d+)'))[1]");

my $failures = 0;
for my $slack_mb (8, 200, 4096)
{
	my $limit = ($vmsize_kb + $slack_mb * 1024) * 1024;
	system('prlimit', "--pid=$postmaster", "--as=$limit:") == 0
	  or BAIL_OUT("prlimit --pid=$postmaster --as=$limit failed");
	for my $what (sort keys %calls)
	{
		my ($ret, $stdout, $stderr) = $node->psql('postgres',
			"SET statement_timeout = '300s';\n$calls{$what};\nSELECT 'still here';",
			extra_params => [ '-v', 'VERBOSITY=verbose', '-v', 'ON_ERROR_STOP=0' ],
			timeout => 400);
		my ($sqlstate, $message) = $stderr =~ /ERROR:\s+([0-9A-Z]{5}): ([^\n]*)/;
		like($stdout, qr/still here/, "limit +$slack_mb MB, $what: the session goes on")
		  or diag("stderr: $stderr");
		if (defined $sqlstate)
		{
			$failures++;
			like($sqlstate, qr/^(53200|54000)$/,
				"limit +$slack_mb MB, $what: fails with out of memory or a limit ($sqlstate: $message)");
			ok($slack_mb < 4096, "limit +$slack_mb MB, $what: fails only under a tight limit");
		}
		else
		{
			is($stderr, '', "limit +$slack_mb MB, $what: succeeds");
		}
	}
}
cmp_ok($failures, '>', 0, "the tight limits made $failures calls run out of memory");

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated|exited with exit code|server process .* (crashed|was killed)/,
	'no backend died');
unlike($log, qr/PANIC/, 'no PANIC');
system('prlimit', "--pid=$postmaster", "--as=unlimited:") == 0 or diag('could not lift the limit');
is($node->safe_psql('postgres', "SELECT dims(encode_image(pg_read_binary_file('$big_png')))"), '128',
	'without a limit the 40 MP PNG encodes');

$node->stop;
done_testing();
