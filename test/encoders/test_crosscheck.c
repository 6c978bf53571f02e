/*
 * test_crosscheck.c
 *	  Token-for-token cross-check of every tokenizer the runtime implements
 *	  against an independent implementation, on 1,500 generated texts across
 *	  the Unicode general categories (whitespace of every kind, special-token
 *	  literals, emoji and combining sequences, case traps, HTML entities, ...).
 *	  The texts and the reference ids are in test/encoders/data/crosscheck/,
 *	  made by tools/token_crosscheck/crosscheck.mjs:
 *	    - tokenizer.json (Gemma BPE with byte fallback, XLM-R Unigram with a
 *	      precompiled charsmap, the project's own BERT WordPiece uncased and
 *	      cased, a RoBERTa-style byte-level BPE): Hugging Face's tokenizers
 *	      library (the Rust code transformers runs), which every text must
 *	      match; @huggingface/transformers' JavaScript ids are counted too
 *	      (it departs from the Rust library on some whitespace and Unicode
 *	      classes: see crosscheck.mjs);
 *	    - open_clip's SimpleTokenizer with its text cleaning: open_clip's
 *	      tokenizer code with the real ftfy (texts ftfy's mojibake repair
 *	      changes are marked "-" and skipped: see text_clean.h);
 *	    - spiece.model read by our own parser (SigLIP's, and one with byte
 *	      fallback and user-defined symbols): libsentencepiece's Encode.
 *	  Every text must give the reference's ids exactly, and the same ids when
 *	  four threads encode every text at once with the one shared tokenizer.
 */
#include "config.h"
#include "runtime_test_util.h"

#include <pthread.h>

#include "tokenizer.h"
#include "tokenizer_hf.h"

#define DATA "test/encoders/data/crosscheck/"
#define MAX_IDS 4096

static cJSON *texts;

/* Decompress a .gz of the data directory. */
static char *
read_gz(const char *name, size_t *len)
{
	char		path[256];
	char	   *text = NULL;
	cm_error	err = {0};

	snprintf(path, sizeof(path), DATA "%s", name);
	RT_CHECK(cm_read_gzip_file(path, 1 << 24, 1 << 26, &text, len, &err) == CM_OK, "%s: %s", path,
			 err.message);
	return text;
}

typedef cm_status (*encode_fn) (const void *tok, const char *text, size_t len, int32_t *ids,
								int max_ids, int *n, cm_error *err);

static cm_status
encode_hf(const void *tok, const char *text, size_t len, int32_t *ids, int max_ids, int *n,
		  cm_error *err)
{
	return cm_hf_tokenizer_encode(tok, text, len, ids, max_ids, n, err);
}

static cm_status
encode_openclip(const void *tok, const char *text, size_t len, int32_t *ids, int max_ids, int *n,
				cm_error *err)
{
	return cm_tokenizer_encode(tok, text, len, ids, max_ids, n, err);
}

/*
 * How many of the texts' id lines in a reference file equal ours (lines
 * of ids, "-" for a skipped text); the ids of each text are in got[t].
 */
static int
count_equal(const char *file, int32_t *const *got, const int *n_got, int n_texts)
{
	size_t		len = 0;
	char	   *ref = read_gz(file, &len);
	char	   *line = ref;
	int			same = 0;

	for (int t = 0; ref != NULL && t < n_texts; t++)
	{
		char	   *end = strchr(line, '\n');
		int			k = 0;
		bool		ok = true;

		if (end == NULL)
			break;
		*end = '\0';
		for (char *p = line; *p != '\0';)
		{
			char	   *q;
			long		v = strtol(p, &q, 10);

			if (q == p)
				break;
			ok = ok && got[t] != NULL && k < n_got[t] && got[t][k] == v;
			k++;
			p = q;
		}
		same += ok && got[t] != NULL && k == n_got[t];
		line = end + 1;
	}
	free(ref);
	return same;
}

#define N_THREADS 4

typedef struct thread_job
{
	const void *tok;
	encode_fn	encode;
	int32_t *const *got;
	const int  *n_got;
	int			n_texts;
	int			differ;
} thread_job;

/* Encode every text again and count results that differ from got[]. */
static void *
encode_again(void *arg)
{
	thread_job *job = arg;
	int32_t    *ids = malloc(MAX_IDS * sizeof(int32_t));

	for (int t = 0; ids != NULL && t < job->n_texts; t++)
	{
		const char *text = cJSON_GetArrayItem(texts, t)->valuestring;
		int			n = 0;
		cm_error	err = {0};
		cm_status	s;

		if (job->got[t] == NULL)
			continue;			/* skipped, or failed single-threaded */
		s = job->encode(job->tok, text, strlen(text), ids, MAX_IDS, &n, &err);
		if (s != CM_OK || n != job->n_got[t] ||
			memcmp(ids, job->got[t], (size_t) n * sizeof(int32_t)) != 0)
			job->differ++;
	}
	if (ids == NULL)
		job->differ = job->n_texts;
	free(ids);
	return NULL;
}

/*
 * The tokenizer is shared by every thread of a process ("thread-safe on a
 * shared tokenizer"): N_THREADS threads encoding at once must give the ids
 * one thread gave.
 */
static void
check_threads(const char *name, const void *tok, encode_fn encode, int32_t *const *got,
			  const int *n_got, int n_texts)
{
	pthread_t	threads[N_THREADS];
	thread_job	jobs[N_THREADS];
	bool		started[N_THREADS];

	for (int i = 0; i < N_THREADS; i++)
	{
		jobs[i] = (thread_job) {tok, encode, got, n_got, n_texts, 0};
		started[i] = pthread_create(&threads[i], NULL, encode_again, &jobs[i]) == 0;
		RT_CHECK(started[i], "%s: start thread %d", name, i);
	}
	for (int i = 0; i < N_THREADS; i++)
	{
		if (!started[i])
			continue;
		pthread_join(threads[i], NULL);
		RT_CHECK(jobs[i].differ == 0, "%s: thread %d: %d texts tokenized otherwise than on one thread",
				 name, i, jobs[i].differ);
	}
}

/*
 * Compare every text's ids with the reference's line; returns disagreements.
 * js_too: also count agreement with transformers.js's ids (ids_NAME.js).
 */
static int
check(const char *name, const void *tok, encode_fn encode, bool js_too)
{
	char		file[64];
	int32_t   **got = calloc((size_t) cJSON_GetArraySize(texts), sizeof(int32_t *));
	int		   *n_got = calloc((size_t) cJSON_GetArraySize(texts), sizeof(int));
	size_t		len = 0;
	char	   *ref;
	char	   *line;
	int32_t    *ids = malloc(MAX_IDS * sizeof(int32_t));
	int			n_texts = cJSON_GetArraySize(texts),
				same = 0,
				skipped = 0,
				shown = 0;

	snprintf(file, sizeof(file), "ids_%s.txt.gz", name);
	ref = read_gz(file, &len);
	if (ref == NULL || ids == NULL)
	{
		free(ref);
		free(ids);
		return n_texts;
	}
	line = ref;
	for (int t = 0; t < n_texts; t++)
	{
		const char *text = cJSON_GetArrayItem(texts, t)->valuestring;
		char	   *end = strchr(line, '\n');
		int32_t		want[MAX_IDS];
		int			nw = 0,
					ng = 0;
		cm_error	err = {0};
		cm_status	s;
		bool		ok;

		RT_CHECK(end != NULL, "%s: reference has %d lines for %d texts", name, t, n_texts);
		if (end == NULL)
			break;
		*end = '\0';
		if (strcmp(line, "-") == 0)
		{
			skipped++;
			line = end + 1;
			continue;
		}
		for (char *p = line; *p != '\0' && nw < MAX_IDS;)
		{
			char	   *q;
			long		v = strtol(p, &q, 10);

			if (q == p)
				break;
			want[nw++] = (int32_t) v;
			p = q;
		}
		s = encode(tok, text, strlen(text), ids, MAX_IDS, &ng, &err);
		ok = s == CM_OK && ng == nw && memcmp(ids, want, (size_t) nw * sizeof(int32_t)) == 0;
		if (s == CM_OK && got != NULL && (got[t] = malloc((size_t) (ng > 0 ? ng : 1) * sizeof(int32_t))) != NULL)
		{
			memcpy(got[t], ids, (size_t) ng * sizeof(int32_t));
			n_got[t] = ng;
		}
		same += ok;
		if (!ok && shown++ < 5)
		{
			fprintf(stderr, "FAIL %s: text %d differs (%d ids, reference %d) %s\n  text: ", name, t, ng, nw,
					s == CM_OK ? "" : err.message);
			for (const char *c = text; *c; c++)
				fprintf(stderr, (unsigned char) *c < 0x20 ? "\\x%02x" : "%c", (unsigned char) *c);
			fprintf(stderr, "\n   got:");
			for (int k = 0; k < ng && k < 400; k++)
				fprintf(stderr, " %d", ids[k]);
			fprintf(stderr, "\n  want:");
			for (int k = 0; k < nw && k < 400; k++)
				fprintf(stderr, " %d", want[k]);
			fprintf(stderr, "\n");
		}
		line = end + 1;
	}
	RT_CHECK(same + skipped == n_texts, "%s: %d of %d texts differ from the reference", name,
			 n_texts - same - skipped, n_texts - skipped);
	printf("  %-17s %4d/%d texts identical", name, same, n_texts - skipped);
	if (skipped)
		printf(" (%d skipped: ftfy's mojibake repair changes them)", skipped);
	if (js_too && got != NULL)
	{
		snprintf(file, sizeof(file), "ids_%s.js.txt.gz", name);
		printf("; transformers.js: %d/%d", count_equal(file, got, n_got, n_texts), n_texts);
	}
	printf("\n");
	if (got != NULL)
		check_threads(name, tok, encode, got, n_got, n_texts);
	for (int t = 0; got != NULL && t < n_texts; t++)
		free(got[t]);
	free(got);
	free(n_got);
	free(ref);
	free(ids);
	return n_texts - same - skipped;
}

static void
check_tokenizer_json(const char *name, const char *dir)
{
	char		path[256];
	size_t		len = 0;
	char	   *json;
	cm_error	err = {0};
	cm_hf_tokenizer *tok;

	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	json = rt_read_file(path, &len);
	RT_CHECK(json != NULL, "read %s", path);
	if (json == NULL)
		return;
	tok = cm_hf_tokenizer_from_json(json, len, path, &err);
	free(json);
	RT_CHECK(tok != NULL, "%s: %s", path, err.message);
	if (tok == NULL)
		return;
	check(name, tok, encode_hf, true);
	cm_hf_tokenizer_free(tok);
}

static void
check_spm(const char *name, const char *path)
{
	size_t		len = 0;
	char	   *model = rt_read_file(path, &len);
	cm_error	err = {0};
	cm_hf_tokenizer *tok;

	RT_CHECK(model != NULL, "read %s", path);
	if (model == NULL)
		return;
	tok = cm_hf_tokenizer_from_spm((const unsigned char *) model, len, path, &err);
	free(model);
	RT_CHECK(tok != NULL, "%s: %s", path, err.message);
	if (tok == NULL)
		return;
	check(name, tok, encode_hf, false);
	cm_hf_tokenizer_free(tok);
}

static void
check_openclip(void)
{
	char	   *merges;
	size_t		len;
	cm_error	err = {0};
	cm_tokenizer *tok;

	if (cm_read_gzip_file("test/golden2/tiny-openclip/bpe_simple_vocab.txt.gz", 1 << 20, 1 << 24,
						  &merges, &len, &err) != CM_OK)
	{
		RT_CHECK(false, "read the open_clip merges: %s", err.message);
		return;
	}
	tok = cm_tokenizer_load_openclip(merges, len, true, &err);
	free(merges);
	RT_CHECK(tok != NULL, "open_clip merges: %s", err.message);
	if (tok == NULL)
		return;
	check("openclip", tok, encode_openclip, false);
	cm_tokenizer_free(tok);
}

int
main(void)
{
	size_t		len = 0;
	char	   *json = read_gz("texts.json.gz", &len);

	texts = json ? cJSON_ParseWithLength(json, len) : NULL;
	free(json);
	RT_CHECK(texts != NULL && cJSON_GetArraySize(texts) >= 1000, "texts.json.gz");
	if (texts == NULL)
		return rt_summary("test_crosscheck");
	check_tokenizer_json("gemma", "test/golden2/tiny-siglip2-gemma");
	check_tokenizer_json("xlmr", "test/golden2/tiny-clip-tokenizerjson");
	check_tokenizer_json("wordpiece", "test/encoders/data/wordpiece");
	check_tokenizer_json("wordpiece_cased", "test/encoders/data/wordpiece_cased");
	check_tokenizer_json("bytelevel", "test/encoders/data/bytelevel");
	check_openclip();
	check_spm("spm_siglip", "test/golden2/tiny-siglip/spiece.model");
	check_spm("spm_bytefallback", DATA "bytefallback.model");
	cJSON_Delete(texts);
	return rt_summary("test_crosscheck");
}
