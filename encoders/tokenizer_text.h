/*
 * tokenizer_text.h
 *	  Internal to the tokenizer: UTF-8 validation, CLIP's text normalisation
 *	  (NFC, per-character full lower case) and its pre-tokenisation pattern.
 */
#ifndef CM_TOKENIZER_TEXT_H
#define CM_TOKENIZER_TEXT_H

#include "cm_common.h"

/* A growable array of code points owned by one encode call. */
typedef struct cm_tok_codepoints
{
	int32_t    *cp;
	size_t		len;
	size_t		cap;
	int32_t    *sort_tmp;		/* merge-sort buffer for canonical ordering */
	size_t		sort_tmp_cap;
} cm_tok_codepoints;

void		cm_tok_codepoints_free(cm_tok_codepoints *buf);

/*
 * Check that text[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF).  On failure *bad_offset receives the
 * byte offset of the first invalid sequence.
 */
bool		cm_tok_utf8_valid(const uint8_t *text, size_t len, size_t *bad_offset);

/* Decode one code point of valid UTF-8; returns its byte length. */
size_t		cm_tok_utf8_decode(const uint8_t *s, size_t len, int32_t *cp);

/*
 * The full lower-case mapping of one code point, without context (no final
 * sigma): out receives 1 or 2 code points, the count is returned.
 */
int			cm_tok_lower(int32_t cp, int32_t out[2]);

/*
 * Whether the capital sigma at in[pos..pos + len) of valid UTF-8 ends a word
 * (Unicode's Final_Sigma: a cased letter before it and none after,
 * case-ignorables skipped), as Python's str.lower() decides: it then becomes
 * U+03C2, not U+03C3.
 */
bool		cm_tok_final_sigma(const char *in, size_t n, size_t pos, size_t len);

/* Whitespace as the reference's regex engine defines \s (White_Space). */
bool		cm_tok_is_space(int32_t cp);

/*
 * Normalise valid UTF-8 as the reference does before pre-tokenisation: NFC,
 * then each character lower-cased with its full mapping (U+0130 becomes
 * "i" + U+0307; there is no context-dependent final sigma).  The result
 * replaces out->cp[0..out->len).
 */
cm_status	cm_tok_normalize(const uint8_t *text, size_t len,
							 cm_tok_codepoints *out, cm_error *err);

/*
 * The two special-token literals of a CLIP pattern, and whether the pattern
 * is case-insensitive the way open_clip's (regex module, IGNORECASE) is on
 * lower-cased text: there U+017F (long s) matches "s" in them and in the
 * contractions.
 */
typedef struct cm_tok_pattern
{
	const char *special[2];		/* ASCII */
	bool		long_s_is_s;
} cm_tok_pattern;

/* HF CLIPTokenizer's: "<|startoftext|>", "<|endoftext|>", case-sensitive. */
extern const cm_tok_pattern cm_tok_clip_pattern;

/*
 * Find the next pre-token in cp[*pos..n) with CLIP's pattern
 *   SPECIAL0 | SPECIAL1 | 's|'t|'re|'ve|'m|'ll|'d |
 *   \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+
 * (alternatives tried in that order at each position, whitespace dropped).
 * Returns false when none is left; else sets *start, *count and advances *pos.
 * *special receives 0 or 1 when the match is that special-token literal
 * (written exactly, without a long s), else -1.
 */
bool		cm_tok_next_pretoken(const int32_t *cp, size_t n, size_t *pos,
								 size_t *start, size_t *count, const cm_tok_pattern *pat,
								 int *special);

#endif							/* CM_TOKENIZER_TEXT_H */
