/*
 * test_tokenizer.c
 *	  CLIP tokenizer against the golden token ids of Hugging Face's
 *	  CLIPTokenizer, plus hostile text, broken vocab/merges and truncation.
 *	  Run from the repository root (make -C encoders test).
 */
#include "tokenizer.h"
#include "bpe.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN_DIR "test/golden"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			passed++; \
		else \
		{ \
			failed++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		size;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t) size + 1);
	if (buf != NULL && fread(buf, 1, (size_t) size, f) != (size_t) size)
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf != NULL)
	{
		buf[size] = '\0';
		*len = (size_t) size;
	}
	return buf;
}

static cJSON *
read_json(const char *path)
{
	size_t		len = 0;
	char	   *text = read_file(path, &len);
	cJSON	   *json = text ? cJSON_ParseWithLength(text, len) : NULL;

	free(text);
	return json;
}

static cm_tokenizer *
load_model_tokenizer(const char *model)
{
	char		vocab[512],
				merges[512];
	cm_error	err = {0};
	cm_tokenizer *tok;

	snprintf(vocab, sizeof(vocab), GOLDEN_DIR "/%s/vocab.json", model);
	snprintf(merges, sizeof(merges), GOLDEN_DIR "/%s/merges.txt", model);
	tok = cm_tokenizer_load(vocab, merges, &err);
	CHECK(tok != NULL, "load %s: %s", model, err.message);
	return tok;
}

static bool
same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && memcmp(a, b, (size_t) na * sizeof(int32_t)) == 0;
}

static void
print_ids(const char *label, const int32_t *ids, int n)
{
	fprintf(stderr, "  %s:", label);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %d", ids[i]);
	fputc('\n', stderr);
}

/* ----------------------------------------------------------- golden ids */

static void
test_golden(void)
{
	cJSON	   *golden = read_json(GOLDEN_DIR "/expected.json");
	const cJSON *texts,
			   *models,
			   *model;
	int			models_seen = 0;

	CHECK(golden != NULL, "cannot read " GOLDEN_DIR "/expected.json");
	if (golden == NULL)
		return;
	texts = cJSON_GetObjectItemCaseSensitive(golden, "texts");
	models = cJSON_GetObjectItemCaseSensitive(golden, "models");
	CHECK(cJSON_GetArraySize(texts) == 22, "expected 22 golden texts");

	cJSON_ArrayForEach(model, models)
	{
		const cJSON *config = cJSON_GetObjectItemCaseSensitive(model, "config");
		const cJSON *text_config = cJSON_GetObjectItemCaseSensitive(config, "text_config");
		const cJSON *max_pos = cJSON_GetObjectItemCaseSensitive(text_config,
																"max_position_embeddings");
		const cJSON *token_ids = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(model, "token_ids"), "CLIPTokenizer");
		const cJSON *bos = cJSON_GetObjectItemCaseSensitive(text_config, "bos_token_id");
		const cJSON *eos = cJSON_GetObjectItemCaseSensitive(text_config, "eos_token_id");
		cm_tokenizer *tok = load_model_tokenizer(model->string);
		int			max_ids = cJSON_IsNumber(max_pos) ? max_pos->valueint : 0;
		int			matched = 0;

		models_seen++;
		CHECK(max_ids >= 2, "%s: no max_position_embeddings", model->string);
		CHECK(cJSON_GetArraySize(token_ids) == cJSON_GetArraySize(texts),
			  "%s: one id list per text", model->string);
		if (tok == NULL || max_ids < 2)
			continue;
		if (cJSON_IsNumber(bos))
			CHECK(cm_tokenizer_bos_id(tok) == bos->valueint, "%s: BOS id", model->string);
		if (cJSON_IsNumber(eos))
			CHECK(cm_tokenizer_eos_id(tok) == eos->valueint, "%s: EOS id", model->string);
		CHECK(cm_tokenizer_vocab_size(tok) == 2014, "%s: vocab size %d", model->string,
			  cm_tokenizer_vocab_size(tok));

		for (int i = 0; i < cJSON_GetArraySize(texts); i++)
		{
			const char *text = cJSON_GetArrayItem(texts, i)->valuestring;
			const cJSON *want_json = cJSON_GetArrayItem(token_ids, i);
			int32_t    *got = malloc((size_t) max_ids * sizeof(int32_t));
			int32_t    *want = malloc((size_t) (cJSON_GetArraySize(want_json) + 1) * sizeof(int32_t));
			int			n_got = 0,
						n_want = 0;
			cm_error	err = {0};
			cm_status	st;
			const cJSON *v;

			cJSON_ArrayForEach(v, want_json)
				want[n_want++] = v->valueint;
			st = cm_tokenizer_encode(tok, text, strlen(text), got, max_ids, &n_got, &err);
			CHECK(st == CM_OK, "%s text %d: %s", model->string, i, err.message);
			if (st == CM_OK && same_ids(got, n_got, want, n_want))
				matched++;
			else
			{
				CHECK(false, "%s text %d (%.40s...) token ids differ", model->string, i, text);
				print_ids("want", want, n_want);
				print_ids("got ", got, n_got);
			}
			free(got);
			free(want);
		}
		CHECK(matched == cJSON_GetArraySize(texts), "%s: %d of %d texts match",
			  model->string, matched, cJSON_GetArraySize(texts));
		printf("golden %s: %d/%d texts identical\n", model->string, matched,
			   cJSON_GetArraySize(texts));
		cm_tokenizer_free(tok);
	}
	CHECK(models_seen == 2, "expected two golden models, saw %d", models_seen);
	cJSON_Delete(golden);
}

/*
 * 1,200 random texts of awkward characters with ids from Hugging Face's
 * tokenizers library (see tools/tokenizer_reference.js): whitespace classes,
 * case-changed special tokens, combining marks, U+0130, many scripts.
 */
static void
test_reference_texts(void)
{
	cJSON	   *ref = read_json("test/encoders/data/tokenizer_reference.json");
	const cJSON *texts = cJSON_GetObjectItemCaseSensitive(ref, "texts");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ref, "ids");
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(ref, "model");
	cm_tokenizer *tok;
	int			matched = 0,
				total = cJSON_GetArraySize(texts);

	CHECK(ref != NULL && cJSON_IsString(model) && total >= 1000 &&
		  cJSON_GetArraySize(ids) == total, "read tokenizer_reference.json");
	if (ref == NULL || !cJSON_IsString(model))
	{
		cJSON_Delete(ref);
		return;
	}
	tok = load_model_tokenizer(model->valuestring);
	for (int i = 0; tok != NULL && i < total; i++)
	{
		const char *text = cJSON_GetArrayItem(texts, i)->valuestring;
		const cJSON *want = cJSON_GetArrayItem(ids, i);
		int32_t		got[77];
		int			n = 0;
		cm_error	err = {0};
		bool		same;

		same = cm_tokenizer_encode(tok, text, strlen(text), got, 77, &n, &err) == CM_OK &&
			n == cJSON_GetArraySize(want);
		for (int k = 0; same && k < n; k++)
			same = got[k] == cJSON_GetArrayItem(want, k)->valueint;
		if (same)
			matched++;
		else if (i - matched < 5)
		{
			fprintf(stderr, "reference text %d differs:", i);
			for (const unsigned char *c = (const unsigned char *) text; *c; c++)
				fprintf(stderr, " %02x", *c);
			fputc('\n', stderr);
			print_ids("got ", got, n);
		}
	}
	CHECK(matched == total, "reference texts: %d of %d identical", matched, total);
	printf("reference texts (tokenizers library): %d/%d identical\n", matched, total);
	cm_tokenizer_free(tok);
	cJSON_Delete(ref);
}

/* ------------------------------------------------- behaviour beyond golden */

/* Ids of vocabulary strings, looked up independently of the tokenizer. */
static int32_t
vocab_id(const cJSON *vocab, const char *token)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(vocab, token);

	return cJSON_IsNumber(v) ? v->valueint : -1;
}

static int
encode(const cm_tokenizer *tok, const char *text, size_t len, int32_t *ids, int max_ids,
	   cm_error *err)
{
	int			n = -1;

	if (cm_tokenizer_encode(tok, text, len, ids, max_ids, &n, err) != CM_OK)
		return -1;
	return n;
}

static void
test_invalid_utf8(const cm_tokenizer *tok)
{
	static const struct
	{
		const char *text;
		size_t		len;
		size_t		offset;
	}			cases[] = {
		{"ok \x80 lone continuation", 22, 3},
		{"cut \xE2\x82", 6, 4},
		{"overlong \xC0\xAF", 11, 9},
		{"overlong3 \xE0\x80\xAF", 13, 10},
		{"surrogate \xED\xA0\x80", 13, 10},
		{"too big \xF4\x90\x80\x80", 12, 8},
		{"\xFF", 1, 0},
		{"abc\xF0\x9F\x90", 6, 3},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int32_t		ids[77];
		int			n = 123;
		cm_error	err = {0};
		char		expect[64];
		cm_status	st = cm_tokenizer_encode(tok, cases[i].text, cases[i].len, ids, 77, &n, &err);

		snprintf(expect, sizeof(expect), "byte offset %zu", cases[i].offset);
		CHECK(st == CM_ERR_INPUT && err.status == CM_ERR_INPUT,
			  "invalid UTF-8 case %zu: status %d", i, (int) st);
		CHECK(strstr(err.message, expect) != NULL && strstr(err.message, "UTF-8") != NULL,
			  "invalid UTF-8 case %zu: message \"%s\" lacks \"%s\"", i, err.message, expect);
		CHECK(n == 0, "invalid UTF-8 case %zu: n_ids is %d", i, n);
	}
}

static void
test_special_inputs(const cm_tokenizer *tok, const cJSON *vocab)
{
	int32_t		bos = vocab_id(vocab, "<|startoftext|>");
	int32_t		eos = vocab_id(vocab, "<|endoftext|>");
	int32_t		ids[77];
	cm_error	err = {0};
	int			n;

	CHECK(bos >= 0 && eos >= 0 && bos == cm_tokenizer_bos_id(tok) &&
		  eos == cm_tokenizer_eos_id(tok), "BOS/EOS ids from the vocabulary strings");

	/* empty and whitespace-only: just BOS EOS */
	n = encode(tok, "", 0, ids, 77, &err);
	CHECK(n == 2 && ids[0] == bos && ids[1] == eos, "empty text gives [BOS, EOS]");
	n = encode(tok, NULL, 0, ids, 77, &err);
	CHECK(n == 2 && ids[0] == bos && ids[1] == eos, "NULL, 0 gives [BOS, EOS]");
	n = encode(tok, " \t\r\n\xC2\xA0\xE2\x80\x83 ", 10, ids, 77, &err);
	CHECK(n == 2, "whitespace only gives [BOS, EOS], got %d ids", n);

	/* NUL inside len is an ordinary (non-letter) character, byte symbol U+0100 */
	{
		int32_t		a_end = vocab_id(vocab, "a</w>");
		int32_t		nul_end = vocab_id(vocab, "\xC4\x80</w>");
		int32_t		b_end = vocab_id(vocab, "b</w>");

		n = encode(tok, "a\0b", 3, ids, 77, &err);
		CHECK(n == 5 && ids[1] == a_end && ids[2] == nul_end && ids[3] == b_end &&
			  ids[4] == eos, "NUL byte inside the text is tokenized, got %d ids", n);
	}

	/* an upper-case special token is plain text after lower-casing, not special */
	n = encode(tok, "<|STARTOFTEXT|>", 15, ids, 77, &err);
	CHECK(n > 3, "upper-case <|STARTOFTEXT|> is not the special token (%d ids)", n);
	for (int i = 1; i + 1 < n; i++)
		CHECK(ids[i] != bos, "upper-case special token gave BOS at %d", i);

	/* a literal special token glued inside a word splits it */
	n = encode(tok, "x<|endoftext|>y", 15, ids, 77, &err);
	CHECK(n == 5 && ids[1] == vocab_id(vocab, "x</w>") && ids[2] == eos &&
		  ids[3] == vocab_id(vocab, "y</w>"), "special token inside a word");

	/* bad arguments */
	CHECK(cm_tokenizer_encode(tok, "a", 1, ids, 1, &n, &err) == CM_ERR_INPUT &&
		  strstr(err.message, "max_ids") != NULL, "max_ids < 2 is refused");
	CHECK(cm_tokenizer_encode(tok, NULL, 5, ids, 77, &n, &err) == CM_ERR_INPUT,
		  "NULL text with a length is refused");
}

static void
test_truncation(const cm_tokenizer *tok)
{
	const char *text = "a photo of a cat";
	int32_t		full[77],
				cut[77];
	cm_error	err = {0};
	int			n_full = encode(tok, text, strlen(text), full, 77, &err);

	CHECK(n_full > 5, "short caption encodes");
	for (int max_ids = 2; max_ids < n_full; max_ids++)
	{
		int			n = encode(tok, text, strlen(text), cut, max_ids, &err);

		CHECK(n == max_ids && cut[0] == full[0] && cut[n - 1] == cm_tokenizer_eos_id(tok) &&
			  memcmp(cut, full, (size_t) (n - 1) * sizeof(int32_t)) == 0,
			  "truncation to %d keeps BOS, the first tokens and EOS", max_ids);
	}
}

static char *
repeat(const char *unit, size_t total, size_t *len)
{
	size_t		ulen = strlen(unit);
	char	   *s = malloc(total);

	*len = total - total % ulen;
	for (size_t i = 0; i < *len; i += ulen)
		memcpy(s + i, unit, ulen);
	return s;
}

static void
test_huge_texts(const cm_tokenizer *tok)
{
	static const char *units[] = {
		"the quick brown fox jumps over the lazy dog ",
		"x",					/* one 10 MB word */
		"\xCC\x81\xCC\xA3\xCD\x85",	/* 10 MB of combining marks, mixed classes */
		"\xE6\x97\xA5\xE6\x9C\xAC",	/* 10 MB of CJK, no spaces */
		"!?",					/* one 10 MB punctuation run */
		"1",					/* 10 M single-digit pre-tokens */
	};

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++)
	{
		size_t		len;
		char	   *big = repeat(units[u], (size_t) 10 << 20, &len);
		int32_t		ids[77],
					small_ids[77];
		cm_error	err = {0};
		int			n = encode(tok, big, len, ids, 77, &err);
		int			n_small;

		CHECK(n == 77 && ids[0] == cm_tokenizer_bos_id(tok) &&
			  ids[76] == cm_tokenizer_eos_id(tok),
			  "10 MB text %zu: %d ids (%s)", u, n, err.message);

		/* the first tokens are those of a 4 KiB prefix cut at a unit boundary */
		n_small = encode(tok, big, 4096 - 4096 % strlen(units[u]), small_ids, 77, &err);
		if (u == 0)
			CHECK(n_small == 77 && same_ids(ids, n, small_ids, n_small),
				  "10 MB of words starts like its prefix");
		else
			CHECK(n_small == 77 && memcmp(ids, small_ids, 60 * sizeof(int32_t)) == 0,
				  "10 MB run %zu starts like its prefix", u);
		free(big);
	}
}

/* ------------------------------------------------ hand-made vocabularies */

static char *tmp_dir;

static char *
tmp_path(const char *name)
{
	size_t		n = strlen(tmp_dir) + strlen(name) + 2;
	char	   *p = malloc(n);

	snprintf(p, n, "%s/%s", tmp_dir, name);
	return p;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}

/* Write both files, load them, and expect failure with status and words. */
static void
expect_load_error(const char *what, const char *vocab, const char *merges,
				  cm_status status, const char *needle)
{
	char	   *vp = tmp_path("vocab.json");
	char	   *mp = tmp_path("merges.txt");
	cm_error	err = {0};
	cm_tokenizer *tok;

	write_file(vp, vocab, strlen(vocab));
	write_file(mp, merges, strlen(merges));
	tok = cm_tokenizer_load(vp, mp, &err);
	CHECK(tok == NULL && err.status == status && strstr(err.message, needle) != NULL,
		  "%s: status %d, message \"%s\" (want status %d with \"%s\")",
		  what, (int) err.status, err.message, (int) status, needle);
	cm_tokenizer_free(tok);
	unlink(vp);
	unlink(mp);
	free(vp);
	free(mp);
}

#define SPECIALS "\"<|startoftext|>\": 0, \"<|endoftext|>\": 1"

static void
test_broken_files(void)
{
	char		templ[] = "/tmp/cm_tokenizer_XXXXXX";
	cm_error	err = {0};

	tmp_dir = mkdtemp(templ);
	CHECK(tmp_dir != NULL, "mkdtemp");
	if (tmp_dir == NULL)
		return;

	expect_load_error("empty vocab", "", "", CM_ERR_MODEL, "empty");
	expect_load_error("truncated JSON", "{\"a\": 0, ", "", CM_ERR_MODEL, "not valid JSON");
	expect_load_error("trailing data", "{" SPECIALS "} x", "", CM_ERR_MODEL, "after the JSON");
	expect_load_error("array vocab", "[1, 2]", "", CM_ERR_MODEL, "JSON object");
	expect_load_error("string id", "{" SPECIALS ", \"a\": \"2\"}", "", CM_ERR_MODEL,
					  "not a number");
	expect_load_error("fractional id", "{" SPECIALS ", \"a\": 1.5}", "", CM_ERR_MODEL,
					  "integers");
	expect_load_error("negative id", "{" SPECIALS ", \"a\": -1}", "", CM_ERR_MODEL,
					  "integers");
	expect_load_error("out of range id", "{" SPECIALS ", \"a\": 3}", "", CM_ERR_MODEL,
					  "integers");
	expect_load_error("huge id", "{" SPECIALS ", \"a\": 1e300}", "", CM_ERR_MODEL,
					  "integers");
	expect_load_error("duplicate id", "{" SPECIALS ", \"a\": 1}", "", CM_ERR_MODEL,
					  "given to both");
	expect_load_error("duplicate token", "{" SPECIALS ", \"a\": 2, \"a\": 3}", "",
					  CM_ERR_MODEL, "more than once");
	expect_load_error("missing BOS", "{\"<|endoftext|>\": 0, \"a\": 1}", "", CM_ERR_MODEL,
					  "<|startoftext|>");
	expect_load_error("missing EOS", "{\"<|startoftext|>\": 0, \"a\": 1}", "", CM_ERR_MODEL,
					  "<|endoftext|>");
	expect_load_error("empty object", "{}", "", CM_ERR_MODEL, "no tokens");
	expect_load_error("unknown merge symbol",
					  "{" SPECIALS ", \"a\": 2, \"b\": 3, \"ab\": 4}",
					  "#version: 0.2\na b\na zz\n", CM_ERR_MODEL, "line 3: symbol \"zz\"");
	expect_load_error("merged symbol missing",
					  "{" SPECIALS ", \"a\": 2, \"b\": 3}", "a b\n", CM_ERR_MODEL,
					  "line 1: merged symbol \"ab\"");
	expect_load_error("three fields", "{" SPECIALS ", \"a\": 2, \"b\": 3, \"ab\": 4}",
					  "a b c\n", CM_ERR_MODEL, "line 1: expected two symbols");
	expect_load_error("one field", "{" SPECIALS ", \"a\": 2, \"b\": 3, \"ab\": 4}",
					  "#version: 0.2\nab\n", CM_ERR_MODEL, "line 2: expected two symbols");

	/* files that are not there or not files */
	CHECK(cm_tokenizer_load("/nonexistent/vocab.json", "/nonexistent/merges.txt", &err) == NULL &&
		  err.status == CM_ERR_IO && strstr(err.message, "/nonexistent/vocab.json") != NULL,
		  "missing file: %s", err.message);
	CHECK(cm_tokenizer_load(tmp_dir, tmp_dir, &err) == NULL && err.status == CM_ERR_IO &&
		  strstr(err.message, "not a regular file") != NULL, "directory: %s", err.message);

	rmdir(tmp_dir);
}

/*
 * Merges apply in rank order, not by longest vocabulary match: with "b c</w>"
 * ranked before "a b", "abc" is a + bc</w>, though "ab" and "abc</w>"-free
 * greedy matching would take "ab" first.  CRLF lines and a missing final
 * newline are accepted; byte symbols absent from the vocabulary become the
 * unknown token (<|endoftext|>).
 */
static void
test_rank_order(void)
{
	const char *vocab = "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"a\": 2, \"b\": 3, "
		"\"c\": 4, \"c</w>\": 5, \"ab\": 6, \"bc</w>\": 7, \"abc</w>\": 8, \"b</w>\": 9, "
		"\"ab</w>\": 10}";
	const char *merges = "#version: 0.2\r\nb c</w>\r\na b\r\nab c</w>\r\na b</w>";
	cm_error	err = {0};
	cm_tokenizer *tok = cm_tokenizer_load_from_memory(vocab, strlen(vocab), merges,
													  strlen(merges), &err);
	int32_t		ids[16];
	int			n;

	CHECK(tok != NULL, "hand-made vocabulary loads: %s", err.message);
	if (tok == NULL)
		return;
	CHECK(cm_tokenizer_vocab_size(tok) == 11, "hand-made vocab size");

	n = encode(tok, "abc", 3, ids, 16, &err);
	CHECK(n == 4 && ids[1] == 2 && ids[2] == 7, "abc -> a bc</w> by rank (got %d ids: %d %d)",
		  n, n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1);
	n = encode(tok, "ab", 2, ids, 16, &err);
	CHECK(n == 3 && ids[1] == 10, "ab -> ab</w> via the last merge line");
	n = encode(tok, "abab", 4, ids, 16, &err);
	CHECK(n == 4 && ids[1] == 6 && ids[2] == 10, "abab -> ab ab</w>");
	n = encode(tok, "z", 1, ids, 16, &err);
	CHECK(n == 3 && ids[1] == 1, "a byte symbol missing from vocab is the unknown token");
	cm_tokenizer_free(tok);

	/* the loader keeps no pointer into the caller's buffers */
	{
		char	   *v = strdup(vocab);
		char	   *m = strdup(merges);

		tok = cm_tokenizer_load_from_memory(v, strlen(v), m, strlen(m), &err);
		memset(v, 0, strlen(v));
		memset(m, 0, strlen(m));
		free(v);
		free(m);
		n = tok ? encode(tok, "abc", 3, ids, 16, &err) : -1;
		CHECK(n == 4 && ids[2] == 7, "tokenizer independent of the loaded buffers");
		cm_tokenizer_free(tok);
	}
}

/* ---------------------------------------------------------- thread safety */

typedef struct thread_job
{
	const cm_tokenizer *tok;
	const cJSON *texts;
	int32_t		ids[22][77];
	int			n[22];
	int			failures;
} thread_job;

static void *
encode_all(void *arg)
{
	thread_job *job = arg;

	for (int round = 0; round < 200; round++)
	{
		for (int i = 0; i < cJSON_GetArraySize(job->texts) && i < 22; i++)
		{
			const char *t = cJSON_GetArrayItem(job->texts, i)->valuestring;
			int32_t		ids[77];
			int			n;
			cm_error	err;

			if (cm_tokenizer_encode(job->tok, t, strlen(t), ids, 77, &n, &err) != CM_OK)
				job->failures++;
			else if (round == 0)
			{
				memcpy(job->ids[i], ids, sizeof(ids));
				job->n[i] = n;
			}
			else if (!same_ids(ids, n, job->ids[i], job->n[i]))
				job->failures++;
		}
	}
	return NULL;
}

static void
test_threads(const cm_tokenizer *tok)
{
	cJSON	   *golden = read_json(GOLDEN_DIR "/expected.json");
	thread_job *jobs = calloc(4, sizeof(thread_job));
	pthread_t	threads[4];

	if (golden == NULL || jobs == NULL)
	{
		CHECK(false, "thread test setup");
		cJSON_Delete(golden);
		free(jobs);
		return;
	}
	for (int t = 0; t < 4; t++)
	{
		jobs[t].tok = tok;
		jobs[t].texts = cJSON_GetObjectItemCaseSensitive(golden, "texts");
		CHECK(pthread_create(&threads[t], NULL, encode_all, &jobs[t]) == 0, "pthread_create");
	}
	for (int t = 0; t < 4; t++)
		pthread_join(threads[t], NULL);
	for (int t = 0; t < 4; t++)
	{
		CHECK(jobs[t].failures == 0, "thread %d: %d inconsistent encodings", t, jobs[t].failures);
		for (int i = 0; i < 22; i++)
			CHECK(same_ids(jobs[t].ids[i], jobs[t].n[i], jobs[0].ids[i], jobs[0].n[i]),
				  "thread %d text %d agrees with thread 0", t, i);
	}
	free(jobs);
	cJSON_Delete(golden);
}

/*
 * GPT-2's byte map as bytes_to_unicode() defines it: the printable bytes
 * '!'..'~', 0xA1..0xAC, 0xAE..0xFF map to themselves, every other byte to
 * 256, 257, ... in byte order.
 */
static void
test_byte_map(void)
{
	int32_t		next = 256;
	int			same = 0;

	for (int b = 0; b < 256; b++)
	{
		bool		printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
			(b >= 0xAE && b <= 0xFF);
		int32_t		want = printable ? b : next++;

		same += cm_bpe_byte_char((unsigned char) b) == want;
	}
	CHECK(same == 256 && next == 256 + 68, "byte map: %d of 256 bytes as GPT-2 maps them", same);
}

int
main(void)
{
	cm_tokenizer *tok;
	cJSON	   *vocab;

	test_byte_map();
	test_golden();
	test_reference_texts();

	tok = load_model_tokenizer("tiny-clip-quickgelu-f32");
	vocab = read_json(GOLDEN_DIR "/tiny-clip-quickgelu-f32/vocab.json");
	CHECK(vocab != NULL, "read vocab.json in the test");
	if (tok != NULL && vocab != NULL)
	{
		test_invalid_utf8(tok);
		test_special_inputs(tok, vocab);
		test_truncation(tok);
		test_huge_texts(tok);
		test_threads(tok);
	}
	cJSON_Delete(vocab);
	cm_tokenizer_free(tok);

	test_broken_files();
	test_rank_order();

	printf("test_tokenizer: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
