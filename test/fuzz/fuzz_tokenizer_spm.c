/*
 * fuzz_tokenizer_spm.c
 *	  libFuzzer target: arbitrary bytes as a SentencePiece model (SigLIP's pipeline, then SentencePiece's
 *	  own); a tokenizer that loads must then encode hostile and ordinary texts within the output bound.
 */
#include "tokenizer_hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *texts[] = {
		"a photo of a cat", "</s> <unk> <s> <pad> <mask>", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 123!!",
		"", "   multiple   spaces\tand\n", "\xCE\xA3\xCE\x8A\xCE\xA3 \xC4\xB0I", "\xEF\xAC\x81ne \xEF\xBC\xA1"
	};
	cm_error	err = {0};

	/* as SiglipTokenizer uses it, then as SentencePiece's own Encode */
	for (int mode = 0; mode < 2; mode++)
	{
		cm_hf_tokenizer *tok = mode == 0 ? cm_hf_tokenizer_from_spm_siglip(data, size, "spiece.model", true, &err)
			: cm_hf_tokenizer_from_spm(data, size, "spiece.model", &err);

		if (tok == NULL)
			continue;
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		{
			int32_t		ids[16];
			int			n = -1;

			if (cm_hf_tokenizer_encode(tok, texts[i], strlen(texts[i]), ids, 16, &n, &err) == CM_OK &&
				(n < 0 || n > 16))
			{
				fprintf(stderr, "fuzz_tokenizer_spm: %d ids for a 16-id output\n", n);
				abort();
			}
		}
		cm_hf_tokenizer_free(tok);
	}
	return 0;
}
