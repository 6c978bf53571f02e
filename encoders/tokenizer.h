/*
 * tokenizer.h
 *	  CLIP byte-level BPE tokenizer read from a model's vocab.json + merges.txt.
 */
#ifndef CM_TOKENIZER_H
#define CM_TOKENIZER_H

#include "cm_common.h"

typedef struct cm_tokenizer cm_tokenizer;

/*
 * Load vocab.json and merges.txt.  BOS/EOS ids are looked up in the vocabulary
 * by their strings ("<|startoftext|>", "<|endoftext|>"), never hard-coded.
 * Returns NULL and fills err on failure.
 */
cm_tokenizer *cm_tokenizer_load(const char *vocab_path, const char *merges_path,
								cm_error *err);
void		cm_tokenizer_free(cm_tokenizer *tok);

int32_t		cm_tokenizer_bos_id(const cm_tokenizer *tok);
int32_t		cm_tokenizer_eos_id(const cm_tokenizer *tok);
int32_t		cm_tokenizer_vocab_size(const cm_tokenizer *tok);

/*
 * Tokenize UTF-8 text of len bytes into ids[]: BOS, tokens, EOS, truncated to
 * at most max_ids entries with EOS kept last (max_ids >= 2).  *n_ids receives
 * the count.  Invalid UTF-8 is CM_ERR_INPUT.  Thread-safe on a shared tokenizer.
 */
cm_status	cm_tokenizer_encode(const cm_tokenizer *tok, const char *text, size_t len,
								int32_t *ids, int max_ids, int *n_ids, cm_error *err);

#endif							/* CM_TOKENIZER_H */
