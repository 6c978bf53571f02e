/*
 * tokenizer_text.c
 *	  Unicode side of the CLIP tokenizer: UTF-8 validation, NFC + lower case,
 *	  and the pre-tokenisation pattern, with character classes from utf8proc.
 *
 * The reference is Hugging Face's CLIPTokenizer as transformers 5 builds it
 * on the tokenizers library: normalizers NFC -> Replace(\s+, " ") ->
 * Lowercase, then Split on CLIP's pattern (matches kept, the rest dropped).
 * The golden token ids agree with that pipeline and not with the older
 * Python one (which split CJK ideographs apart or ran ftfy's HTML unescape).
 */
#include "tokenizer_text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Longest canonical decomposition of one code point is 4; keep slack. */
#define MAX_DECOMPOSITION 32

/* Runs of combining marks at most this long are sorted by insertion. */
#define INSERTION_SORT_MAX 16

void
cm_tok_codepoints_free(cm_tok_codepoints *buf)
{
	free(buf->cp);
	free(buf->sort_tmp);
	memset(buf, 0, sizeof(*buf));
}

static bool
grow_int32(int32_t **array, size_t *cap, size_t need)
{
	size_t		new_cap;
	size_t		bytes;
	int32_t    *p;

	if (need <= *cap)
		return true;
	new_cap = *cap < 64 ? 64 : *cap;
	while (new_cap < need)
	{
		if (!cm_mul_size(new_cap, 2, &new_cap))
			return false;
	}
	if (!cm_mul_size(new_cap, sizeof(int32_t), &bytes))
		return false;
	p = realloc(*array, bytes);
	if (p == NULL)
		return false;
	*array = p;
	*cap = new_cap;
	return true;
}

bool
cm_tok_utf8_valid(const uint8_t *s, size_t len, size_t *bad_offset)
{
	size_t		i = 0;

	while (i < len)
	{
		uint8_t		c = s[i];
		size_t		n;
		uint8_t		lo = 0x80,
					hi = 0xBF;	/* allowed range of the first continuation */

		if (c < 0x80)
		{
			uint64_t	word;

			/* ASCII eight bytes at a time: a long text is checked in full */
			while (len - i >= sizeof(word))
			{
				memcpy(&word, s + i, sizeof(word));
				if (word & 0x8080808080808080ULL)
					break;
				i += sizeof(word);
			}
			if (i < len && s[i] < 0x80)
				i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;		/* overlong */
			else if (c == 0xED)
				hi = 0x9F;		/* surrogates */
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			if (c == 0xF0)
				lo = 0x90;		/* overlong */
			else if (c == 0xF4)
				hi = 0x8F;		/* above U+10FFFF */
		}
		else
		{
			*bad_offset = i;
			return false;
		}
		if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
		{
			*bad_offset = i;
			return false;
		}
		for (size_t k = 2; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
			{
				*bad_offset = i;
				return false;
			}
		}
		i += n + 1;
	}
	return true;
}

size_t
cm_tok_utf8_decode(const uint8_t *s, size_t len, int32_t *cp)
{
	uint8_t		c = s[0];

	if (c < 0x80 || len < 2)
	{
		*cp = c;
		return 1;
	}
	if (c < 0xE0)
	{
		*cp = ((int32_t) (c & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (c < 0xF0 && len >= 3)
	{
		*cp = ((int32_t) (c & 0x0F) << 12) | ((int32_t) (s[1] & 0x3F) << 6) |
			(s[2] & 0x3F);
		return 3;
	}
	if (len >= 4)
	{
		*cp = ((int32_t) (c & 0x07) << 18) | ((int32_t) (s[1] & 0x3F) << 12) |
			((int32_t) (s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	/* Only reachable on invalid input, which callers validate first. */
	*cp = c;
	return 1;
}

static bool
is_cased(int32_t cp)
{
	utf8proc_category_t c = utf8proc_category(cp);

	return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static bool
is_case_ignorable(int32_t cp)
{
	utf8proc_category_t c = utf8proc_category(cp);

	return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
		c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == '.' || cp == ':' ||
		cp == 0xB7 || cp == 0x2018 || cp == 0x2019 || cp == 0x2024 || cp == 0xFE52 || cp == 0xFF07 ||
		cp == 0xFF0E;
}

bool
cm_tok_final_sigma(const char *in, size_t n, size_t pos, size_t len)
{
	const uint8_t *u = (const uint8_t *) in;
	bool		before = false,
				after = false;
	size_t		p = pos;

	while (p > 0)
	{
		size_t		s = p - 1;
		int32_t		cp;

		while (s > 0 && (u[s] & 0xC0) == 0x80)
			s--;
		cm_tok_utf8_decode(u + s, p - s, &cp);
		p = s;
		if (is_case_ignorable(cp))
			continue;
		before = is_cased(cp);
		break;
	}
	for (p = pos + len; p < n;)
	{
		int32_t		cp;
		size_t		l = cm_tok_utf8_decode(u + p, n - p, &cp);

		p += l;
		if (is_case_ignorable(cp))
			continue;
		after = is_cased(cp);
		break;
	}
	return before && !after;
}

bool
cm_tok_is_space(int32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
	if (cp == 0x85)
		return true;
	switch (utf8proc_category(cp))
	{
		case UTF8PROC_CATEGORY_ZS:
		case UTF8PROC_CATEGORY_ZL:
		case UTF8PROC_CATEGORY_ZP:
			return true;
		default:
			return false;
	}
}

typedef enum char_class
{
	CLASS_SPACE,
	CLASS_LETTER,
	CLASS_NUMBER,
	CLASS_OTHER
} char_class;

static char_class
classify(int32_t cp)
{
	if (cp < 0x80)
	{
		if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))
			return CLASS_LETTER;
		if (cp >= '0' && cp <= '9')
			return CLASS_NUMBER;
		if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
			return CLASS_SPACE;
		return CLASS_OTHER;
	}
	switch (utf8proc_category(cp))
	{
		case UTF8PROC_CATEGORY_LU:
		case UTF8PROC_CATEGORY_LL:
		case UTF8PROC_CATEGORY_LT:
		case UTF8PROC_CATEGORY_LM:
		case UTF8PROC_CATEGORY_LO:
			return CLASS_LETTER;
		case UTF8PROC_CATEGORY_ND:
		case UTF8PROC_CATEGORY_NL:
		case UTF8PROC_CATEGORY_NO:
			return CLASS_NUMBER;
		case UTF8PROC_CATEGORY_ZS:
		case UTF8PROC_CATEGORY_ZL:
		case UTF8PROC_CATEGORY_ZP:
			return CLASS_SPACE;
		default:
			return cp == 0x85 ? CLASS_SPACE : CLASS_OTHER;
	}
}

static int
combining_class(int32_t cp)
{
	return cp < 0x300 ? 0 : utf8proc_get_property(cp)->combining_class;
}

/* Stable sort of a run of combining marks by combining class. */
static void
sort_marks(int32_t *run, size_t n, int32_t *tmp)
{
	if (n <= INSERTION_SORT_MAX)
	{
		for (size_t i = 1; i < n; i++)
		{
			int32_t		v = run[i];
			int			cv = combining_class(v);
			size_t		j = i;

			while (j > 0 && combining_class(run[j - 1]) > cv)
			{
				run[j] = run[j - 1];
				j--;
			}
			run[j] = v;
		}
		return;
	}

	/*
	 * Bottom-up merge sort: a hostile text may hold a long run of marks, and
	 * the quadratic reordering in utf8proc's own NFC would stall on it.
	 */
	for (size_t width = 1; width < n; width *= 2)
	{
		for (size_t lo = 0; lo < n; lo += 2 * width)
		{
			size_t		mid = lo + width < n ? lo + width : n;
			size_t		hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t		a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
			{
				if (combining_class(run[b]) < combining_class(run[a]))
					tmp[k++] = run[b++];
				else
					tmp[k++] = run[a++];
			}
			while (a < mid)
				tmp[k++] = run[a++];
			while (b < hi)
				tmp[k++] = run[b++];
		}
		memcpy(run, tmp, n * sizeof(int32_t));
	}
}

static cm_status
canonical_order(cm_tok_codepoints *out, cm_error *err)
{
	size_t		i = 0;

	while (i < out->len)
	{
		size_t		start;

		if (combining_class(out->cp[i]) == 0)
		{
			i++;
			continue;
		}
		start = i;
		while (i < out->len && combining_class(out->cp[i]) != 0)
			i++;
		if (i - start > INSERTION_SORT_MAX &&
			!grow_int32(&out->sort_tmp, &out->sort_tmp_cap, i - start))
			return cm_set_error(err, CM_ERR_NOMEM,
								"out of memory normalising text");
		if (i - start > 1)
			sort_marks(out->cp + start, i - start, out->sort_tmp);
	}
	return CM_OK;
}

int
cm_tok_lower(int32_t cp, int32_t out[2])
{
	/*
	 * U+0130 (capital I with dot above) is the one character whose
	 * unconditional full lower-case mapping is two characters.
	 */
	if (cp == 0x130)
	{
		out[0] = 'i';
		out[1] = 0x307;
		return 2;
	}
	out[0] = utf8proc_tolower(cp);
	return 1;
}

static cm_status
lower_case(cm_tok_codepoints *out, cm_error *err)
{
	size_t		expand = 0;
	size_t		new_len;

	for (size_t i = 0; i < out->len; i++)
	{
		if (out->cp[i] == 0x130)
			expand++;
		else
			out->cp[i] = utf8proc_tolower(out->cp[i]);
	}
	if (expand == 0)
		return CM_OK;

	/*
	 * U+0130 (capital I with dot above) is the one character whose
	 * unconditional full lower-case mapping is two characters.
	 */
	if (!cm_add_size(out->len, expand, &new_len) ||
		!grow_int32(&out->cp, &out->cap, new_len))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory normalising text");
	for (size_t r = out->len, w = new_len; r > 0;)
	{
		int32_t		c = out->cp[--r];

		if (c == 0x130)
		{
			out->cp[--w] = 0x307;
			out->cp[--w] = 'i';
		}
		else
			out->cp[--w] = c;
	}
	out->len = new_len;
	return CM_OK;
}

cm_status
cm_tok_normalize(const uint8_t *text, size_t len, cm_tok_codepoints *out,
				 cm_error *err)
{
	bool		ascii = true;
	utf8proc_ssize_t composed;

	out->len = 0;
	for (size_t i = 0; i < len; i++)
	{
		if (text[i] >= 0x80)
		{
			ascii = false;
			break;
		}
	}
	if (ascii)
	{
		if (!grow_int32(&out->cp, &out->cap, len))
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory normalising text");
		for (size_t i = 0; i < len; i++)
		{
			uint8_t		c = text[i];

			out->cp[i] = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
		}
		out->len = len;
		return CM_OK;
	}

	/* Canonical decomposition, one code point at a time. */
	for (size_t i = 0; i < len;)
	{
		int32_t		cp;
		int			boundclass = 0;
		utf8proc_ssize_t n;
		size_t		need;

		i += cm_tok_utf8_decode(text + i, len - i, &cp);
		if (!cm_add_size(out->len, MAX_DECOMPOSITION, &need) ||
			!grow_int32(&out->cp, &out->cap, need))
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory normalising text");
		n = utf8proc_decompose_char(cp, out->cp + out->len, MAX_DECOMPOSITION,
									UTF8PROC_DECOMPOSE, &boundclass);
		if (n < 0 || n > MAX_DECOMPOSITION)
			return cm_set_error(err, CM_ERR_INPUT,
								"cannot normalise code point U+%04X", (unsigned) cp);
		out->len += (size_t) n;
	}
	if (canonical_order(out, err) != CM_OK)
		return err ? err->status : CM_ERR_NOMEM;

	/* Canonical composition: linear in utf8proc. */
	composed = utf8proc_normalize_utf32(out->cp, (utf8proc_ssize_t) out->len,
										UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (composed < 0)
		return cm_set_error(err, CM_ERR_INPUT, "cannot normalise text: %s",
							utf8proc_errmsg(composed));
	out->len = (size_t) composed;
	return lower_case(out, err);
}

const cm_tok_pattern cm_tok_clip_pattern = {{"<|startoftext|>", "<|endoftext|>"}, false};

/* ASCII c, or U+017F for 's' when the pattern folds it */
static bool
same_letter(int32_t cp, char c, bool long_s)
{
	return cp == (unsigned char) c || (long_s && c == 's' && cp == 0x17F);
}

/*
 * Whether cp starts with lit; *exact is cleared when a long s stood for an
 * "s".
 */
static bool
matches_literal(const int32_t *cp, size_t n, const char *lit, bool long_s, bool *exact)
{
	size_t		k = strlen(lit);

	if (n < k)
		return false;
	*exact = true;
	for (size_t i = 0; i < k; i++)
	{
		if (!same_letter(cp[i], lit[i], long_s))
			return false;
		*exact = *exact && cp[i] == (unsigned char) lit[i];
	}
	return true;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at cp, or 0. */
static size_t
contraction_length(const int32_t *cp, size_t n, bool long_s)
{
	if (n < 2 || cp[0] != '\'')
		return 0;
	if (same_letter(cp[1], 's', long_s))
		return 2;
	switch (cp[1])
	{
		case 't':
		case 'm':
		case 'd':
			return 2;
		case 'r':
		case 'v':
			return (n >= 3 && cp[2] == 'e') ? 3 : 0;
		case 'l':
			return (n >= 3 && cp[2] == 'l') ? 3 : 0;
		default:
			return 0;
	}
}

bool
cm_tok_next_pretoken(const int32_t *cp, size_t n, size_t *pos,
					 size_t *start, size_t *count, const cm_tok_pattern *pat,
					 int *special)
{
	size_t		i = *pos;
	size_t		k = 0;
	char_class	cls;
	bool		exact = false;
	int			s;

	while (i < n && classify(cp[i]) == CLASS_SPACE)
		i++;
	if (i >= n)
	{
		*pos = n;
		return false;
	}
	*start = i;
	*special = -1;

	for (s = 0; s < 2; s++)
		if (matches_literal(cp + i, n - i, pat->special[s], pat->long_s_is_s, &exact))
		{
			k = strlen(pat->special[s]);
			if (exact)
				*special = s;
			break;
		}
	if (s < 2)
		;
	else if ((k = contraction_length(cp + i, n - i, pat->long_s_is_s)) > 0)
		;
	else
	{
		cls = classify(cp[i]);
		k = 1;
		if (cls == CLASS_LETTER)
		{
			while (i + k < n && classify(cp[i + k]) == CLASS_LETTER)
				k++;
		}
		else if (cls == CLASS_OTHER)
		{
			while (i + k < n && classify(cp[i + k]) == CLASS_OTHER)
				k++;
		}
		/* a number is one code point */
	}
	*count = k;
	*pos = i + k;
	return true;
}
