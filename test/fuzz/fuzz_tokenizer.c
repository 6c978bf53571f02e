/*
 * fuzz_tokenizer.c
 *	  libFuzzer target: tokenize arbitrary bytes with the golden vocabulary and
 *	  check the invariants of the output, the UTF-8 verdict and normalisation.
 *	  Run from the repository root (make -C encoders fuzz-run).
 */
#include "tokenizer.h"
#include "tokenizer_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define SHORT_MAX 77
#define LONG_MAX_IDS 1024

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cm_tokenizer *golden_tok;

static void
require(bool cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_tokenizer: invariant broken: %s\n", what);
		abort();
	}
}

/* utf8proc's own verdict, to cross-check the tokenizer's validator. */
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

/* The tokenizer's NFC (own canonical ordering) must equal utf8proc's NFC. */
static void
check_normalisation(const uint8_t *data, size_t size)
{
	cm_tok_codepoints mine = {0};
	cm_error	err = {0};
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t nfc_len;
	size_t		k = 0;

	if (cm_tok_normalize(data, size, &mine, &err) != CM_OK)
	{
		require(err.status == CM_ERR_NOMEM, "normalisation of valid UTF-8 fails");
		cm_tok_codepoints_free(&mine);
		return;
	}
	nfc_len = utf8proc_map(data, (utf8proc_ssize_t) size, &nfc,
						   UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	require(nfc_len >= 0, "utf8proc_map accepts valid UTF-8");
	for (utf8proc_ssize_t i = 0; i < nfc_len;)
	{
		utf8proc_int32_t cp;

		i += utf8proc_iterate(nfc + i, nfc_len - i, &cp);
		if (cp == 0x130)
		{
			require(k + 1 < mine.len && mine.cp[k] == 'i' && mine.cp[k + 1] == 0x307,
					"U+0130 lower-cases to i + U+0307");
			k += 2;
		}
		else
		{
			require(k < mine.len && mine.cp[k] == utf8proc_tolower(cp),
					"normalised text equals utf8proc NFC + lower case");
			k++;
		}
	}
	require(k == mine.len, "normalised text has utf8proc's length");
	free(nfc);
	cm_tok_codepoints_free(&mine);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t		short_ids[SHORT_MAX];
	int32_t    *long_ids;
	int			n_short = -1,
				n_long = -1;
	cm_error	err = {0};
	cm_status	st;
	bool		valid;

	if (golden_tok == NULL)
	{
		golden_tok = cm_tokenizer_load("test/golden/tiny-clip-quickgelu-f32/vocab.json",
									   "test/golden/tiny-clip-quickgelu-f32/merges.txt",
									   &err);
		if (golden_tok == NULL)
		{
			fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n",
					err.message);
			abort();
		}
	}

	valid = utf8proc_says_valid(data, size);
	st = cm_tokenizer_encode(golden_tok, (const char *) data, size, short_ids, SHORT_MAX,
							 &n_short, &err);
	require((st == CM_OK) == valid, "UTF-8 verdict agrees with utf8proc");
	if (st != CM_OK)
	{
		require(st == CM_ERR_INPUT && strstr(err.message, "byte offset") != NULL,
				"invalid UTF-8 is CM_ERR_INPUT with an offset");
		return 0;
	}
	require(n_short >= 2 && n_short <= SHORT_MAX, "id count within bounds");
	require(short_ids[0] == cm_tokenizer_bos_id(golden_tok), "BOS first");
	require(short_ids[n_short - 1] == cm_tokenizer_eos_id(golden_tok), "EOS last");
	for (int i = 0; i < n_short; i++)
		require(short_ids[i] >= 0 && short_ids[i] < cm_tokenizer_vocab_size(golden_tok),
				"ids inside the vocabulary");

	/* a longer limit gives the same prefix: truncation only cuts */
	long_ids = malloc(LONG_MAX_IDS * sizeof(int32_t));
	if (long_ids == NULL)
		return 0;
	st = cm_tokenizer_encode(golden_tok, (const char *) data, size, long_ids, LONG_MAX_IDS,
							 &n_long, &err);
	require(st == CM_OK, "valid text encodes at any limit");
	require(n_long >= n_short, "a larger limit never gives fewer ids");
	require(memcmp(short_ids, long_ids, (size_t) (n_short - 1) * sizeof(int32_t)) == 0,
			"truncated ids are a prefix of the untruncated ones");
	if (n_long < SHORT_MAX)
		require(n_long == n_short, "short texts are not truncated");
	free(long_ids);

	check_normalisation(data, size);
	return 0;
}
