/*
 * tokenizer_hf_impl.h
 *	  Internal to tokenizer_hf.c and spm_model.c: the loaded pipeline.
 */
#ifndef CM_TOKENIZER_HF_IMPL_H
#define CM_TOKENIZER_HF_IMPL_H

#include "bpe.h"
#include "tokenizer_hf.h"

#define HF_MAX_STEPS 16			/* normalizers or pre-tokenizers, flattened */
#define HF_MAX_TEMPLATE 8		/* special tokens on either side of $A */
#define HF_MAX_ADDED 4096
#define HF_MAX_VOCAB (1 << 22)

typedef enum hf_model_kind
{
	HF_BPE,
	HF_WORDPIECE,
	HF_UNIGRAM
} hf_model_kind;

typedef enum hf_norm_kind
{
	NORM_NFC,
	NORM_NFD,
	NORM_NFKC,
	NORM_NFKD,
	NORM_LOWERCASE,
	NORM_STRIP,
	NORM_REPLACE,				/* literal a -> b, or a run of >= min_repeat a's */
	NORM_PREPEND,
	NORM_PRECOMPILED,			/* SentencePiece charsmap, per grapheme (tokenizers) */
	NORM_BERT,
	NORM_SIGLIP_CANON,			/* SiglipTokenizer.canonicalize_text */
	NORM_SPM					/* SentencePiece's own normaliser (charsmap + spaces) */
} hf_norm_kind;

/* A SentencePiece precompiled charsmap: a Darts double array + replacements. */
typedef struct hf_charsmap
{
	const uint32_t *trie;		/* [trie_units] */
	size_t		trie_units;
	const char *normalized;		/* [normalized_len], NUL-separated strings */
	size_t		normalized_len;
	unsigned char *owned;		/* the decoded blob both point into */
} hf_charsmap;

typedef struct hf_norm
{
	hf_norm_kind kind;
	char	   *a;				/* replace: pattern; prepend: text */
	size_t		a_len;
	char	   *b;				/* replace: content */
	size_t		b_len;
	int			min_repeat;		/* replace: -1 literal a, n >= 1 a{n,}, 0 \\s+ */
	bool		left,
				right;			/* strip */
	bool		clean_text,		/* BertNormalizer */
				chinese_chars,
				strip_accents,
				lowercase;
	bool		remove_extra_whitespaces;	/* spm */
	bool		add_dummy_prefix;	/* spm */
	bool		escape_whitespaces; /* spm */
	hf_charsmap charsmap;

	/*
	 * spm: the model's user-defined pieces, which SentencePiece's normaliser
	 * passes through unnormalised where one starts (longest first); NUL-
	 * separated copies, owned.
	 */
	char	   *user_defined;
	size_t	   *user_defined_len;
	int			n_user_defined;
} hf_norm;

typedef enum hf_pre_kind
{
	PRE_METASPACE,
	PRE_SPLIT,					/* on a literal string */
	PRE_WHITESPACE_SPLIT,
	PRE_WHITESPACE,				/* \w+|[^\w\s]+ */
	PRE_BERT,
	PRE_BYTELEVEL,
	PRE_PUNCTUATION,
	PRE_DIGITS
} hf_pre_kind;

typedef enum hf_split_behavior
{
	SPLIT_REMOVED,
	SPLIT_ISOLATED,
	SPLIT_MERGED_WITH_PREVIOUS,
	SPLIT_MERGED_WITH_NEXT,
	SPLIT_CONTIGUOUS
} hf_split_behavior;

typedef struct hf_pre
{
	hf_pre_kind kind;
	char	   *pattern;		/* split: the literal; metaspace: replacement */
	size_t		pattern_len;
	hf_split_behavior behavior;
	bool		invert;
	int			prepend;		/* metaspace: 0 never, 1 first, 2 always */
	bool		split;			/* metaspace */
	bool		add_prefix_space;	/* bytelevel */
	bool		use_regex;		/* bytelevel */
	bool		individual_digits;
} hf_pre;

typedef struct hf_added
{
	char	   *content;
	size_t		len;
	int32_t		id;
	bool		lstrip,
				rstrip;
} hf_added;

struct cm_hf_tokenizer
{
	const char *kind_name;
	hf_model_kind model;

	/* vocabulary: id -> string, string -> id */
	int32_t		n_vocab;		/* ids are below this */
	char	   *strings;
	size_t		strings_len;
	uint32_t   *str_off;		/* [n_vocab]; UINT32_MAX for an unused id */
	uint32_t   *str_len;
	int32_t    *slots;			/* open addressing, -1 free */
	size_t		mask;
	double	   *score;			/* unigram: [n_vocab] */
	unsigned char *matchable;	/* unigram: [n_vocab] the lattice may use it */
	unsigned char *user_defined;	/* spm: [n_vocab] */
	int32_t    *by_bytes;		/* unigram: the matchable ids, sorted by their
								 * bytes (shorter first on a common prefix) */
	int32_t		n_by_bytes;
	int32_t		unk_id;			/* -1: none */
	double		min_score;
	double		max_score;
	bool		float_scores;	/* spm sums path scores in float */
	int32_t		byte_id[256];	/* <0xXX> tokens for byte fallback, -1 absent */
	bool		byte_fallback;

	/* BPE */
	cm_bpe_merges merges;
	bool		fuse_unk;
	bool		ignore_merges;
	char	   *subword_prefix;
	char	   *word_suffix;

	/* WordPiece */
	int			max_word_chars;

	int			n_norm;
	hf_norm		norm[HF_MAX_STEPS];
	int			n_pre;
	hf_pre		pre[HF_MAX_STEPS];

	int			n_added;
	hf_added   *added;

	int32_t		prefix_ids[HF_MAX_TEMPLATE];
	int			n_prefix;
	int32_t		suffix_ids[HF_MAX_TEMPLATE];
	int			n_suffix;

	/* SiglipTokenizer's steps around the pipeline */
	bool		lower_first;	/* lower-case the whole text first */
	bool		siglip_prefix;	/* "▁" + text, its own "▁" made spaces */
	bool		spm_siglip;		/* norm[0] canonicalises, norm[1] is SentencePiece's */
	int			spm_unk_prefix; /* encode "<unk>" + piece, drop this many */
	char	   *unk_string;
};

/* Add a token string with this id to the vocabulary (tokenizer_hf.c). */
cm_status	cm_hf_vocab_init(cm_hf_tokenizer *tok, int32_t n, size_t arena, cm_error *err);
cm_status	cm_hf_vocab_set(cm_hf_tokenizer *tok, int32_t id, const char *s, size_t len,
							const char *label, cm_error *err);
int32_t		cm_hf_vocab_find(const cm_hf_tokenizer *tok, const char *s, size_t len);

/*
 * Finish a Unigram vocabulary: byte tokens, min/max score, the pieces sorted
 * for the lattice (tokenizer_hf.c).  CM_ERR_NOMEM on failure.
 */
cm_status	cm_hf_unigram_finish(cm_hf_tokenizer *tok, const char *label, cm_error *err);

/* Check a charsmap blob (u32 trie size, trie, strings) and adopt it. */
cm_status	cm_hf_charsmap_init(hf_charsmap *cm, unsigned char *blob, size_t len,
								const char *label, cm_error *err);

#endif							/* CM_TOKENIZER_HF_IMPL_H */
