/*
 * bpe.h
 *	  Byte-pair encoding's merge step, shared by every BPE tokenizer (CLIP's
 *	  vocab.json + merges.txt, tokenizer.json's BPE model): a table of ranked
 *	  merges and the rank-ordered application of them to a symbol sequence.
 */
#ifndef CM_BPE_H
#define CM_BPE_H

#include "cm_common.h"

typedef struct cm_bpe_merge_slot
{
	uint64_t	pair;			/* left id << 32 | right id; UINT64_MAX if free */
	int32_t		rank;			/* order of the merge in its file */
	int32_t		merged;			/* id of left + right */
} cm_bpe_merge_slot;

/* Ranked merges by (left, right) pair, open addressing. */
typedef struct cm_bpe_merges
{
	cm_bpe_merge_slot *slots;
	size_t		mask;
	int32_t		n;				/* merges added: the next rank */
} cm_bpe_merges;

/* Room for up to capacity merges.  CM_ERR_NOMEM on failure. */
cm_status	cm_bpe_merges_init(cm_bpe_merges *m, size_t capacity, cm_error *err);
void		cm_bpe_merges_free(cm_bpe_merges *m);

/*
 * Add the next merge (rank m->n); at most the capacity given to init.  A
 * repeated pair takes its later rank, as the reference's map build does.
 */
void		cm_bpe_merges_add(cm_bpe_merges *m, int32_t left, int32_t right, int32_t merged);

/* Scratch of one thread's merging, reused across words; zero-initialise. */
typedef struct cm_bpe_work
{
	int32_t    *prev;
	int32_t    *next;
	size_t		cap;
	void	   *heap;
	size_t		heap_len;
	size_t		heap_cap;
} cm_bpe_work;

void		cm_bpe_work_free(cm_bpe_work *w);

/*
 * Merge the symbols syms[0..n) in place: repeatedly apply the lowest-ranked
 * merge among adjacent pairs (leftmost first on a tie), with a heap over the
 * pairs.  *n_out receives the number of symbols left in syms[0..*n_out).
 */
cm_status	cm_bpe_merge(const cm_bpe_merges *m, cm_bpe_work *w, int32_t *syms, size_t n,
						 size_t *n_out, cm_error *err);

/*
 * GPT-2's reversible byte -> code point map of byte-level BPE (CLIP's and
 * open_clip's vocabularies, tokenizer.json's ByteLevel pre-tokenizer):
 * printable bytes stand for themselves, the 68 others take U+0100 onwards
 * in byte order.  A pure function, so threads share no lazily built table.
 */
int32_t		cm_bpe_byte_char(unsigned char b);

/* Smallest power of two >= 2 * n, at least 16; false on overflow. */
bool		cm_hash_table_size(size_t n, size_t *size);

/* FNV-1a of n bytes. */
uint64_t	cm_hash_bytes(const char *s, size_t n);

#endif							/* CM_BPE_H */
