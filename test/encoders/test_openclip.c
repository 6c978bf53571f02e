/*
 * test_openclip.c
 *	  OpenCLIP checkpoints in open_clip's own layout: hostile and unsupported
 *	  open_clip_config.json files, the merges file (where it may be, gzip
 *	  damage and bombs, merges.txt in its place), which layout wins when a
 *	  directory has both configs, and SimpleTokenizer's text cleaning on texts
 *	  whose clean form is known.  Each failure must give the right status and
 *	  a message naming the key or file (run under ASan+UBSan with leak
 *	  detection too).  Token ids and embeddings against the reference are in
 *	  test_golden2.
 */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config.h"
#include "crossmodal_encoder.h"
#include "runtime_test_util.h"

#define SRC "test/golden2/tiny-openclip"

static char tmpdir[64];
static char *config_text;
static char *bpe_gz;
static size_t bpe_gz_len;

static void
tmp_path(char *buf, size_t size, const char *file)
{
	snprintf(buf, size, "%s/%s", tmpdir, file);
}

static void
put(const char *file, const void *data, size_t len)
{
	char		p[256];

	tmp_path(p, sizeof(p), file);
	RT_CHECK(rt_write_file(p, data, len), "write %s", p);
}

static void
drop(const char *file)
{
	char		p[256];

	tmp_path(p, sizeof(p), file);
	unlink(p);
}

static void
restore(void)
{
	put("open_clip_config.json", config_text, strlen(config_text));
	put("bpe_simple_vocab.txt.gz", bpe_gz, bpe_gz_len);
	drop("merges.txt");
	drop("config.json");
	drop("bpe_simple_vocab_16e6.txt.gz");
}

/* Load, expect failure with status and a message holding phrase (and file). */
static void
expect_error(const char *what, cm_status want, const char *phrase, const char *missing)
{
	cm_error	err = {0};
	cm_model   *m = cm_model_load(tmpdir, NULL, &err);

	RT_CHECK(m == NULL, "%s: load succeeded", what);
	cm_model_free(m);
	RT_CHECK(err.status == want, "%s: status %s, expected %s: %s", what, cm_status_name(err.status),
			 cm_status_name(want), err.message);
	RT_CHECK(phrase == NULL || strstr(err.message, phrase) != NULL, "%s: message lacks \"%s\": %s",
			 what, phrase, err.message);
	if (missing != NULL)
	{
		char		p[256];

		tmp_path(p, sizeof(p), missing);
		RT_CHECK(strcmp(err.missing_file, p) == 0, "%s: missing_file \"%s\", expected \"%s\"", what,
				 err.missing_file, p);
	}
	restore();
}

/* The golden config with the first occurrence of from replaced by to. */
static void
expect_config_error(const char *from, const char *to, cm_status want, const char *phrase)
{
	const char *at = strstr(config_text, from);
	char	   *edited;
	size_t		n;

	RT_CHECK(at != NULL, "\"%s\" not in the golden config", from);
	if (at == NULL)
		return;
	n = strlen(config_text) - strlen(from) + strlen(to);
	edited = malloc(n + 1);
	memcpy(edited, config_text, (size_t) (at - config_text));
	strcpy(edited + (at - config_text), to);
	strcat(edited, at + strlen(from));
	put("open_clip_config.json", edited, strlen(edited));
	free(edited);
	expect_error(to, want, phrase, NULL);
}

/* A gzip stream of n copies of byte c. */
static unsigned char *
gzip_of(int c, size_t n, size_t *out_len)
{
	z_stream	z;
	unsigned char *in = malloc(n),
			   *out = malloc(n / 100 + 4096);

	memset(in, c, n);
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
	z.next_in = in;
	z.avail_in = (uInt) n;
	z.next_out = out;
	z.avail_out = (uInt) (n / 100 + 4096);
	deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	free(in);
	return out;
}

static void
test_configs(void)
{
	cm_error	err = {0};
	cm_model   *m;
	cm_model_info info;

	m = cm_model_load(tmpdir, NULL, &err);
	RT_CHECK(m != NULL, "the copied checkpoint loads: %s", err.message);
	if (m != NULL)
	{
		cm_model_get_info(m, &info);
		RT_CHECK(strcmp(info.family, "openclip") == 0 && strcmp(info.tokenizer_kind, "OpenCLIP BPE") == 0 &&
				 info.embed_dim == 40 && info.max_tokens == 77 && !info.has_logit_bias,
				 "info: %s, %s, %d", info.family, info.tokenizer_kind, info.embed_dim);
	}
	cm_model_free(m);
	RT_CHECK(cm_model_dir_has_config(tmpdir), "an open_clip directory is a model directory");

	/* the merges file stays inside the model directory */
	expect_config_error("\"bpe_simple_vocab.txt.gz\"", "\"../tiny-openclip/bpe_simple_vocab.txt.gz\"",
						CM_ERR_MODEL, "inside the model directory");
	expect_config_error("\"bpe_simple_vocab.txt.gz\"", "\"/etc/passwd\"", CM_ERR_MODEL, "inside the model directory");
	expect_config_error("\"bpe_simple_vocab.txt.gz\"", "\"a/./b.gz\"", CM_ERR_MODEL, "inside the model directory");
	expect_config_error("\"bpe_simple_vocab.txt.gz\"", "\"sub/none.txt.gz\"", CM_ERR_IO, "none.txt.gz");
	expect_config_error("\"bpe_simple_vocab.txt.gz\"", "42", CM_ERR_MODEL, "bpe_path");

	/* what open_clip would refuse, and variants this runtime does not run */
	expect_config_error("\"embed_dim\": 40,", "\"embed_dim\": 40, \"frobnicate\": 1,", CM_ERR_UNSUPPORTED,
						"\"model_cfg.frobnicate\"");
	expect_config_error("\"embed_dim\": 40,", "", CM_ERR_MODEL, "embed_dim");
	expect_config_error("\"embed_dim\": 40,", "\"embed_dim\": 40, \"custom_text\": true,", CM_ERR_UNSUPPORTED,
						"custom_text");
	expect_config_error("\"layers\": 2,", "\"layers\": [3, 4, 6, 3],", CM_ERR_UNSUPPORTED, "ResNet");
	expect_config_error("\"head_width\": 16,", "\"head_width\": 16, \"timm_model_name\": \"vit_base\",",
						CM_ERR_UNSUPPORTED, "timm");
	expect_config_error("\"head_width\": 16,", "\"head_width\": 16, \"ls_init_value\": 0.1,", CM_ERR_UNSUPPORTED,
						"ls_init_value");
	expect_config_error("\"head_width\": 16,", "\"head_width\": 16, \"attentional_pool\": true,",
						CM_ERR_UNSUPPORTED, "attentional_pool");
	expect_config_error("\"head_width\": 16,", "\"head_width\": 128,", CM_ERR_MODEL, "head_width");
	expect_config_error("\"image_size\": 64,", "\"image_size\": [64, 48],", CM_ERR_UNSUPPORTED, "not square");
	expect_config_error("\"heads\": 4,", "\"heads\": 4, \"hf_tokenizer_name\": \"xlm-roberta-base\",",
						CM_ERR_UNSUPPORTED, "hf_tokenizer_name");
	expect_config_error("\"heads\": 4,", "\"heads\": 4, \"pool_type\": \"first\",", CM_ERR_UNSUPPORTED, "pool_type");
	expect_config_error("\"heads\": 4,", "\"heads\": 4, \"pool_type\": \"eos\",", CM_ERR_MODEL, "eos_id");
	expect_config_error("\"heads\": 4,", "\"heads\": 4, \"proj_bias\": true,", CM_ERR_UNSUPPORTED, "proj_bias");
	expect_config_error("\"heads\": 4,", "\"heads\": 5,", CM_ERR_MODEL, "heads");
	expect_config_error("\"bpe_path\"", "\"clean\": \"canonicalize\", \"bpe_path\"", CM_ERR_UNSUPPORTED, "clean");
	expect_config_error("\"bpe_path\"", "\"reduction_mask\": \"simple\", \"bpe_path\"", CM_ERR_UNSUPPORTED,
						"reduction_mask");
	expect_config_error("\"resize_mode\": \"shortest\"", "\"resize_mode\": \"longest\"", CM_ERR_UNSUPPORTED,
						"resize_mode");
	expect_config_error("\"interpolation\": \"bicubic\"", "\"interpolation\": \"bilinear\"", CM_ERR_UNSUPPORTED,
						"interpolation");
	expect_config_error("\"interpolation\": \"bicubic\"", "\"size\": 32", CM_ERR_MODEL, "preprocess_cfg.size");
	expect_config_error("0.26862954,", "0,", CM_ERR_MODEL, "std");
	/* positive as a double, 0 as a float */
	expect_config_error("0.26862954,", "3e-308,", CM_ERR_MODEL, "std");
	/* a bias in the config: the checkpoint must have the tensor */
	expect_config_error("\"embed_dim\": 40,", "\"embed_dim\": 40, \"init_logit_bias\": -10,", CM_ERR_MODEL,
						"logit_bias");
	expect_config_error("\"model_cfg\"", "\"model_config\"", CM_ERR_MODEL, "model_cfg");
	expect_config_error("{", "[", CM_ERR_MODEL, "JSON");
}

static void
test_merges_file(void)
{
	size_t		len;
	unsigned char *gz;
	char	   *merges;
	cm_error	err = {0};

	/* no merges file anywhere: named as missing */
	expect_config_error("\"tokenizer_kwargs\": {\n        \"bpe_path\": \"bpe_simple_vocab.txt.gz\"\n      }",
						"\"tokenizer_kwargs\": {}", CM_ERR_IO, "bpe_simple_vocab_16e6.txt.gz");
	drop("bpe_simple_vocab.txt.gz");
	expect_error("merges file deleted", CM_ERR_IO, NULL, "bpe_simple_vocab.txt.gz");

	/* damaged gzip: cut short, and not gzip at all */
	put("bpe_simple_vocab.txt.gz", bpe_gz, bpe_gz_len / 2);
	expect_error("truncated gzip", CM_ERR_MODEL, "gzip", NULL);
	put("bpe_simple_vocab.txt.gz", "#version: 0.2\na b\n", 18);
	expect_error("plain text named .gz", CM_ERR_MODEL, "gzip", NULL);

	/* a bomb: 100 MB of zeros in ~100 KB stops at the decompression limit */
	gz = gzip_of(0, (size_t) 100 << 20, &len);
	put("bpe_simple_vocab.txt.gz", gz, len);
	free(gz);
	expect_error("gzip bomb", CM_ERR_MODEL, "limit", NULL);

	/* invalid UTF-8 inside */
	gz = gzip_of(0xFF, 1000, &len);
	put("bpe_simple_vocab.txt.gz", gz, len);
	free(gz);
	expect_error("merges not UTF-8", CM_ERR_MODEL, "UTF-8", NULL);

	/*
	 * Without bpe_path, open_clip's default file name, else merges.txt (what
	 * checkpoints on the Hub ship): the same merges give the same ids.
	 */
	{
		char		p[256];
		cm_model   *m;
		int32_t		ids[80];
		int			n = 0;
		static const int32_t want[] = {2012, 320, 1599, 78, 618, 635, 320, 1140, 2013};	/* text 0 */
		const char *forms[] = {"bpe_simple_vocab_16e6.txt.gz", "merges.txt"};

		tmp_path(p, sizeof(p), "bpe_simple_vocab.txt.gz");
		RT_CHECK(cm_read_gzip_file(p, 1 << 20, 1 << 24, &merges, &len, &err) == CM_OK, "read the golden merges");
		for (int f = 0; f < 2; f++)
		{
			const char *at = strstr(config_text, "\"tokenizer_kwargs\"");
			char	   *edited = strdup(config_text);

			/* drop the tokenizer_kwargs object (the last key of text_cfg) */
			edited[at - config_text] = '\0';
			while (strlen(edited) > 0 && strchr(" \n,", edited[strlen(edited) - 1]) != NULL)
				edited[strlen(edited) - 1] = '\0';
			strcat(edited, strstr(at, "}") + 1);
			put("open_clip_config.json", edited, strlen(edited));
			free(edited);
			drop("bpe_simple_vocab.txt.gz");
			if (f == 0)
				put(forms[f], bpe_gz, bpe_gz_len);
			else
				put(forms[f], merges, len);
			m = cm_model_load(tmpdir, NULL, &err);
			RT_CHECK(m != NULL, "merges from %s: %s", forms[f], err.message);
			if (m != NULL)
			{
				RT_CHECK(cm_tokenize(m, "a photo of a cat", 16, ids, 77, &n, &err) == CM_OK &&
						 n == 9 && memcmp(ids, want, sizeof(want)) == 0,
						 "merges from %s: ids of text 0 differ (%d ids, first %d %d)", forms[f], n, ids[0], ids[1]);
				cm_model_free(m);
			}
			restore();
		}
		free(merges);
	}

	/* a directory with both layouts loads as transformers saved it */
	{
		cm_model   *m;
		cm_model_info info;
		char		cmd[512];

		snprintf(cmd, sizeof(cmd), "cp test/golden/tiny-clip-quickgelu-f32/* %s/", tmpdir);
		RT_CHECK(system(cmd) == 0, "copy the golden CLIP model");
		m = cm_model_load(tmpdir, NULL, &err);
		RT_CHECK(m != NULL, "both layouts: %s", err.message);
		if (m != NULL)
		{
			cm_model_get_info(m, &info);
			RT_CHECK(strcmp(info.family, "clip") == 0 && strcmp(info.tokenizer_kind, "CLIP BPE") == 0,
					 "both layouts: loaded as %s / %s", info.family, info.tokenizer_kind);
			cm_model_free(m);
		}
		snprintf(cmd, sizeof(cmd), "cd %s && rm -f model.safetensors vocab.json merges.txt preprocessor_config.json config.json",
				 tmpdir);
		RT_CHECK(system(cmd) == 0, "remove the golden CLIP model");
		restore();
	}
}

/*
 * SimpleTokenizer's cleaning: texts whose clean form is known must give the
 * ids of their clean form (ftfy's steps, HTML entities at up to three
 * levels when no "<" is in the line, two when there is, whitespace, case).
 */
static void
test_cleaning(void)
{
	static const char *const pairs[][2] = {
		{"&amp;amp;amp; cat", "& cat"},
		{"&amp;amp; <b>", "& <b>"},
		{"\xE2\x80\x9Csmart\xE2\x80\x9D \xE2\x80\x98q\xE2\x80\x99", "\"smart\" 'q'"},
		{"\xEF\xAC\x81ne \xEF\xAC\x84 \xC4\xB2", "fine ffl ij"},
		{"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\xE3\x80\x80\xEF\xBC\x91\xEF\xBC\x92", "abc 12"},
		{"\x1B[31mred\x1B[0m  \t\n car", "red car"},
		{"a\x01\x0B\x7F" "b \xEF\xBB\xBF" "c", "ab c"},
		{"\xC2\x93quoted\xC2\x94 \xC2\x85", "\"quoted\" \xE2\x80\xA6"},
		{"caf\x65\xCC\x81 \xCE\xA3\xCE\x8A\xCE\xA3\xCE\xA5\xCE\xA6\xCE\x9F\xCE\xA3", "caf\xC3\xA9 \xCF\x83\xCE\xAF\xCF\x83\xCF\x85\xCF\x86\xCE\xBF\xCF\x82"},
		{"&eacute;&EACUTE; &notin &copy;&#65;&#x42;&#128;", "\xC3\xA9\xC3\xA9 \xC2\xAC" "in \xC2\xA9" "ab\xE2\x82\xAC"},
		{"P&EACUTE;REZ &SZLIG;", "p\xC3\xA9rez ss"},
	};
	cm_error	err = {0};
	cm_model   *m = cm_model_load(SRC, NULL, &err);

	RT_CHECK(m != NULL, "load %s: %s", SRC, err.message);
	if (m == NULL)
		return;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
	{
		int32_t		a[77],
					b[77];
		int			na = 0,
					nb = 0;

		RT_CHECK(cm_tokenize(m, pairs[i][0], strlen(pairs[i][0]), a, 77, &na, &err) == CM_OK &&
				 cm_tokenize(m, pairs[i][1], strlen(pairs[i][1]), b, 77, &nb, &err) == CM_OK,
				 "pair %zu: %s", i, err.message);
		RT_CHECK(na == nb && memcmp(a, b, (size_t) na * sizeof(int32_t)) == 0,
				 "pair %zu: \"%s\" and its clean form \"%s\" give different ids (%d vs %d)", i,
				 pairs[i][0], pairs[i][1], na, nb);
	}

	/* with a "<" in the line ftfy leaves entities alone: html.unescape's two levels only */
	{
		int32_t		a[77],
					b[77];
		int			na = 0,
					nb = 0;

		RT_CHECK(cm_tokenize(m, "&amp;amp;amp; <b>", 17, a, 77, &na, &err) == CM_OK &&
				 cm_tokenize(m, "& <b>", 5, b, 77, &nb, &err) == CM_OK &&
				 !(na == nb && memcmp(a, b, (size_t) na * sizeof(int32_t)) == 0),
				 "three levels of entities next to \"<\" are unescaped only twice");
	}
	cm_model_free(m);
}

int
main(void)
{
	char		cmd[256];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cm_openclip_XXXXXX");
	RT_CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
	snprintf(cmd, sizeof(cmd), "cp " SRC "/* %s/", tmpdir);
	RT_CHECK(system(cmd) == 0, "copy %s", SRC);
	config_text = rt_read_file(SRC "/open_clip_config.json", NULL);
	bpe_gz = rt_read_file(SRC "/bpe_simple_vocab.txt.gz", &bpe_gz_len);
	RT_CHECK(config_text != NULL && bpe_gz != NULL, "read the golden files");
	if (config_text != NULL && bpe_gz != NULL)
	{
		test_configs();
		test_merges_file();
		test_cleaning();
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(config_text);
	free(bpe_gz);
	return rt_summary("test_openclip");
}
