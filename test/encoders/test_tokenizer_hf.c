/*
 * test_tokenizer_hf.c
 *	  Hostile tokenizer.json and spiece.model files: every failure a clean
 *	  status (run under ASan+UBSan with leak detection too), and the work of
 *	  an encode bounded whatever the file's pieces and normalizers are.
 *	  Run from the repository root (make -C encoders test).
 */
#include "runtime_test_util.h"
#include "tokenizer_hf.h"

static cm_hf_tokenizer *
from_json(const char *json, cm_error *err)
{
	memset(err, 0, sizeof(*err));
	return cm_hf_tokenizer_from_json(json, strlen(json), "tokenizer.json", err);
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

int
main(void)
{
	test_post_processor_ids();
	return rt_summary("test_tokenizer_hf");
}
