/*
 * fuzz_tokenizer_openclip.c
 *	  libFuzzer target: open_clip's SimpleTokenizer.  The first byte picks
 *	  the mode: even, the rest is a merges file (its vocabulary is built and
 *	  hostile and ordinary texts are encoded); odd, the rest is a text,
 *	  cleaned (ftfy, HTML entities, whitespace, lower case) and encoded with
 *	  test/golden2's merges file.  Run from the repository root (make -C
 *	  encoders fuzz-run).
 */
#include "config.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 77

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cm_tokenizer *golden_tok;

static void
require(bool cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_tokenizer_openclip: invariant broken: %s\n", what);
		abort();
	}
}

/* Encode and check what every successful encode must give. */
static void
encode_checked(const cm_tokenizer *tok, const char *text, size_t len)
{
	int32_t		ids[MAX_IDS];
	int			n = -1;
	cm_error	err = {0};

	if (cm_tokenizer_encode(tok, text, len, ids, MAX_IDS, &n, &err) != CM_OK)
	{
		require(err.message[0] != '\0', "a failure has a message");
		return;
	}
	require(n >= 2 && n <= MAX_IDS, "id count within bounds");
	require(ids[0] == cm_tokenizer_bos_id(tok) && ids[n - 1] == cm_tokenizer_eos_id(tok),
			"<start_of_text> first, <end_of_text> last");
	for (int i = 0; i < n; i++)
		require(ids[i] >= 0 && ids[i] < cm_tokenizer_vocab_size(tok), "ids inside the vocabulary");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *texts[] = {
		"a photo of a cat", "&amp;amp;lt;b&gt; &#x1F431; &#128; &NTILDE; &notin &",
		"\xE2\x80\x9Csmart\xE2\x80\x9D \xEF\xAC\x81ne \xEF\xBC\xA1\xEF\xBC\xA2 \xC2\x85 \x1B[31mred\x1B[0m",
		"<start_of_text>x<end_of_text> <\xC5\xBFtart_of_text> it'\xC5\xBF", "", "  \t\n ",
		"\xCE\xA3\xCE\x8A\xCE\xA3 \xC4\xB0I"
	};
	cm_error	err = {0};

	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0)
	{
		cm_tokenizer *tok = cm_tokenizer_load_openclip((const char *) data + 1, size - 1, true, &err);

		if (tok == NULL)
		{
			require(err.message[0] != '\0', "a failed load has a message");
			return 0;
		}
		require(cm_tokenizer_vocab_size(tok) >= 514, "256 byte symbols twice and the two specials");
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
			encode_checked(tok, texts[i], strlen(texts[i]));
		cm_tokenizer_free(tok);
		return 0;
	}
	if (golden_tok == NULL)
	{
		char	   *merges;
		size_t		len;

		if (cm_read_gzip_file("test/golden2/tiny-openclip/bpe_simple_vocab.txt.gz", 1 << 20, 1 << 24,
							  &merges, &len, &err) != CM_OK ||
			(golden_tok = cm_tokenizer_load_openclip(merges, len, true, &err)) == NULL)
		{
			fprintf(stderr, "fuzz_tokenizer_openclip: %s (run from the repository root)\n", err.message);
			abort();
		}
		free(merges);
	}
	encode_checked(golden_tok, (const char *) data + 1, size - 1);
	return 0;
}
