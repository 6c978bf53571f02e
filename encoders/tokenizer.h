/*
 * tokenizer.h
 *	  CLIP byte-level BPE tokenizer read from a model's vocab.json + merges.txt.
 */
#ifndef CM_TOKENIZER_H
#define CM_TOKENIZER_H

#include "cm_common.h"

typedef struct cm_tokenizer cm_tokenizer;

/* Largest vocab.json or merges.txt the loader accepts. */
#define CM_TOKENIZER_MAX_FILE_BYTES ((size_t) 64 << 20)

/*
 * Load vocab.json and merges.txt.  BOS/EOS ids are looked up in the vocabulary
 * by their strings ("<|startoftext|>", "<|endoftext|>"), never hard-coded.
 * Returns NULL and fills err on failure.
 */
cm_tokenizer *cm_tokenizer_load(const char *vocab_path, const char *merges_path,
								cm_error *err);

/*
 * The same from file contents already in memory (not NUL-terminated; each at
 * most CM_TOKENIZER_MAX_FILE_BYTES).  The tokenizer keeps no pointer into
 * them.
 */
cm_tokenizer *cm_tokenizer_load_from_memory(const char *vocab_json, size_t vocab_len,
											const char *merges_txt, size_t merges_len,
											cm_error *err);
/*
 * open_clip's SimpleTokenizer from the decompressed text of its merges file
 * (bpe_simple_vocab_16e6.txt.gz, or a model's own; a merges.txt has the same
 * lines): the vocabulary is built from the merges as SimpleTokenizer builds
 * it, "<start_of_text>" and "<end_of_text>" last.  Encoding cleans the text
 * first (text_clean.h; lower-cased when lower is set) and recognises those
 * two in the cleaned text.
 */
cm_tokenizer *cm_tokenizer_load_openclip(const char *merges, size_t len, bool lower,
										 cm_error *err);

void		cm_tokenizer_free(cm_tokenizer *tok);

int32_t		cm_tokenizer_bos_id(const cm_tokenizer *tok);
int32_t		cm_tokenizer_eos_id(const cm_tokenizer *tok);

/* Number of entries in vocab.json; every id is in [0, vocab_size). */
int32_t		cm_tokenizer_vocab_size(const cm_tokenizer *tok);

/*
 * Tokenize UTF-8 text of len bytes into ids[]: BOS, tokens, EOS, truncated to
 * at most max_ids entries with EOS kept last (max_ids >= 2).  *n_ids receives
 * the count.  Invalid UTF-8 is CM_ERR_INPUT.  Thread-safe on a shared tokenizer.
 *
 * Work is bounded by the output: tokenisation stops once max_ids ids are
 * known (only the UTF-8 check reads the whole text), and a single run of
 * text without whitespace is read up to a window of at least 16 KiB.
 */
cm_status	cm_tokenizer_encode(const cm_tokenizer *tok, const char *text, size_t len,
								int32_t *ids, int max_ids, int *n_ids, cm_error *err);

#endif							/* CM_TOKENIZER_H */
