/*
 * tokenizer_hf.h
 *	  Tokenizers described as Hugging Face's `tokenizers` library describes
 *	  them (tokenizer.json): normalizers, pre-tokenizers, a BPE, WordPiece or
 *	  Unigram model, a post-processor and added tokens.  A SentencePiece
 *	  spiece.model is read into the same pipeline (spm_model.c), so one
 *	  Unigram and one BPE implementation serve every tokenizer file.
 */
#ifndef CM_TOKENIZER_HF_H
#define CM_TOKENIZER_HF_H

#include "cm_common.h"

typedef struct cm_hf_tokenizer cm_hf_tokenizer;

/* Largest tokenizer.json or spiece.model the loader accepts. */
#define CM_HF_TOKENIZER_MAX_FILE_BYTES ((size_t) 96 << 20)

/*
 * Parse and validate tokenizer.json text (len bytes, no NUL needed).  label
 * names the file in messages.  A component the runtime does not implement is
 * CM_ERR_UNSUPPORTED, naming it; a malformed file is CM_ERR_MODEL.
 */
cm_hf_tokenizer *cm_hf_tokenizer_from_json(const char *json, size_t len, const char *label,
										   cm_error *err);

/*
 * A SentencePiece model file (the ModelProto of spiece.model), tokenizing as
 * transformers' SiglipTokenizer does: lower case (when lower_case), a "▁"
 * in front, the special tokens split off, ASCII punctuation removed,
 * whitespace collapsed and stripped, SentencePiece's normalisation without a
 * dummy prefix, Unigram, and EOS appended.
 */
cm_hf_tokenizer *cm_hf_tokenizer_from_spm_siglip(const unsigned char *model, size_t len,
												 const char *label, bool lower_case,
												 cm_error *err);

/*
 * The same model tokenizing as SentencePiece itself does
 * (SentencePieceProcessor::Encode: the model's normalizer settings, dummy
 * prefix included, no special tokens added): what the token cross-check
 * compares with libsentencepiece.
 */
cm_hf_tokenizer *cm_hf_tokenizer_from_spm(const unsigned char *model, size_t len,
										  const char *label, cm_error *err);

void		cm_hf_tokenizer_free(cm_hf_tokenizer *tok);

/* Number of ids (vocabulary plus added tokens); every id is below it. */
int32_t		cm_hf_tokenizer_vocab_size(const cm_hf_tokenizer *tok);

/* The id of a token string, or -1. */
int32_t		cm_hf_tokenizer_token_id(const cm_hf_tokenizer *tok, const char *token);

/* "BPE", "WordPiece", "Unigram" (tokenizer.json) or "SentencePiece Unigram". */
const char *cm_hf_tokenizer_kind(const cm_hf_tokenizer *tok);

/*
 * Make the text lower case (full per-character mapping) before anything else,
 * as SigLIP 2's tokenizer does.
 */
void		cm_hf_tokenizer_set_lower_case(cm_hf_tokenizer *tok, bool lower);

/*
 * Tokenize UTF-8 text into ids[max_ids] with the post-processor's special
 * tokens, truncating the content so that they fit (as `tokenizers` truncates
 * with truncation=True).  Invalid UTF-8 is CM_ERR_INPUT.  Work is bounded:
 * only the first CM_HF_MAX_TEXT_BYTES of a text are read (a longer text
 * always fills every position first, save in pathological cases such as
 * megabytes of spaces).  Thread-safe on a shared tokenizer.
 */
#define CM_HF_MAX_TEXT_BYTES ((size_t) 256 << 10)

cm_status	cm_hf_tokenizer_encode(const cm_hf_tokenizer *tok, const char *text, size_t len,
								   int32_t *ids, int max_ids, int *n_ids, cm_error *err);

/*
 * The text after the tokenizer's normalizers only (tokenizers'
 * normalize_str), into a malloc'd NUL-terminated string: for tests and
 * diagnosis.
 */
cm_status	cm_hf_tokenizer_normalize(const cm_hf_tokenizer *tok, const char *text, size_t len,
									  char **out, size_t *out_len, cm_error *err);

#endif							/* CM_TOKENIZER_HF_H */
