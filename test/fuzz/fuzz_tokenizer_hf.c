/*
 * fuzz_tokenizer_hf.c
 *	  libFuzzer target: arbitrary bytes as the text given to the tokenizers
 *	  a model directory can ship besides CLIP's vocab.json + merges.txt (which
 *	  fuzz_tokenizer covers), one of each pipeline of tokenizer_hf.c: an
 *	  XLM-R-style Unigram tokenizer.json with a precompiled charsmap (the
 *	  golden tiny CLIP's), SigLIP's SentencePiece spiece.model, SigLIP 2's
 *	  Gemma byte-fallback BPE with lower-casing, a BERT WordPiece and a
 *	  byte-level BPE tokenizer.json.  Invalid UTF-8 (by utf8proc's verdict)
 *	  and only that is refused; ids lie inside the vocabulary, within the
 *	  limit; a smaller limit gives a prefix of a larger one's content; the
 *	  same text gives the same ids; the normalized text is valid UTF-8.
 *	  Run from the repository root (make -C encoders fuzz-run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "config.h"
#include "tokenizer_hf.h"

#define SHORT_MAX 16
#define LONG_MAX_IDS 512

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_TOKENIZERS 5

static cm_hf_tokenizer *toks[N_TOKENIZERS];

static void
require(int cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_tokenizer_hf: invariant broken: %s\n", what);
		abort();
	}
}

static cm_hf_tokenizer *
load(const char *path, bool spm, bool lower)
{
	char	   *text;
	size_t		len;
	cm_error	err = {0};
	cm_hf_tokenizer *tok;

	if (cm_read_file(path, CM_HF_TOKENIZER_MAX_FILE_BYTES, &text, &len, &err) != CM_OK)
	{
		fprintf(stderr, "fuzz_tokenizer_hf: %s (run from the repository root)\n", err.message);
		abort();
	}
	tok = spm ? cm_hf_tokenizer_from_spm_siglip((const unsigned char *) text, len, path, true, &err)
		: cm_hf_tokenizer_from_json(text, len, path, &err);
	free(text);
	require(tok != NULL, err.message);
	cm_hf_tokenizer_set_lower_case(tok, lower);
	return tok;
}

static bool
utf8proc_says_valid(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < size;)
	{
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(data + i, (utf8proc_ssize_t) (size - i), &cp);

		if (n <= 0)
			return false;
		i += (size_t) n;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool		valid = utf8proc_says_valid(data, size);

	if (toks[0] == NULL)
	{
		toks[0] = load("test/golden2/tiny-clip-tokenizerjson/tokenizer.json", false, false);
		toks[1] = load("test/golden2/tiny-siglip/spiece.model", true, false);
		toks[2] = load("test/golden2/tiny-siglip2-gemma/tokenizer.json", false, true);
		toks[3] = load("test/encoders/data/wordpiece/tokenizer.json", false, false);
		toks[4] = load("test/encoders/data/bytelevel/tokenizer.json", false, false);
	}
	for (int t = 0; t < N_TOKENIZERS; t++)
	{
		const cm_hf_tokenizer *tok = toks[t];
		int32_t		vocab = cm_hf_tokenizer_vocab_size(tok);
		int32_t		short_ids[SHORT_MAX];
		int32_t    *long_ids = malloc(sizeof(int32_t) * LONG_MAX_IDS);
		int32_t    *again = malloc(sizeof(int32_t) * LONG_MAX_IDS);
		int			n_short = -1,
					n_long = -1,
					n_again = -1;
		cm_error	err = {0};
		cm_status	st;

		st = cm_hf_tokenizer_encode(tok, (const char *) data, size, long_ids, LONG_MAX_IDS,
									&n_long, &err);
		if (st != CM_OK)
		{
			require(st == CM_ERR_INPUT && !valid && err.message[0] != '\0',
					"only invalid UTF-8 is refused, with a message");
			free(long_ids);
			free(again);
			continue;
		}
		require(valid, "invalid UTF-8 is refused");
		require(n_long >= 0 && n_long <= LONG_MAX_IDS, "the id count is within the limit");
		for (int i = 0; i < n_long; i++)
			require(long_ids[i] >= 0 && long_ids[i] < vocab, "ids lie inside the vocabulary");

		st = cm_hf_tokenizer_encode(tok, (const char *) data, size, again, LONG_MAX_IDS,
									&n_again, &err);
		require(st == CM_OK && n_again == n_long &&
				memcmp(again, long_ids, sizeof(int32_t) * n_long) == 0,
				"the same text gives the same ids");

		st = cm_hf_tokenizer_encode(tok, (const char *) data, size, short_ids, SHORT_MAX,
									&n_short, &err);
		require(st == CM_OK && n_short >= 0 && n_short <= SHORT_MAX && n_short <= n_long,
				"a smaller limit gives at most as many ids");
		if (n_long <= SHORT_MAX)
			require(n_short == n_long && memcmp(short_ids, long_ids, sizeof(int32_t) * n_long) == 0,
					"a text that fits is not truncated");
		else if (n_short > 1)
			require(memcmp(short_ids, long_ids, sizeof(int32_t) * (n_short - 1)) == 0,
					"a truncated text's ids are a prefix of the whole text's");
		free(long_ids);
		free(again);

		{
			char	   *norm = NULL;
			size_t		norm_len = 0;

			st = cm_hf_tokenizer_normalize(tok, (const char *) data, size, &norm, &norm_len, &err);
			require(st == CM_OK && norm != NULL && norm[norm_len] == '\0' &&
					utf8proc_says_valid((const uint8_t *) norm, norm_len),
					"a valid text normalizes to valid UTF-8");
			free(norm);
		}
	}
	return 0;
}
