/*
 * fuzz_vocab.c
 *	  libFuzzer target: arbitrary bytes as vocab.json + merges.txt (split at
 *	  the first NUL byte); a tokenizer that loads must then encode safely.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(bool cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_vocab: invariant broken: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *texts[] = {
		"a photo of a cat", "don't <|endoftext|>stop", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 123!!",
		"", "\x01\x02\xFE\xFF"
	};
	const uint8_t *nul = memchr(data, 0, size);
	size_t		vocab_len = nul ? (size_t) (nul - data) : size;
	const char *merges = nul ? (const char *) nul + 1 : "";
	size_t		merges_len = nul ? size - vocab_len - 1 : 0;
	cm_error	err = {0};
	cm_tokenizer *tok;

	tok = cm_tokenizer_load_from_memory((const char *) data, vocab_len, merges, merges_len,
										&err);
	if (tok == NULL)
	{
		require(err.status == CM_ERR_MODEL || err.status == CM_ERR_NOMEM,
				"a rejected vocabulary is CM_ERR_MODEL");
		require(err.message[0] != '\0', "a rejected vocabulary has a message");
		return 0;
	}
	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
	{
		int32_t		ids[77];
		int			n = 0;
		cm_status	st = cm_tokenizer_encode(tok, texts[t], strlen(texts[t]), ids, 77, &n,
											 &err);

		if (t == 4)
		{
			require(st == CM_ERR_INPUT, "invalid UTF-8 refused");
			continue;
		}
		require(st == CM_OK, "valid text encodes with any loaded vocabulary");
		require(n >= 2 && n <= 77, "id count within bounds");
		require(ids[0] == cm_tokenizer_bos_id(tok) && ids[n - 1] == cm_tokenizer_eos_id(tok),
				"BOS first, EOS last");
		for (int i = 0; i < n; i++)
			require(ids[i] >= 0 && ids[i] < cm_tokenizer_vocab_size(tok),
					"ids inside the vocabulary");
	}
	cm_tokenizer_free(tok);
	return 0;
}
