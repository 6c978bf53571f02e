/*
 * tokenizer_hf.c
 *	  The tokenizer pipeline of Hugging Face's `tokenizers` (tokenizer.json):
 *	  added tokens split off, normalizers, pre-tokenizers, a BPE (bpe.c),
 *	  WordPiece or Unigram model, and the post-processor's special tokens.
 *
 * Every component follows the reference library's semantics; components the
 * runtime does not implement are refused at load with their name, never
 * skipped.  Regular expressions are refused except the few literal forms
 * real checkpoints use (a literal string, and "x{n,}" runs).
 */
#include "tokenizer_hf_impl.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "bert_tables.h"
#include "tokenizer_text.h"

#define UNSET UINT32_MAX
#define K_UNK_PENALTY 10.0		/* both SentencePiece and tokenizers */

/*
 * Bytes of pieces matched in one encode call's Unigram lattices.  A real
 * vocabulary's pieces are a few characters long, so even the longest text
 * read takes a few million; a vocabulary with very long pieces that match
 * the text (a hostile file) is stopped here, after a fraction of a second.
 */
#define HF_MAX_LATTICE_STEPS (1 << 26)

/*
 * Largest working text of one encode call.  The text read is at most
 * CM_HF_MAX_TEXT_BYTES and real normalizers grow it a few times at most
 * (NFKD, BERT's spaces around CJK); normalizers that multiply it (a long
 * Replace content, Prepend or Metaspace replacement, or charsmap rule, in
 * a hostile file, chained) are stopped here rather than allocating the
 * server's memory.
 */
#define HF_MAX_WORK_BYTES ((size_t) 64 << 20)

/* ---------------------------------------------------------------- buffers */

/* A growable byte string. */
typedef struct sbuf
{
	char	   *p;
	size_t		len;
	size_t		cap;
	bool		failed;			/* an allocation failed: contents invalid */
	bool		too_long;		/* ... because it would pass HF_MAX_WORK_BYTES */
} sbuf;

static void
sb_reserve(sbuf *b, size_t extra)
{
	size_t		need,
				cap;
	char	   *q;

	if (b->failed || !cm_add_size(b->len, extra, &need))
	{
		b->failed = true;
		return;
	}
	if (need <= b->cap)
		return;
	if (need > HF_MAX_WORK_BYTES)
	{
		b->failed = b->too_long = true;
		return;
	}
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		if (!cm_mul_size(cap, 2, &cap))
		{
			b->failed = true;
			return;
		}
	if (cap > HF_MAX_WORK_BYTES)
		cap = HF_MAX_WORK_BYTES;
	q = realloc(b->p, cap);
	if (q == NULL)
	{
		b->failed = true;
		return;
	}
	b->p = q;
	b->cap = cap;
}

static void
sb_add(sbuf *b, const void *s, size_t n)
{
	sb_reserve(b, n);
	if (!b->failed && n > 0)
	{
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void
sb_add_cp(sbuf *b, int32_t cp)
{
	utf8proc_uint8_t tmp[4];
	utf8proc_ssize_t n = utf8proc_encode_char(cp, tmp);

	sb_add(b, tmp, (size_t) n);
}

/* Carry src's failure into dst. */
static void
sb_merge(sbuf *dst, const sbuf *src)
{
	dst->failed |= src->failed;
	dst->too_long |= src->too_long;
}

/* The error of a failed working buffer: over the size limit, or no memory. */
static cm_status
work_failed(bool too_long, cm_error *err)
{
	if (!too_long)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	cm_set_error(err, CM_ERR_LIMIT,
				 "text grows past %zu MiB while it is tokenized (the tokenizer's normalizers multiply it)",
				 HF_MAX_WORK_BYTES >> 20);
	cm_error_set_limit(err, CM_LIMIT_OTHER);
	return CM_ERR_LIMIT;
}

static void
sb_free(sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* A list of words: ranges of one byte buffer. */
typedef struct words
{
	sbuf		text;
	size_t	   *start;
	size_t	   *len;
	size_t		n;
	size_t		cap;
	bool		failed;
} words;

static void
words_push(words *w, const char *s, size_t n)
{
	if (w->n == w->cap)
	{
		size_t		cap = w->cap ? w->cap * 2 : 32;
		size_t	   *a = realloc(w->start, cap * sizeof(size_t));
		size_t	   *b;

		if (a == NULL)
		{
			w->failed = true;
			return;
		}
		w->start = a;
		b = realloc(w->len, cap * sizeof(size_t));
		if (b == NULL)
		{
			w->failed = true;
			return;
		}
		w->len = b;
		w->cap = cap;
	}
	w->start[w->n] = w->text.len;
	w->len[w->n] = n;
	sb_add(&w->text, s, n);
	w->n++;
}

static void
words_clear(words *w)
{
	w->text.len = 0;
	w->n = 0;
}

static void
words_free(words *w)
{
	sb_free(&w->text);
	free(w->start);
	free(w->len);
	memset(w, 0, sizeof(*w));
}

/* Decode one code point of valid UTF-8 at s[0..n); returns its length. */
static size_t
next_cp(const char *s, size_t n, int32_t *cp)
{
	return cm_tok_utf8_decode((const uint8_t *) s, n, cp);
}

static bool
is_ws(int32_t cp)
{
	return cm_tok_is_space(cp);
}

/* ---------------------------------------------------------------- vocabulary */

cm_status
cm_hf_vocab_init(cm_hf_tokenizer *tok, int32_t n, size_t arena, cm_error *err)
{
	size_t		slots;

	if (n < 1 || n > HF_MAX_VOCAB || arena >= UNSET || !cm_hash_table_size((size_t) n, &slots))
		return cm_set_error(err, CM_ERR_MODEL, "vocabulary of %d tokens is out of range", (int) n);
	tok->n_vocab = n;
	tok->strings = malloc(arena ? arena : 1);
	tok->str_off = malloc((size_t) n * sizeof(uint32_t));
	tok->str_len = malloc((size_t) n * sizeof(uint32_t));
	tok->slots = malloc(slots * sizeof(int32_t));
	tok->score = calloc((size_t) n, sizeof(double));
	tok->matchable = calloc((size_t) n, 1);
	tok->user_defined = calloc((size_t) n, 1);
	if (!tok->strings || !tok->str_off || !tok->str_len || !tok->slots || !tok->score ||
		!tok->matchable || !tok->user_defined)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", (int) n);
	memset(tok->slots, 0xff, slots * sizeof(int32_t));
	for (int32_t i = 0; i < n; i++)
		tok->str_off[i] = UNSET;
	tok->mask = slots - 1;
	tok->strings_len = 0;
	return CM_OK;
}

int32_t
cm_hf_vocab_find(const cm_hf_tokenizer *tok, const char *s, size_t len)
{
	size_t		i = cm_hash_bytes(s, len) & tok->mask;

	for (;;)
	{
		int32_t		id = tok->slots[i];

		if (id < 0)
			return -1;
		if (tok->str_len[id] == len && memcmp(tok->strings + tok->str_off[id], s, len) == 0)
			return id;
		i = (i + 1) & tok->mask;
	}
}

/* The arena was sized by the caller for every string plus a NUL each. */
cm_status
cm_hf_vocab_set(cm_hf_tokenizer *tok, int32_t id, const char *s, size_t len, const char *label,
				cm_error *err)
{
	size_t		i;

	if (id < 0 || id >= tok->n_vocab)
		return cm_set_error(err, CM_ERR_MODEL, "%s: token id %d outside [0, %d)", label, (int) id,
							(int) tok->n_vocab);
	if (tok->str_off[id] != UNSET)
		return cm_set_error(err, CM_ERR_MODEL, "%s: id %d is given to two tokens", label, (int) id);
	if (cm_hf_vocab_find(tok, s, len) >= 0)
		return cm_set_error(err, CM_ERR_MODEL, "%s: token \"%.64s\" appears twice", label, s);
	memcpy(tok->strings + tok->strings_len, s, len);
	tok->strings[tok->strings_len + len] = '\0';
	tok->str_off[id] = (uint32_t) tok->strings_len;
	tok->str_len[id] = (uint32_t) len;
	tok->strings_len += len + 1;
	i = cm_hash_bytes(s, len) & tok->mask;
	while (tok->slots[i] >= 0)
		i = (i + 1) & tok->mask;
	tok->slots[i] = id;
	return CM_OK;
}

/* <0xXX> tokens, for byte fallback. */
static void
find_byte_tokens(cm_hf_tokenizer *tok)
{
	for (int b = 0; b < 256; b++)
	{
		char		name[8];

		snprintf(name, sizeof(name), "<0x%02X>", b);
		tok->byte_id[b] = cm_hf_vocab_find(tok, name, 6);
	}
}

typedef struct piece_ref
{
	const unsigned char *s;
	uint32_t	len;
	int32_t		id;
} piece_ref;

/* Bytewise order, a prefix before the longer strings it starts. */
static int
piece_cmp(const void *a, const void *b)
{
	const piece_ref *x = a,
			   *y = b;
	int			c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

cm_status
cm_hf_unigram_finish(cm_hf_tokenizer *tok, const char *label, cm_error *err)
{
	bool		first = true;
	piece_ref  *refs;
	int32_t		n = 0;

	find_byte_tokens(tok);
	for (int32_t i = 0; i < tok->n_vocab; i++)
	{
		if (!tok->matchable[i] || tok->user_defined[i])
			continue;
		if (first || tok->score[i] < tok->min_score)
			tok->min_score = tok->score[i];
		if (first || tok->score[i] > tok->max_score)
			tok->max_score = tok->score[i];
		first = false;
	}

	refs = malloc((size_t) tok->n_vocab * sizeof(piece_ref));
	tok->by_bytes = malloc((size_t) tok->n_vocab * sizeof(int32_t));
	if (refs == NULL || tok->by_bytes == NULL)
	{
		free(refs);
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for the vocabulary", label);
	}
	for (int32_t i = 0; i < tok->n_vocab; i++)
		if (tok->matchable[i] && tok->str_off[i] != UNSET && tok->str_len[i] > 0)
			refs[n++] = (piece_ref) {(const unsigned char *) tok->strings + tok->str_off[i],
			tok->str_len[i], i};
	qsort(refs, (size_t) n, sizeof(piece_ref), piece_cmp);
	for (int32_t i = 0; i < n; i++)
		tok->by_bytes[i] = refs[i].id;
	tok->n_by_bytes = n;
	free(refs);
	return CM_OK;
}

/*
 * Narrow [*lo, *hi) of the sorted pieces, which all start with the d bytes
 * before c, to those whose byte d is c.  A piece of exactly d bytes (the
 * prefix itself) sorts first and is dropped.  Whether the range is empty.
 */
static bool
pieces_narrow(const cm_hf_tokenizer *tok, size_t *lo, size_t *hi, size_t d, unsigned char c)
{
	const int32_t *ids = tok->by_bytes;
	size_t		a = *lo,
				b = *hi;

#define BYTE_AT(k) ((const unsigned char *) tok->strings + tok->str_off[ids[k]])[d]
	if (a < b && tok->str_len[ids[a]] == d)
		a++;
	/* first piece whose byte d is >= c, then first whose byte d is > c */
	for (size_t x = a, y = b; x < y;)
	{
		size_t		mid = x + (y - x) / 2;

		if (BYTE_AT(mid) < c)
			x = a = mid + 1;
		else
			y = mid;
	}
	for (size_t x = a, y = b; x < y;)
	{
		size_t		mid = x + (y - x) / 2;

		if (BYTE_AT(mid) <= c)
			x = mid + 1;
		else
			y = b = mid;
	}
#undef BYTE_AT
	*lo = a;
	*hi = b;
	return a < b;
}

/* ---------------------------------------------------------------- charsmap */

cm_status
cm_hf_charsmap_init(hf_charsmap *cm, unsigned char *blob, size_t len, const char *label,
					cm_error *err)
{
	uint32_t	trie_bytes;

	cm->owned = blob;
	if (len < 4)
		return cm_set_error(err, CM_ERR_MODEL, "%s: precompiled charsmap of %zu bytes is truncated", label, len);
	trie_bytes = (uint32_t) blob[0] | (uint32_t) blob[1] << 8 | (uint32_t) blob[2] << 16 |
		(uint32_t) blob[3] << 24;
	if (trie_bytes % 4 != 0 || trie_bytes > len - 4 || trie_bytes == 0)
		return cm_set_error(err, CM_ERR_MODEL, "%s: precompiled charsmap declares a trie of %u bytes in %zu",
							label, trie_bytes, len);
	/* the units are read with memcpy-free aligned loads: copy into place */
	{
		uint32_t   *units = malloc(trie_bytes);

		if (units == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for the charsmap", label);
		for (uint32_t i = 0; i < trie_bytes / 4; i++)
		{
			const unsigned char *p = blob + 4 + 4 * (size_t) i;

			units[i] = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
				(uint32_t) p[3] << 24;
		}
		cm->trie = units;
	}
	cm->trie_units = trie_bytes / 4;
	cm->normalized = (const char *) blob + 4 + trie_bytes;
	cm->normalized_len = len - 4 - trie_bytes;
	return CM_OK;
}

static void
charsmap_free(hf_charsmap *cm)
{
	free((void *) cm->trie);
	free(cm->owned);
	memset(cm, 0, sizeof(*cm));
}

/*
 * Darts-clone's common prefix search over key[0..n): calls back with each
 * match (length, value), shortest first, every index bounds-checked (the
 * array comes from a model file).  Returns the number of matches seen;
 * stops after the first when first_only.
 */
static int
charsmap_search(const hf_charsmap *cm, const unsigned char *key, size_t n, bool first_only,
				size_t *match_len, uint32_t *match_value)
{
	const uint32_t *a = cm->trie;
	size_t		pos;
	uint32_t	unit;
	int			found = 0;

#define UNIT_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
	if (cm->trie_units == 0)
		return 0;
	unit = a[0];
	pos = UNIT_OFFSET(unit);
	for (size_t i = 0; i < n; i++)
	{
		if (key[i] == 0)
			break;
		pos ^= key[i];
		if (pos >= cm->trie_units)
			break;
		unit = a[pos];
		if ((unit & (0x80000000u | 0xFFu)) != key[i])
			break;
		pos ^= UNIT_OFFSET(unit);
		if ((unit >> 8) & 1)
		{
			if (pos >= cm->trie_units)
				break;
			*match_len = i + 1;
			*match_value = a[pos] & 0x7FFFFFFFu;
			found++;
			if (first_only)
				break;
		}
	}
#undef UNIT_OFFSET
	return found;
}

/* The replacement string at value, bounded by the blob; false if outside. */
static bool
charsmap_string(const hf_charsmap *cm, uint32_t value, const char **s, size_t *n)
{
	const char *end;

	if (value >= cm->normalized_len)
		return false;
	end = memchr(cm->normalized + value, '\0', cm->normalized_len - value);
	*s = cm->normalized + value;
	*n = end != NULL ? (size_t) (end - *s) : cm->normalized_len - value;
	return true;
}

/*
 * tokenizers' Precompiled normaliser: each extended grapheme cluster under
 * 6 bytes is replaced whole by the rule of the shortest key that prefixes
 * it; otherwise each character by the same lookup, or kept.
 */
static void
precompiled_apply(const hf_charsmap *cm, const char *in, size_t n, sbuf *out)
{
	size_t		pos = 0;

	while (pos < n)
	{
		size_t		end = pos;
		utf8proc_int32_t state = 0;
		int32_t		prev = -1;
		size_t		mlen;
		uint32_t	value;
		const char *rep;
		size_t		rep_len;

		/* the grapheme cluster starting at pos */
		while (end < n)
		{
			int32_t		cp;
			size_t		l = next_cp(in + end, n - end, &cp);

			if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state))
				break;
			prev = cp;
			end += l;
		}
		if (end - pos < 6 &&
			charsmap_search(cm, (const unsigned char *) in + pos, end - pos, true, &mlen, &value) > 0 &&
			charsmap_string(cm, value, &rep, &rep_len))
		{
			sb_add(out, rep, rep_len);
			pos = end;
			continue;
		}
		while (pos < end)
		{
			int32_t		cp;
			size_t		l = next_cp(in + pos, end - pos, &cp);

			if (charsmap_search(cm, (const unsigned char *) in + pos, l, true, &mlen, &value) > 0 &&
				charsmap_string(cm, value, &rep, &rep_len))
				sb_add(out, rep, rep_len);
			else
				sb_add(out, in + pos, l);
			pos += l;
		}
	}
}

/*
 * SentencePiece's Normalizer::Normalize: the longest charsmap rule at each
 * position (or the character itself), leading, repeated and trailing
 * spaces removed when remove_extra_whitespaces, "▁" for spaces when
 * escape_whitespaces, and a "▁" in front when add_dummy_prefix.
 */
static void
spm_normalize(const hf_norm *nm, const char *in, size_t n, sbuf *out)
{
	static const char space_symbol[] = "\xe2\x96\x81";
	bool		prev_space = nm->remove_extra_whitespaces;
	size_t		pos = 0;
	bool		started = false;

	while (pos < n)
	{
		const char *piece;
		size_t		piece_len,
					consumed;
		size_t		mlen = 0;
		uint32_t	value = 0;
		size_t		best = 0;
		uint32_t	best_value = 0;
		int			found;

		/* a user-defined piece starting here passes through as it is */
		{
			const char *u = nm->user_defined;

			for (int i = 0; i < nm->n_user_defined; u += nm->user_defined_len[i++] + 1)
				if (nm->user_defined_len[i] > best && nm->user_defined_len[i] <= n - pos &&
					memcmp(in + pos, u, nm->user_defined_len[i]) == 0)
					best = nm->user_defined_len[i];
		}
		/* else the longest rule: walk every match */
		found = best == 0 && nm->charsmap.trie != NULL ?
			charsmap_search(&nm->charsmap, (const unsigned char *) in + pos, n - pos, false, &mlen, &value) : 0;
		if (found > 0)
		{
			best = mlen;
			best_value = value;
		}
		if (found <= 0 && best > 0)
		{
			piece = in + pos;
			piece_len = consumed = best;
		}
		else if (best > 0 && charsmap_string(&nm->charsmap, best_value, &piece, &piece_len))
			consumed = best;
		else
		{
			int32_t		cp;

			consumed = next_cp(in + pos, n - pos, &cp);
			piece = in + pos;
			piece_len = consumed;
		}
		pos += consumed;

		if (!started)
		{
			/* leading whitespace is dropped */
			if (nm->remove_extra_whitespaces && piece_len == 1 && piece[0] == ' ')
				continue;
			started = true;
			if (nm->add_dummy_prefix)
				sb_add(out, nm->escape_whitespaces ? space_symbol : " ",
					   nm->escape_whitespaces ? 3 : 1);
		}
		if (prev_space)
			while (piece_len > 0 && piece[0] == ' ')
			{
				piece++;
				piece_len--;
			}
		if (piece_len == 0)
			continue;
		for (size_t i = 0; i < piece_len; i++)
		{
			if (nm->escape_whitespaces && piece[i] == ' ')
				sb_add(out, space_symbol, 3);
			else
				sb_add(out, piece + i, 1);
		}
		prev_space = piece[piece_len - 1] == ' ';
	}
	if (nm->remove_extra_whitespaces)
	{
		if (nm->escape_whitespaces)
			while (out->len >= 3 && memcmp(out->p + out->len - 3, space_symbol, 3) == 0)
				out->len -= 3;
		else
			while (out->len >= 1 && out->p[out->len - 1] == ' ')
				out->len--;
	}
}

/* ---------------------------------------------------------------- normalizers */

static bool
is_ascii_punct(int32_t cp)
{
	return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
		(cp >= 123 && cp <= 126);
}

/* Python's str.isspace(), which re's \s and str.strip() use. */
static bool
is_py_space(int32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
		cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
		cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Whether cp is in a sorted table of inclusive ranges. */
static bool
in_ranges(const uint32_t (*r)[2], size_t n, int32_t cp)
{
	size_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if ((uint32_t) cp < r[mid][0])
			hi = mid;
		else if ((uint32_t) cp > r[mid][1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

#define IN_TABLE(t, cp) in_ranges(t, sizeof(t) / sizeof(t[0]), cp)

/*
 * tokenizers' punctuation (BertPreTokenizer, Punctuation): ASCII punctuation
 * and its old Unicode table's P* categories (bert_tables.h).
 */
static bool
is_tokenizers_punct(int32_t cp)
{
	return IN_TABLE(cm_bert_punct, cp);
}

/*
 * BertNormalizer's Chinese characters, as tokenizers lists them: BERT's
 * ranges, with the CJK Extension E range starting at U+2B920 rather than
 * U+2B820 (so U+2B820..U+2B91F stay ordinary letters there).
 */
static bool
is_cjk(int32_t cp)
{
	return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
		(cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
		(cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
		(cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static void
unicode_form(const char *in, size_t n, int options, sbuf *out)
{
	utf8proc_uint8_t *r = NULL;
	utf8proc_ssize_t len;

	if (n == 0)
		return;
	/* utf8proc's own buffer holds 4 bytes per code point, up to 18 per input character */
	if (n > HF_MAX_WORK_BYTES / 32)
	{
		out->failed = out->too_long = true;
		return;
	}
	len = utf8proc_map((const utf8proc_uint8_t *) in, (utf8proc_ssize_t) n, &r,
					   (utf8proc_option_t) (options | UTF8PROC_STABLE));
	if (len < 0)
	{
		out->failed = true;
		return;
	}
	sb_add(out, r, (size_t) len);
	free(r);
}

/* Python's str.lower(): full mappings, and the final sigma in context. */
static void
lower_text_python(const char *in, size_t n, sbuf *out)
{
	for (size_t pos = 0; pos < n;)
	{
		int32_t		cp,
					lo[2];
		size_t		l = next_cp(in + pos, n - pos, &cp);
		int			k;

		if (cp == 0x3A3 && cm_tok_final_sigma(in, n, pos, l))
		{
			sb_add_cp(out, 0x3C2);
			pos += l;
			continue;
		}
		k = cm_tok_lower(cp, lo);
		for (int i = 0; i < k; i++)
			sb_add_cp(out, lo[i]);
		pos += l;
	}
}

/* tokenizers' Lowercase: each character's full mapping, no context. */
static void
lower_text(const char *in, size_t n, sbuf *out)
{
	for (size_t pos = 0; pos < n;)
	{
		int32_t		cp,
					lo[2];
		size_t		l = next_cp(in + pos, n - pos, &cp);
		int			k = cm_tok_lower(cp, lo);

		for (int i = 0; i < k; i++)
			sb_add_cp(out, lo[i]);
		pos += l;
	}
}

static void
apply_norm(const hf_norm *nm, const char *in, size_t n, sbuf *out)
{
	switch (nm->kind)
	{
		case NORM_NFC:
			unicode_form(in, n, UTF8PROC_COMPOSE, out);
			return;
		case NORM_NFD:
			unicode_form(in, n, UTF8PROC_DECOMPOSE, out);
			return;
		case NORM_NFKC:
			unicode_form(in, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
			return;
		case NORM_NFKD:
			unicode_form(in, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
			return;
		case NORM_LOWERCASE:
			lower_text(in, n, out);
			return;
		case NORM_STRIP:
			{
				size_t		a = 0,
							b = n;

				if (nm->left)
					while (a < b)
					{
						int32_t		cp;
						size_t		l = next_cp(in + a, b - a, &cp);

						if (!is_ws(cp))
							break;
						a += l;
					}
				if (nm->right)
					while (b > a)
					{
						size_t		s = b - 1;
						int32_t		cp;

						while (s > a && ((unsigned char) in[s] & 0xC0) == 0x80)
							s--;
						next_cp(in + s, b - s, &cp);
						if (!is_ws(cp))
							break;
						b = s;
					}
				sb_add(out, in + a, b - a);
				return;
			}
		case NORM_REPLACE:
			for (size_t pos = 0; pos < n;)
			{
				if (nm->min_repeat == 0)
				{
					size_t		e = pos;

					while (e < n)
					{
						int32_t		cp;
						size_t		l = next_cp(in + e, n - e, &cp);

						if (!is_ws(cp))
							break;
						e += l;
					}
					if (e > pos)
					{
						sb_add(out, nm->b, nm->b_len);
						pos = e;
						continue;
					}
				}
				else if (nm->min_repeat < 0)
				{
					if (n - pos >= nm->a_len && memcmp(in + pos, nm->a, nm->a_len) == 0)
					{
						sb_add(out, nm->b, nm->b_len);
						pos += nm->a_len;
						continue;
					}
				}
				else
				{
					size_t		run = 0;

					while (pos + (run + 1) * nm->a_len <= n &&
						   memcmp(in + pos + run * nm->a_len, nm->a, nm->a_len) == 0)
						run++;
					if (run >= (size_t) nm->min_repeat)
					{
						sb_add(out, nm->b, nm->b_len);
						pos += run * nm->a_len;
						continue;
					}
					if (run > 0)
					{
						sb_add(out, in + pos, run * nm->a_len);
						pos += run * nm->a_len;
						continue;
					}
				}
				{
					int32_t		cp;
					size_t		l = next_cp(in + pos, n - pos, &cp);

					sb_add(out, in + pos, l);
					pos += l;
				}
			}
			return;
		case NORM_PREPEND:
			if (n > 0)
				sb_add(out, nm->a, nm->a_len);
			sb_add(out, in, n);
			return;
		case NORM_PRECOMPILED:
			precompiled_apply(&nm->charsmap, in, n, out);
			return;
		case NORM_BERT:
			{
				sbuf		t1 = {0},
							t2 = {0};
				const char *src = in;
				size_t		src_n = n;

				for (size_t pos = 0; pos < src_n;)
				{
					int32_t		cp;
					size_t		l = next_cp(src + pos, src_n - pos, &cp);

					pos += l;
					if (nm->clean_text)
					{
						/* Cc, Cf, Co as tokenizers' old tables have them; U+0000, U+FFFD */
						if (cp == 0 || IN_TABLE(cm_bert_control, cp))
							continue;
						if (is_ws(cp))
							cp = ' ';
					}
					if (nm->chinese_chars && is_cjk(cp))
					{
						sb_add(&t1, " ", 1);
						sb_add_cp(&t1, cp);
						sb_add(&t1, " ", 1);
					}
					else
						sb_add_cp(&t1, cp);
				}
				src = t1.p;
				src_n = t1.len;
				if (nm->strip_accents)
				{
					sbuf		d = {0};

					unicode_form(src, src_n, UTF8PROC_DECOMPOSE, &d);
					for (size_t pos = 0; pos < d.len;)
					{
						int32_t		cp;
						size_t		l = next_cp(d.p + pos, d.len - pos, &cp);

						if (!IN_TABLE(cm_bert_nonspacing, cp))
							sb_add(&t2, d.p + pos, l);
						pos += l;
					}
					sb_merge(out, &d);
					sb_free(&d);
					src = t2.p;
					src_n = t2.len;
				}
				if (nm->lowercase)
					lower_text(src, src_n, out);
				else
					sb_add(out, src, src_n);
				sb_merge(out, &t1);
				sb_merge(out, &t2);
				sb_free(&t1);
				sb_free(&t2);
				return;
			}
		case NORM_SIGLIP_CANON:
			{
				bool		pending_space = false;
				bool		any = false;

				/* punctuation removed, \s+ -> " ", stripped */
				for (size_t pos = 0; pos < n;)
				{
					int32_t		cp;
					size_t		l = next_cp(in + pos, n - pos, &cp);

					pos += l;
					if (cp < 128 && is_ascii_punct(cp))
						continue;
					if (is_py_space(cp))
					{
						pending_space = any;
						continue;
					}
					if (pending_space)
						sb_add(out, " ", 1);
					pending_space = false;
					sb_add(out, in + pos - l, l);
					any = true;
				}
				return;
			}
		case NORM_SPM:
			spm_normalize(nm, in, n, out);
			return;
	}
}

/* Run every normalizer over in[0..n); the result is in *out. */
static void
normalize_all(const cm_hf_tokenizer *tok, const char *in, size_t n, sbuf *out, sbuf *tmp)
{
	out->len = 0;
	sb_add(out, in, n);
	for (int i = 0; i < tok->n_norm && !out->failed; i++)
	{
		sbuf		swap;

		tmp->len = 0;
		apply_norm(&tok->norm[i], out->p, out->len, tmp);
		swap = *out;
		*out = *tmp;
		*tmp = swap;
		sb_merge(out, tmp);
	}
}

cm_status
cm_hf_tokenizer_normalize(const cm_hf_tokenizer *tok, const char *text, size_t len, char **out,
						  size_t *out_len, cm_error *err)
{
	sbuf		a = {0},
				b = {0};
	size_t		bad = 0;

	*out = NULL;
	*out_len = 0;
	if (!cm_tok_utf8_valid((const uint8_t *) text, len, &bad))
		return cm_set_error(err, CM_ERR_INPUT, "text is not valid UTF-8 at byte offset %zu", bad);
	normalize_all(tok, text, len, &a, &b);
	sb_free(&b);
	sb_add(&a, "", 1);			/* a NUL, and a buffer even when empty */
	if (a.failed)
	{
		bool		too_long = a.too_long;

		sb_free(&a);
		return work_failed(too_long, err);
	}
	*out = a.p;
	*out_len = a.len - 1;
	return CM_OK;
}

/* ---------------------------------------------------------------- pre-tokenizers */

/* Split w into pieces at the literal pat with a tokenizers behaviour. */
static void
split_literal(const char *w, size_t n, const char *pat, size_t pn, hf_split_behavior beh,
			  words *out)
{
	size_t		start = 0,
				pos = 0;
	size_t		pending = SIZE_MAX;	/* merged-with-next: start of the delimiter */

	while (pos < n)
	{
		if (pn > 0 && n - pos >= pn && memcmp(w + pos, pat, pn) == 0)
		{
			size_t		dend = pos + pn;

			if (beh == SPLIT_CONTIGUOUS)
				while (n - dend >= pn && memcmp(w + dend, pat, pn) == 0)
					dend += pn;
			switch (beh)
			{
				case SPLIT_REMOVED:
					if (pos > start)
						words_push(out, w + start, pos - start);
					start = dend;
					break;
				case SPLIT_ISOLATED:
				case SPLIT_CONTIGUOUS:
					if (pos > start)
						words_push(out, w + start, pos - start);
					words_push(out, w + pos, dend - pos);
					start = dend;
					break;
				case SPLIT_MERGED_WITH_PREVIOUS:
					words_push(out, w + start, dend - start);
					start = dend;
					break;
				case SPLIT_MERGED_WITH_NEXT:
					if (pos > start && pending == SIZE_MAX)
						words_push(out, w + start, pos - start);
					else if (pending != SIZE_MAX && pos > pending)
						words_push(out, w + pending, pos - pending);
					pending = pos;
					start = dend;
					break;
			}
			pos = dend;
			continue;
		}
		pos++;
	}
	if (beh == SPLIT_MERGED_WITH_NEXT && pending != SIZE_MAX)
	{
		if (n > pending)
			words_push(out, w + pending, n - pending);
	}
	else if (n > start)
		words_push(out, w + start, n - start);
}

/* Split at characters for which the predicate holds. */
typedef enum char_pred
{
	PRED_SPACE,
	PRED_PUNCT,
	PRED_DIGIT
} char_pred;

static bool
pred(char_pred p, int32_t cp)
{
	switch (p)
	{
		case PRED_SPACE:
			return is_ws(cp);
		case PRED_PUNCT:
			return is_tokenizers_punct(cp);
		case PRED_DIGIT:
			return utf8proc_category(cp) == UTF8PROC_CATEGORY_ND;
	}
	return false;
}

/* Isolate (each char alone, or contiguous runs) or remove matching chars. */
static void
split_chars(const char *w, size_t n, char_pred p, hf_split_behavior beh, words *out)
{
	size_t		start = 0,
				pos = 0;

	while (pos < n)
	{
		int32_t		cp;
		size_t		l = next_cp(w + pos, n - pos, &cp);

		if (pred(p, cp))
		{
			size_t		dend = pos + l;

			if (beh == SPLIT_CONTIGUOUS)
				while (dend < n)
				{
					int32_t		c2;
					size_t		l2 = next_cp(w + dend, n - dend, &c2);

					if (!pred(p, c2))
						break;
					dend += l2;
				}
			if (pos > start)
				words_push(out, w + start, pos - start);
			if (beh != SPLIT_REMOVED)
				words_push(out, w + pos, dend - pos);
			start = dend;
			pos = dend;
			continue;
		}
		pos += l;
	}
	if (n > start)
		words_push(out, w + start, n - start);
}

static bool
is_word_char(int32_t cp)
{
	utf8proc_category_t c;

	if (cp == '_')
		return true;
	c = utf8proc_category(cp);
	return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
		(c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME) ||
		(c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) || c == UTF8PROC_CATEGORY_PC;
}

/* \w+|[^\w\s]+ */
static void
split_whitespace_regex(const char *w, size_t n, words *out)
{
	size_t		pos = 0;

	while (pos < n)
	{
		int32_t		cp;
		size_t		l = next_cp(w + pos, n - pos, &cp);
		size_t		start = pos;
		int			cls;

		if (is_ws(cp))
		{
			pos += l;
			continue;
		}
		cls = is_word_char(cp);
		while (pos < n)
		{
			l = next_cp(w + pos, n - pos, &cp);
			if (is_ws(cp) || is_word_char(cp) != cls)
				break;
			pos += l;
		}
		words_push(out, w + start, pos - start);
	}
}

typedef enum gpt2_class
{
	G_SPACE,
	G_LETTER,
	G_NUMBER,
	G_OTHER
} gpt2_class;

static gpt2_class
gclass(int32_t cp)
{
	utf8proc_category_t c;

	if (is_ws(cp))
		return G_SPACE;
	c = utf8proc_category(cp);
	if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO)
		return G_LETTER;
	if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO)
		return G_NUMBER;
	return G_OTHER;
}

/*
 * GPT-2's pattern, as ByteLevel uses it:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 */
static void
split_gpt2(const char *w, size_t n, words *out)
{
	static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
	size_t		pos = 0;

	while (pos < n)
	{
		size_t		start = pos;
		int32_t		cp;
		size_t		l;
		bool		done = false;

		for (int i = 0; i < 7 && !done; i++)
		{
			size_t		cl = strlen(contractions[i]);

			if (n - pos >= cl && memcmp(w + pos, contractions[i], cl) == 0)
			{
				words_push(out, w + pos, cl);
				pos += cl;
				done = true;
			}
		}
		if (done)
			continue;
		l = next_cp(w + pos, n - pos, &cp);
		{
			size_t		p2 = pos;
			int32_t		c2 = cp;
			size_t		l2 = l;
			gpt2_class	k;

			if (cp == ' ' && pos + 1 < n)
			{
				p2 = pos + 1;
				l2 = next_cp(w + p2, n - p2, &c2);
			}
			k = gclass(c2);
			if (k != G_SPACE && (p2 == pos || cp == ' '))
			{
				size_t		e = p2 + l2;

				while (e < n)
				{
					int32_t		c3;
					size_t		l3 = next_cp(w + e, n - e, &c3);

					if (gclass(c3) != k)
						break;
					e += l3;
				}
				words_push(out, w + start, e - start);
				pos = e;
				continue;
			}
		}
		/* whitespace: \s+(?!\S) then \s+ */
		{
			size_t		e = pos;
			size_t		last = pos;

			while (e < n)
			{
				int32_t		c3;
				size_t		l3 = next_cp(w + e, n - e, &c3);

				if (!is_ws(c3))
					break;
				last = e;
				e += l3;
			}
			if (e < n && last > pos)
				e = last;		/* leave one space for the next word */
			if (e == pos)
				e = pos + l;
			words_push(out, w + start, e - start);
			pos = e;
		}
	}
}

static void
apply_pre(const hf_pre *pt, bool first_word, const char *w, size_t n, words *out)
{
	switch (pt->kind)
	{
		case PRE_METASPACE:
			{
				sbuf		t = {0};
				bool		prepend = pt->prepend == 2 || (pt->prepend == 1 && first_word);

				/* spaces become the replacement first; then it is prepended if absent */
				if (prepend && !(n > 0 && w[0] == ' ') &&
					!(n >= pt->pattern_len && memcmp(w, pt->pattern, pt->pattern_len) == 0))
					sb_add(&t, pt->pattern, pt->pattern_len);
				for (size_t i = 0; i < n; i++)
				{
					if (w[i] == ' ')
						sb_add(&t, pt->pattern, pt->pattern_len);
					else
						sb_add(&t, w + i, 1);
				}
				if (pt->split)
					split_literal(t.p, t.len, pt->pattern, pt->pattern_len, SPLIT_MERGED_WITH_NEXT, out);
				else if (t.len > 0)
					words_push(out, t.p, t.len);
				sb_merge(&out->text, &t);
				sb_free(&t);
				return;
			}
		case PRE_SPLIT:
			if (!pt->invert)
				split_literal(w, n, pt->pattern, pt->pattern_len, pt->behavior, out);
			else
				words_push(out, w, n);
			return;
		case PRE_WHITESPACE_SPLIT:
			split_chars(w, n, PRED_SPACE, SPLIT_REMOVED, out);
			return;
		case PRE_WHITESPACE:
			split_whitespace_regex(w, n, out);
			return;
		case PRE_BERT:
			{
				words		tmp = {0};

				split_chars(w, n, PRED_SPACE, SPLIT_REMOVED, &tmp);
				for (size_t i = 0; i < tmp.n; i++)
					split_chars(tmp.text.p + tmp.start[i], tmp.len[i], PRED_PUNCT, SPLIT_ISOLATED, out);
				out->failed |= tmp.failed;
				sb_merge(&out->text, &tmp.text);
				words_free(&tmp);
				return;
			}
		case PRE_PUNCTUATION:
			split_chars(w, n, PRED_PUNCT, pt->behavior, out);
			return;
		case PRE_DIGITS:
			split_chars(w, n, PRED_DIGIT, pt->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, out);
			return;
		case PRE_BYTELEVEL:
			{
				sbuf		t = {0};
				words		tmp = {0};

				if (pt->add_prefix_space && first_word && n > 0 && w[0] != ' ')
					sb_add(&t, " ", 1);
				sb_add(&t, w, n);
				if (pt->use_regex)
					split_gpt2(t.p, t.len, &tmp);
				else if (t.len > 0)
					words_push(&tmp, t.p, t.len);
				for (size_t i = 0; i < tmp.n; i++)
				{
					sbuf		m = {0};

					for (size_t k = 0; k < tmp.len[i]; k++)
						sb_add_cp(&m, cm_bpe_byte_char((unsigned char) tmp.text.p[tmp.start[i] + k]));
					words_push(out, m.p, m.len);
					sb_merge(&out->text, &m);
					sb_free(&m);
				}
				sb_merge(&out->text, &t);
				out->failed |= tmp.failed;
				sb_merge(&out->text, &tmp.text);
				sb_free(&t);
				words_free(&tmp);
				return;
			}
	}
}

/* ---------------------------------------------------------------- models */

/* Output of one encode call. */
typedef struct emitter
{
	int32_t    *ids;
	size_t		n;
	size_t		limit;
} emitter;

static void
emit(emitter *e, int32_t id)
{
	if (e->n < e->limit)
		e->ids[e->n++] = id;
}

static bool
full(const emitter *e)
{
	return e->n >= e->limit;
}

/* Scratch of one encode call. */
typedef struct scratch
{
	sbuf		a,
				b,
				c;
	words		w1,
				w2;
	int32_t    *syms;
	size_t		syms_cap;
	double	   *best;
	int32_t    *from;
	int32_t    *best_id;
	size_t		lattice_cap;
	size_t		lattice_steps;	/* of this encode call, bounded */
	cm_bpe_work bpe;
} scratch;

static void
scratch_free(scratch *s)
{
	sb_free(&s->a);
	sb_free(&s->b);
	sb_free(&s->c);
	words_free(&s->w1);
	words_free(&s->w2);
	free(s->syms);
	free(s->best);
	free(s->from);
	free(s->best_id);
	cm_bpe_work_free(&s->bpe);
}

static bool
reserve_syms(scratch *s, size_t n)
{
	int32_t    *p;

	if (n <= s->syms_cap)
		return true;
	p = realloc(s->syms, n * sizeof(int32_t));
	if (p == NULL)
		return false;
	s->syms = p;
	s->syms_cap = n;
	return true;
}

/* Append id, fusing consecutive unknowns when asked. */
static void
push_sym(const cm_hf_tokenizer *tok, int32_t *syms, size_t *n, int32_t id)
{
	if (tok->fuse_unk && id == tok->unk_id && *n > 0 && syms[*n - 1] == tok->unk_id)
		return;
	syms[(*n)++] = id;
}

/* tokenizers' BPE model on one word. */
static cm_status
bpe_word(const cm_hf_tokenizer *tok, scratch *s, const char *w, size_t n, emitter *e,
		 cm_error *err)
{
	size_t		ns = 0,
				left;
	size_t		pre_len = tok->subword_prefix ? strlen(tok->subword_prefix) : 0;
	size_t		suf_len = tok->word_suffix ? strlen(tok->word_suffix) : 0;
	cm_status	st;

	if (n == 0)
		return CM_OK;
	if (tok->ignore_merges)
	{
		int32_t		id = cm_hf_vocab_find(tok, w, n);

		if (id >= 0)
		{
			emit(e, id);
			return CM_OK;
		}
	}
	/* a character may become up to 4 byte tokens */
	if (!reserve_syms(s, n * 4 + 1))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	for (size_t pos = 0; pos < n;)
	{
		int32_t		cp,
					id;
		size_t		l = next_cp(w + pos, n - pos, &cp);
		bool		first = pos == 0,
					last = pos + l == n;

		s->c.len = 0;
		if (!first && pre_len)
			sb_add(&s->c, tok->subword_prefix, pre_len);
		sb_add(&s->c, w + pos, l);
		if (last && suf_len)
			sb_add(&s->c, tok->word_suffix, suf_len);
		if (s->c.failed)
			return work_failed(s->c.too_long, err);
		id = cm_hf_vocab_find(tok, s->c.p, s->c.len);
		if (id < 0 && tok->byte_fallback)
		{
			bool		all = true;

			for (size_t k = 0; k < l; k++)
				all &= tok->byte_id[(unsigned char) w[pos + k]] >= 0;
			if (all)
			{
				for (size_t k = 0; k < l; k++)
					s->syms[ns++] = tok->byte_id[(unsigned char) w[pos + k]];
				pos += l;
				continue;
			}
		}
		if (id < 0)
		{
			if (tok->unk_id < 0)
				return cm_set_error(err, CM_ERR_INPUT,
									"a character of the text is not in the vocabulary and the tokenizer has no unknown token");
			id = tok->unk_id;
		}
		push_sym(tok, s->syms, &ns, id);
		pos += l;
	}
	st = cm_bpe_merge(&tok->merges, &s->bpe, s->syms, ns, &left, err);
	if (st != CM_OK)
		return st;
	for (size_t i = 0; i < left && !full(e); i++)
		emit(e, s->syms[i]);
	return CM_OK;
}

/* WordPiece: greedy longest match, "##" continuations. */
static cm_status
wordpiece_word(const cm_hf_tokenizer *tok, scratch *s, const char *w, size_t n, emitter *e,
			   cm_error *err)
{
	size_t		chars = 0,
				pos = 0,
				ns = 0;
	size_t		pre_len = tok->subword_prefix ? strlen(tok->subword_prefix) : 0;

	for (size_t p = 0; p < n; chars++)
	{
		int32_t		cp;

		p += next_cp(w + p, n - p, &cp);
	}
	if ((int) chars > tok->max_word_chars)
	{
		if (tok->unk_id >= 0)
			emit(e, tok->unk_id);
		return CM_OK;
	}
	if (!reserve_syms(s, n + 1))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	while (pos < n)
	{
		size_t		end = n;
		int32_t		found = -1;

		while (end > pos)
		{
			s->c.len = 0;
			if (pos > 0)
				sb_add(&s->c, tok->subword_prefix, pre_len);
			sb_add(&s->c, w + pos, end - pos);
			if (s->c.failed)
				return work_failed(s->c.too_long, err);
			if ((found = cm_hf_vocab_find(tok, s->c.p, s->c.len)) >= 0)
				break;
			/* back off one character */
			do
				end--;
			while (end > pos && ((unsigned char) w[end] & 0xC0) == 0x80);
		}
		if (found < 0)
		{
			if (tok->unk_id >= 0)
				emit(e, tok->unk_id);
			return CM_OK;
		}
		s->syms[ns++] = found;
		pos = end;
	}
	for (size_t i = 0; i < ns && !full(e); i++)
		emit(e, s->syms[i]);
	return CM_OK;
}

static cm_status
lattice_limit(cm_error *err)
{
	cm_set_error(err, CM_ERR_LIMIT,
				 "text needs more than %d steps of the tokenizer's lattice (its vocabulary has very long pieces)",
				 HF_MAX_LATTICE_STEPS);
	cm_error_set_limit(err, CM_LIMIT_OTHER);
	return CM_ERR_LIMIT;
}

/*
 * Unigram: the best-scoring segmentation (Viterbi over every vocabulary
 * piece that starts at each position), an unknown character scoring the
 * lowest piece score minus 10, consecutive unknowns fused, unknowns spelled
 * as byte tokens with byte fallback.  Path scores accumulate in float for a
 * SentencePiece model, in double for tokenizer.json, as each reference does.
 */
static cm_status
unigram_word(const cm_hf_tokenizer *tok, scratch *s, const char *w, size_t n, emitter *e,
			 cm_error *err)
{
	size_t		ns = 0;
	double		unk_score = tok->min_score - K_UNK_PENALTY;

	if (n == 0)
		return CM_OK;
	if (n + 1 > s->lattice_cap)
	{
		double	   *b = realloc(s->best, (n + 1) * sizeof(double));
		int32_t    *f,
				   *i;

		if (b == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
		s->best = b;
		f = realloc(s->from, (n + 1) * sizeof(int32_t));
		if (f == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
		s->from = f;
		i = realloc(s->best_id, (n + 1) * sizeof(int32_t));
		if (i == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
		s->best_id = i;
		s->lattice_cap = n + 1;
	}
	if (n > INT32_MAX || !reserve_syms(s, n * 4 + 1))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
	for (size_t i = 0; i <= n; i++)
	{
		s->from[i] = -1;
		s->best[i] = 0;
		s->best_id[i] = -1;
	}
	s->from[0] = 0;
	for (size_t start = 0; start < n;)
	{
		int32_t		cp;
		size_t		mblen = next_cp(w + start, n - start, &cp);
		bool		single = false;
		double		here = s->best[start];
		size_t		lo,
					hi;

		if (s->from[start] < 0)
		{
			start += mblen;
			continue;
		}
		/*
		 * The pieces that start here, found by walking the sorted pieces
		 * as a trie, one byte at a time (as SentencePiece and tokenizers
		 * walk theirs): the work is one binary search per byte of the
		 * longest piece that matches here, however long the vocabulary's
		 * longest piece is.
		 */
		lo = 0;
		hi = (size_t) tok->n_by_bytes;
		for (size_t len = 1; start + len <= n; len++)
		{
			int32_t		id;
			double		score,
						cand;

			if (++s->lattice_steps > HF_MAX_LATTICE_STEPS)
				return lattice_limit(err);
			if (!pieces_narrow(tok, &lo, &hi, len - 1, (unsigned char) w[start + len - 1]))
				break;
			id = tok->by_bytes[lo];
			if (tok->str_len[id] != len)
				continue;
			/* only whole characters */
			if (start + len < n && ((unsigned char) w[start + len] & 0xC0) == 0x80)
				continue;
			if (tok->float_scores)
			{
				/*
				 * SentencePiece's arithmetic exactly: its piece score is a
				 * double (a user-defined piece's is computed in float, then
				 * 0.1 taken in double), added to the float path score in
				 * double, compared in double with the float stored so far,
				 * stored as a float.  Ties between segmentations are decided
				 * by that rounding.
				 */
				score = tok->user_defined[id] ? (double) ((float) len * (float) tok->max_score) - 0.1
					: (double) (float) tok->score[id];
				cand = score + (double) (float) here;
			}
			else
			{
				score = tok->user_defined[id] ? (double) len * tok->max_score - 0.1 : tok->score[id];
				cand = here + score;
			}
			if (s->from[start + len] < 0 || cand > s->best[start + len])
			{
				s->best[start + len] = tok->float_scores ? (double) (float) cand : cand;
				s->from[start + len] = (int32_t) start;
				s->best_id[start + len] = id;
			}
			if (len == mblen)
				single = true;
		}
		if (!single)
		{
			/* the unknown piece's score is a float: a float sum there */
			double		cand = tok->float_scores ? (double) ((float) unk_score + (float) here)
				: here + unk_score;

			if (s->from[start + mblen] < 0 || cand > s->best[start + mblen])
			{
				s->best[start + mblen] = cand;
				s->from[start + mblen] = (int32_t) start;
				s->best_id[start + mblen] = -2;	/* unknown */
			}
		}
		start += mblen;
	}
	/* backtrack into syms, reversed, then walk forwards */
	{
		size_t		pieces = 0;

		for (size_t end = n; end > 0; end = (size_t) s->from[end])
			pieces++;
		{
			size_t		k = pieces;
			size_t	   *spans = malloc(pieces * 2 * sizeof(size_t));

			if (spans == NULL)
				return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
			for (size_t end = n; end > 0; end = (size_t) s->from[end])
			{
				k--;
				spans[2 * k] = (size_t) s->from[end];
				spans[2 * k + 1] = end;
			}
			for (size_t p = 0; p < pieces; p++)
			{
				size_t		a = spans[2 * p],
							b = spans[2 * p + 1];
				int32_t		id = s->best_id[b];

				if (id >= 0)
				{
					s->syms[ns++] = id;
					continue;
				}
				if (tok->byte_fallback)
				{
					bool		all = true;

					for (size_t q = a; q < b; q++)
						all &= tok->byte_id[(unsigned char) w[q]] >= 0;
					if (all)
					{
						for (size_t q = a; q < b; q++)
							s->syms[ns++] = tok->byte_id[(unsigned char) w[q]];
						continue;
					}
				}
				if (tok->unk_id < 0)
				{
					free(spans);
					return cm_set_error(err, CM_ERR_INPUT,
										"a character of the text is not in the vocabulary and the tokenizer has no unknown token");
				}
				push_sym(tok, s->syms, &ns, tok->unk_id);
			}
			free(spans);
		}
	}
	for (size_t i = 0; i < ns && !full(e); i++)
		emit(e, s->syms[i]);
	return CM_OK;
}

static cm_status
model_word(const cm_hf_tokenizer *tok, scratch *s, const char *w, size_t n, emitter *e,
		   cm_error *err)
{
	switch (tok->model)
	{
		case HF_BPE:
			return bpe_word(tok, s, w, n, e, err);
		case HF_WORDPIECE:
			return wordpiece_word(tok, s, w, n, e, err);
		case HF_UNIGRAM:
			return unigram_word(tok, s, w, n, e, err);
	}
	return CM_OK;
}

/* ---------------------------------------------------------------- encoding */

/* Normalise, pre-tokenise and tokenise one stretch without added tokens. */
static cm_status
encode_segment(const cm_hf_tokenizer *tok, scratch *s, const char *text, size_t len,
			   bool first_segment, emitter *e, cm_error *err)
{
	words	   *cur = &s->w1,
			   *next = &s->w2;
	size_t		drop = 0;

	if (tok->spm_siglip)
	{
		/* SiglipTokenizer: canonicalise, then SentencePiece on "<unk>" + it */
		s->c.len = 0;
		s->a.len = 0;
		apply_norm(&tok->norm[0], text, len, &s->a);	/* NORM_SIGLIP_CANON */
		sb_add(&s->c, tok->unk_string, strlen(tok->unk_string));
		sb_add(&s->c, s->a.p, s->a.len);
		s->b.len = 0;
		apply_norm(&tok->norm[1], s->c.p, s->c.len, &s->b);	/* NORM_SPM */
		if (s->a.failed || s->b.failed || s->c.failed)
			return work_failed(s->a.too_long || s->b.too_long || s->c.too_long, err);
		drop = (size_t) tok->spm_unk_prefix;
		{
			emitter		tmp;
			cm_status	st;

			/* the tokens of "<unk>" come first and are dropped */
			tmp.limit = e->limit - e->n + drop;
			tmp.ids = malloc(tmp.limit * sizeof(int32_t));
			tmp.n = 0;
			if (tmp.ids == NULL)
				return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
			st = model_word(tok, s, s->b.p, s->b.len, &tmp, err);
			for (size_t i = drop; st == CM_OK && i < tmp.n; i++)
				emit(e, tmp.ids[i]);
			free(tmp.ids);
			return st;
		}
	}

	normalize_all(tok, text, len, &s->a, &s->b);
	if (s->a.failed)
		return work_failed(s->a.too_long, err);
	words_clear(cur);
	if (s->a.len > 0)
		words_push(cur, s->a.p, s->a.len);
	for (int i = 0; i < tok->n_pre; i++)
	{
		words	   *t;

		words_clear(next);
		for (size_t k = 0; k < cur->n; k++)
			apply_pre(&tok->pre[i], first_segment && k == 0, cur->text.p + cur->start[k], cur->len[k], next);
		if (next->failed || next->text.failed)
			return work_failed(next->text.too_long, err);
		t = cur;
		cur = next;
		next = t;
	}
	for (size_t k = 0; k < cur->n && !full(e); k++)
	{
		cm_status	st = model_word(tok, s, cur->text.p + cur->start[k], cur->len[k], e, err);

		if (st != CM_OK)
			return st;
	}
	return CM_OK;
}

/* The added token starting at text[pos], longest first; -1 if none. */
static int
added_at(const cm_hf_tokenizer *tok, const char *text, size_t len, size_t pos)
{
	int			best = -1;

	for (int i = 0; i < tok->n_added; i++)
	{
		const hf_added *a = &tok->added[i];

		if (a->len <= len - pos && memcmp(text + pos, a->content, a->len) == 0 &&
			(best < 0 || a->len > tok->added[best].len))
			best = i;
	}
	return best;
}

static size_t
skip_ws_back(const char *text, size_t from, size_t limit)
{
	while (from > limit)
	{
		size_t		s = from - 1;
		int32_t		cp;

		while (s > limit && ((unsigned char) text[s] & 0xC0) == 0x80)
			s--;
		next_cp(text + s, from - s, &cp);
		if (!is_ws(cp))
			break;
		from = s;
	}
	return from;
}

static size_t
skip_ws_fwd(const char *text, size_t from, size_t len)
{
	while (from < len)
	{
		int32_t		cp;
		size_t		l = next_cp(text + from, len - from, &cp);

		if (!is_ws(cp))
			break;
		from += l;
	}
	return from;
}

cm_status
cm_hf_tokenizer_encode(const cm_hf_tokenizer *tok, const char *text, size_t len,
					   int32_t *ids, int max_ids, int *n_ids, cm_error *err)
{
	scratch		s;
	emitter		e;
	size_t		bad = 0;
	size_t		seg = 0,
				pos = 0;
	bool		first = true;
	const char *t;
	size_t		tlen;
	cm_status	st = CM_OK;
	int			specials;

	if (n_ids != NULL)
		*n_ids = 0;
	if (tok == NULL || ids == NULL || n_ids == NULL || (text == NULL && len > 0))
		return cm_set_error(err, CM_ERR_INPUT, "tokenizer, text or output is missing");
	specials = tok->n_prefix + tok->n_suffix;
	if (max_ids < specials + 1)
		return cm_set_error(err, CM_ERR_INPUT, "max_ids is %d; the tokenizer adds %d special tokens",
							max_ids, specials);
	if (text == NULL)
		text = "";
	if (!cm_tok_utf8_valid((const uint8_t *) text, len, &bad))
		return cm_set_error(err, CM_ERR_INPUT, "text is not valid UTF-8: bad byte 0x%02X at byte offset %zu",
							(unsigned char) text[bad], bad);
	if (len > CM_HF_MAX_TEXT_BYTES)
	{
		/* bounded work: cut at a character boundary */
		len = CM_HF_MAX_TEXT_BYTES;
		while (len > 0 && ((unsigned char) text[len] & 0xC0) == 0x80)
			len--;
	}

	memset(&s, 0, sizeof(s));
	e.ids = ids + tok->n_prefix;
	e.n = 0;
	e.limit = (size_t) (max_ids - specials);

	/* text-wide steps of SiglipTokenizer */
	t = text;
	tlen = len;
	if (tok->lower_first)
	{
		if (tok->spm_siglip)
			lower_text(text, len, &s.a);	/* SiglipTokenizer: a character at a time */
		else
			lower_text_python(text, len, &s.a);	/* SigLIP 2: text.lower() */
		sb_add(&s.c, s.a.p, s.a.len);
		t = s.c.p;
		tlen = s.c.len;
	}
	if (tok->siglip_prefix)
	{
		sbuf		p = {0};

		sb_add(&p, "\xe2\x96\x81", 3);
		for (size_t i = 0; i < tlen; i++)
		{
			if (i + 3 <= tlen && memcmp(t + i, "\xe2\x96\x81", 3) == 0)
			{
				sb_add(&p, " ", 1);
				i += 2;
			}
			else
				sb_add(&p, t + i, 1);
		}
		sb_free(&s.c);
		s.c = p;
		t = s.c.p;
		tlen = s.c.len;
	}
	if (s.a.failed || s.c.failed)
	{
		bool		too_long = s.a.too_long || s.c.too_long;

		scratch_free(&s);
		return work_failed(too_long, err);
	}
	/* the working copy must survive the scratch buffers used below */
	{
		char	   *own = NULL;

		if (t != text)
		{
			own = malloc(tlen + 1);
			if (own == NULL)
			{
				scratch_free(&s);
				return cm_set_error(err, CM_ERR_NOMEM, "out of memory tokenizing text");
			}
			if (tlen > 0)
				memcpy(own, t, tlen);
			t = own;
		}

		/* split on added tokens; the stretches between go through the pipeline */
		while (pos <= tlen && st == CM_OK && !full(&e))
		{
			int			a = pos < tlen && tok->n_added > 0 ? added_at(tok, t, tlen, pos) : -1;

			if (pos == tlen || a >= 0)
			{
				size_t		seg_end = pos;
				size_t		next_seg;

				if (a >= 0 && tok->added[a].lstrip)
					seg_end = skip_ws_back(t, pos, seg);
				if (seg_end > seg)
				{
					st = encode_segment(tok, &s, t + seg, seg_end - seg, first, &e, err);
					first = false;
				}
				if (pos == tlen || st != CM_OK)
					break;
				emit(&e, tok->added[a].id);
				first = false;
				next_seg = pos + tok->added[a].len;
				if (tok->added[a].rstrip)
					next_seg = skip_ws_fwd(t, next_seg, tlen);
				seg = pos = next_seg;
				continue;
			}
			{
				int32_t		cp;

				pos += next_cp(t + pos, tlen - pos, &cp);
			}
		}
		free(own);
	}
	scratch_free(&s);
	if (st != CM_OK)
		return st;
	for (int i = 0; i < tok->n_prefix; i++)
		ids[i] = tok->prefix_ids[i];
	for (int i = 0; i < tok->n_suffix; i++)
		ids[tok->n_prefix + e.n + i] = tok->suffix_ids[i];
	*n_ids = (int) e.n + specials;
	return CM_OK;
}

/* ---------------------------------------------------------------- accessors */

void
cm_hf_tokenizer_free(cm_hf_tokenizer *tok)
{
	if (tok == NULL)
		return;
	free(tok->strings);
	free(tok->str_off);
	free(tok->str_len);
	free(tok->slots);
	free(tok->score);
	free(tok->matchable);
	free(tok->user_defined);
	free(tok->by_bytes);
	cm_bpe_merges_free(&tok->merges);
	free(tok->subword_prefix);
	free(tok->word_suffix);
	for (int i = 0; i < tok->n_norm; i++)
	{
		free(tok->norm[i].a);
		free(tok->norm[i].b);
		charsmap_free(&tok->norm[i].charsmap);
		free(tok->norm[i].user_defined);
		free(tok->norm[i].user_defined_len);
	}
	for (int i = 0; i < tok->n_pre; i++)
		free(tok->pre[i].pattern);
	for (int i = 0; i < tok->n_added; i++)
		free(tok->added[i].content);
	free(tok->added);
	free(tok->unk_string);
	free(tok);
}

int32_t
cm_hf_tokenizer_vocab_size(const cm_hf_tokenizer *tok)
{
	return tok->n_vocab;
}

int32_t
cm_hf_tokenizer_token_id(const cm_hf_tokenizer *tok, const char *token)
{
	for (int i = 0; i < tok->n_added; i++)
		if (strcmp(tok->added[i].content, token) == 0)
			return tok->added[i].id;
	return cm_hf_vocab_find(tok, token, strlen(token));
}

const char *
cm_hf_tokenizer_kind(const cm_hf_tokenizer *tok)
{
	return tok->kind_name;
}

void
cm_hf_tokenizer_set_lower_case(cm_hf_tokenizer *tok, bool lower)
{
	tok->lower_first = lower;
}
