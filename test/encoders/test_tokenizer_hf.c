/*
 * test_tokenizer_hf.c
 *	  Hostile tokenizer.json and spiece.model files: every failure a clean
 *	  status (run under ASan+UBSan with leak detection too), and the work of
 *	  an encode bounded whatever the file's pieces and normalizers are.
 *	  Run from the repository root (make -C encoders test).
 */
#include "runtime_test_util.h"
#include "tokenizer_hf.h"

#define SIGLIP_SPM "test/golden2/tiny-siglip/spiece.model"
#define XLMR_JSON "test/golden2/tiny-clip-tokenizerjson/tokenizer.json"

static cm_hf_tokenizer *
from_json(const char *json, cm_error *err)
{
	memset(err, 0, sizeof(*err));
	return cm_hf_tokenizer_from_json(json, strlen(json), "tokenizer.json", err);
}

/* A text of n copies of the string unit. */
static char *
repeat(const char *unit, size_t n)
{
	size_t		k = strlen(unit);
	char	   *t = malloc(n * k + 1);

	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		memcpy(t + i * k, unit, k);
	t[n * k] = '\0';
	return t;
}

/*
 * Token ids of a post-processor must be whole numbers inside the vocabulary;
 * 1e300 is checked before it is converted (the conversion of a double that
 * does not fit an int is undefined behaviour).
 */
static void
test_post_processor_ids(void)
{
	static const char *const ids[] = {"1e300", "-1e300", "-1", "2.5", "4194304", "7"};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
	{
		char		json[1024];
		cm_error	err;
		cm_hf_tokenizer *tok;

		snprintf(json, sizeof(json),
				 "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
				 "\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2, \"a\": 3}}, "
				 "\"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"[CLS]\", %s], "
				 "\"sep\": [\"[SEP]\", 2]}}", ids[i]);
		tok = from_json(json, &err);
		RT_CHECK(tok == NULL && err.status == CM_ERR_MODEL && strstr(err.message, "post-processor") != NULL,
				 "BertProcessing cls id %s: status %d, %s", ids[i], err.status, err.message);
		cm_hf_tokenizer_free(tok);

		snprintf(json, sizeof(json),
				 "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
				 "\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"a\": 2}}, "
				 "\"post_processor\": {\"type\": \"TemplateProcessing\", "
				 "\"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\"}}, {\"Sequence\": {\"id\": \"A\"}}], "
				 "\"special_tokens\": {\"[CLS]\": {\"ids\": [%s]}}}}", ids[i]);
		tok = from_json(json, &err);
		RT_CHECK(tok == NULL && err.status == CM_ERR_MODEL && strstr(err.message, "post-processor") != NULL,
				 "TemplateProcessing id %s: status %d, %s", ids[i], err.status, err.message);
		cm_hf_tokenizer_free(tok);
	}
}

/*
 * A Unigram vocabulary with a piece of 4,000 bytes: the lattice walks the
 * pieces that match, so a text the long piece does not match costs what any
 * text costs (this took 41 s for a 4 KB text when every length up to the
 * longest piece was hashed at every position), a text it matches is
 * tokenized with it, and a vocabulary whose long pieces match at every
 * position of a long text is stopped by the step limit.
 */
static void
test_unigram_long_piece(void)
{
	char	   *piece = repeat("b", 4000);
	size_t		cap = 8000 + 256;
	char	   *json = malloc(cap);
	cm_error	err;
	cm_hf_tokenizer *tok = NULL;
	int32_t		ids[64];
	int			n = 0;

	if (piece == NULL || json == NULL)
	{
		RT_CHECK(false, "allocate the long piece");
		free(piece);
		free(json);
		return;
	}
	snprintf(json, cap,
			 "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": "
			 "[[\"<unk>\", 0], [\"a\", -1], [\"b\", -3], [\"aa\", -1.5], [\"%s\", -2]]}}", piece);
	tok = from_json(json, &err);
	RT_CHECK(tok != NULL, "Unigram with a 4,000-byte piece loads: %s", err.message);
	if (tok != NULL)
	{
		char	   *as = repeat("a", 4000);
		char	   *bs = repeat("b", 4000);
		char	   *many = repeat("b", 200000);

		RT_CHECK(as && cm_hf_tokenizer_encode(tok, as, 4000, ids, 64, &n, &err) == CM_OK &&
				 n == 64 && ids[0] == 3, "4,000 a's: %d ids, first %d: %s", n, n > 0 ? ids[0] : -1, err.message);
		RT_CHECK(bs && cm_hf_tokenizer_encode(tok, bs, 4000, ids, 64, &n, &err) == CM_OK &&
				 n == 1 && ids[0] == 4, "4,000 b's: the long piece (%d ids): %s", n, err.message);
		memset(&err, 0, sizeof(err));
		RT_CHECK(many && cm_hf_tokenizer_encode(tok, many, 200000, ids, 64, &n, &err) == CM_ERR_LIMIT &&
				 err.limit == CM_LIMIT_OTHER && strstr(err.message, "lattice") != NULL,
				 "200,000 b's: the lattice's step limit (status %d: %s)", err.status, err.message);
		free(as);
		free(bs);
		free(many);
	}
	cm_hf_tokenizer_free(tok);
	free(piece);
	free(json);
}

/*
 * Normalizers and pre-tokenizers that multiply the text (a long Replace
 * content, a long Metaspace replacement) are stopped at the working-text
 * limit with CM_ERR_LIMIT, not by exhausting the server's memory.
 */
static void
test_multiplying_normalizers(void)
{
	char	   *big = repeat("x", 100000);
	char	   *json = malloc(100000 + 512);
	char	   *text = repeat("a b ", 2000);
	cm_error	err;
	int32_t		ids[16];
	int			n = 0;

	if (big == NULL || json == NULL || text == NULL)
	{
		RT_CHECK(false, "allocate");
		free(big);
		free(json);
		free(text);
		return;
	}
	for (int kind = 0; kind < 2; kind++)
	{
		cm_hf_tokenizer *tok;

		if (kind == 0)
			snprintf(json, 100000 + 512,
					 "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"<unk>\", 0], [\"x\", -1]]}, "
					 "\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"%s\"}}",
					 big);
		else
			snprintf(json, 100000 + 512,
					 "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"<unk>\", 0], [\"x\", -1]]}, "
					 "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"%s\", \"split\": false}}",
					 big);
		tok = from_json(json, &err);
		RT_CHECK(tok != NULL, "multiplying %s loads: %s", kind ? "Metaspace" : "Replace", err.message);
		if (tok == NULL)
			continue;
		memset(&err, 0, sizeof(err));
		RT_CHECK(cm_hf_tokenizer_encode(tok, text, strlen(text), ids, 16, &n, &err) == CM_ERR_LIMIT &&
				 err.limit == CM_LIMIT_OTHER,
				 "%s x 100,000 on 2,000 words: status %d: %s", kind ? "Metaspace" : "Replace", err.status,
				 err.message);
		/* a short text still tokenizes */
		RT_CHECK(cm_hf_tokenizer_encode(tok, "a", 1, ids, 16, &n, &err) == CM_OK && n == 16,
				 "%s on one word: %d ids: %s", kind ? "Metaspace" : "Replace", n, err.message);
		cm_hf_tokenizer_free(tok);
	}
	free(big);
	free(json);
	free(text);
}

/* Cut-off files: every prefix (a sample of them for the long ones) is refused or loads, cleanly. */
static void
test_prefixes(void)
{
	size_t		len = 0;
	char	   *spm = rt_read_file(SIGLIP_SPM, &len);
	char	   *json;
	int			loaded = 0,
				refused = 0;

	RT_CHECK(spm != NULL, "read " SIGLIP_SPM);
	for (size_t k = 0; spm != NULL && k < len; k += k < 4096 ? 1 : 997)
	{
		cm_error	err = {0};
		cm_hf_tokenizer *tok = cm_hf_tokenizer_from_spm_siglip((const unsigned char *) spm, k,
															   "spiece.model", true, &err);

		if (tok != NULL)
		{
			int32_t		ids[64];
			int			n = 0;

			loaded++;
			if (cm_hf_tokenizer_encode(tok, "a photo of a cat", 16, ids, 64, &n, &err) == CM_OK)
				RT_CHECK(n >= 1 && n <= 64, "prefix %zu: %d ids", k, n);
		}
		else
		{
			refused++;
			RT_CHECK(err.message[0] != '\0' && (err.status == CM_ERR_MODEL || err.status == CM_ERR_UNSUPPORTED),
					 "spiece.model prefix %zu: status %d", k, err.status);
		}
		cm_hf_tokenizer_free(tok);
	}
	printf("  spiece.model prefixes: %d refused, %d load\n", refused, loaded);
	free(spm);

	json = rt_read_file(XLMR_JSON, &len);
	RT_CHECK(json != NULL, "read " XLMR_JSON);
	while (json != NULL && len > 0 && json[len - 1] != '}')
		len--;					/* a prefix that stops after the final brace is whole */
	for (size_t k = 0; json != NULL && k < len; k += 1 + k / 8)
	{
		cm_error	err = {0};
		cm_hf_tokenizer *tok = cm_hf_tokenizer_from_json(json, k, "tokenizer.json", &err);

		RT_CHECK(tok == NULL && err.status == CM_ERR_MODEL, "tokenizer.json prefix %zu: status %d", k,
				 err.status);
		cm_hf_tokenizer_free(tok);
	}
	free(json);
}

int
main(void)
{
	test_post_processor_ids();
	test_unigram_long_piece();
	test_multiplying_normalizers();
	test_prefixes();
	return rt_summary("test_tokenizer_hf");
}
