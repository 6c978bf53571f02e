/*
 * text_clean.c
 *	  open_clip's SimpleTokenizer text cleaning: ftfy.fix_text (without its
 *	  mojibake repair), html.unescape twice, whitespace collapsed and
 *	  stripped, Python's str.lower().
 *
 * The steps follow ftfy 6.3's fix_and_explain and Python 3.11's html module
 * rule by rule; their data (entity names, width map, ...) is generated from
 * Python into text_clean_tables.h.  Text is handled as code points; every
 * step is one linear pass, and ftfy's repeat-until-unchanged loop is capped
 * at CM_CLEAN_MAX_ROUNDS per line.
 */
#include "text_clean.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text_clean_tables.h"
#include "tokenizer_text.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ftfy fixes text in segments of at most this many code points */
#define FTFY_MAX_SEGMENT 1000000

/* A growable code point array; failed is sticky. */
typedef struct cpbuf
{
	int32_t    *p;
	size_t		len;
	size_t		cap;
	bool		failed;
} cpbuf;

static void
cb_reserve(cpbuf *b, size_t extra)
{
	size_t		need,
				cap;
	int32_t    *q;

	if (b->failed)
		return;
	if (!cm_add_size(b->len, extra, &need))
	{
		b->failed = true;
		return;
	}
	if (need <= b->cap)
		return;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		if (!cm_mul_size(cap, 2, &cap))
		{
			b->failed = true;
			return;
		}
	if (cap > SIZE_MAX / sizeof(int32_t) || (q = realloc(b->p, cap * sizeof(int32_t))) == NULL)
	{
		b->failed = true;
		return;
	}
	b->p = q;
	b->cap = cap;
}

static void
cb_add(cpbuf *b, int32_t cp)
{
	cb_reserve(b, 1);
	if (!b->failed)
		b->p[b->len++] = cp;
}

static void
cb_add_n(cpbuf *b, const int32_t *cp, size_t n)
{
	cb_reserve(b, n);
	if (!b->failed && n > 0)
	{
		memcpy(b->p + b->len, cp, n * sizeof(int32_t));
		b->len += n;
	}
}

/* Append UTF-8 known to be valid (table values). */
static void
cb_add_utf8(cpbuf *b, const char *s)
{
	size_t		n = strlen(s);

	for (size_t i = 0; i < n;)
	{
		int32_t		cp;

		i += cm_tok_utf8_decode((const uint8_t *) s + i, n - i, &cp);
		cb_add(b, cp);
	}
}

static void
cb_free(cpbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void
cb_swap(cpbuf *a, cpbuf *b)
{
	cpbuf		t = *a;

	*a = *b;
	*b = t;
}

bool
cm_is_python_space(int32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
		cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
		cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---------------------------------------------------------------- entities */

static int
entity_cmp(const int32_t *name, size_t n, const char *key)
{
	size_t		i;

	for (i = 0; i < n && key[i] != '\0'; i++)
		if (name[i] != (unsigned char) key[i])
			return name[i] < (unsigned char) key[i] ? -1 : 1;
	if (i < n)
		return 1;
	return key[i] == '\0' ? 0 : -1;
}

/* The value of entity name[0..n) (without "&") in a sorted table, or NULL. */
static const char *
entity_find(const cm_entity *table, size_t count, const int32_t *name, size_t n)
{
	size_t		lo = 0,
				hi = count;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = entity_cmp(name, n, table[mid].name);

		if (c == 0)
			return table[mid].value;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* html.unescape's reading of a numeric reference to num (saturated). */
static void
numeric_reference(cpbuf *out, uint32_t num)
{
	for (size_t i = 0; i < N_ELEMS(cm_html_invalid_charrefs); i++)
		if (cm_html_invalid_charrefs[i][0] == num)
		{
			cb_add(out, (int32_t) cm_html_invalid_charrefs[i][1]);
			return;
		}
	if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
	{
		cb_add(out, 0xFFFD);
		return;
	}
	for (size_t i = 0; i < N_ELEMS(cm_html_invalid_codepoints); i++)
		if (cm_html_invalid_codepoints[i] == num)
			return;
	cb_add(out, (int32_t) num);
}

static bool
is_digit(int32_t c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(int32_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_alnum(int32_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
hex_value(int32_t c)
{
	return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/*
 * Python's html.unescape at in[i], which is '&': the reference it starts
 * (regex &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)) replaced
 * as html._replace_charref does, appended to out.  Returns the number of
 * code points consumed (1 when nothing matched: the '&' is copied).
 */
static size_t
html_unescape_at(const int32_t *in, size_t n, size_t i, cpbuf *out)
{
	size_t		j = i + 1;

	if (j < n && in[j] == '#')
	{
		uint32_t	num = 0;
		size_t		k = j + 1;
		bool		hex = k < n && (in[k] == 'x' || in[k] == 'X') && k + 1 < n && is_hex(in[k + 1]);

		if (hex)
			k++;
		if (k >= n || !(hex ? is_hex(in[k]) : is_digit(in[k])))
		{
			cb_add(out, '&');
			return 1;
		}
		for (; k < n && (hex ? is_hex(in[k]) : is_digit(in[k])); k++)
			num = num > 0x10FFFF ? num : num * (hex ? 16 : 10) + (uint32_t) (hex ? hex_value(in[k]) : in[k] - '0');
		if (k < n && in[k] == ';')
			k++;
		numeric_reference(out, num);
		return k - i;
	}
	else
	{
		size_t		k = j;
		const char *v;

		while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' &&
			   in[k] != ' ' && in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
			k++;
		if (k == j)
		{
			cb_add(out, '&');
			return 1;
		}
		if (k < n && in[k] == ';')
			k++;
		/* the whole name, then its longest prefix of at least 2 */
		for (size_t x = k - j; x >= 2 || x == k - j; x--)
		{
			v = entity_find(cm_html5_entities, N_ELEMS(cm_html5_entities), in + j, x);
			if (v != NULL)
			{
				cb_add_utf8(out, v);
				cb_add_n(out, in + j + x, k - j - x);
				return k - i;
			}
			if (x <= 2)
				break;
		}
		cb_add(out, '&');
		cb_add_n(out, in + j, k - j);
		return k - i;
	}
}

/* html.unescape(text) */
static void
html_unescape(const cpbuf *in, cpbuf *out)
{
	out->len = 0;
	for (size_t i = 0; i < in->len;)
	{
		if (in->p[i] == '&')
			i += html_unescape_at(in->p, in->len, i, out);
		else
			cb_add(out, in->p[i++]);
	}
}

/*
 * ftfy's unescape_html: "&" "#"? [0-9A-Za-z]{1,24} ";" replaced when it is
 * an HTML5 name (or one of ftfy's upper-case variants), or a numeric
 * reference html.unescape reads whole.
 */
static void
ftfy_unescape(const cpbuf *in, cpbuf *out)
{
	out->len = 0;
	for (size_t i = 0; i < in->len;)
	{
		size_t		j = i + 1,
					k;
		bool		numeric;

		if (in->p[i] != '&')
		{
			cb_add(out, in->p[i++]);
			continue;
		}
		numeric = j < in->len && in->p[j] == '#';
		if (numeric)
			j++;
		for (k = j; k < in->len && is_alnum(in->p[k]); k++)
			;
		if (k == j || k - j > 24 || k >= in->len || in->p[k] != ';')
		{
			cb_add(out, in->p[i++]);
			continue;
		}
		k++;					/* the entity is in->p[i..k) */
		if (!numeric)
		{
			const char *v = entity_find(cm_html5_entities, N_ELEMS(cm_html5_entities),
										in->p + j, k - j);

			if (v == NULL)
				v = entity_find(cm_ftfy_upper_entities, N_ELEMS(cm_ftfy_upper_entities),
								in->p + j, k - j);
			if (v != NULL)
				cb_add_utf8(out, v);
			else
				cb_add_n(out, in->p + i, k - i);
		}
		else
		{
			/* html.unescape of just the entity; kept if its ';' survives */
			cpbuf		one = {0};
			size_t		used = html_unescape_at(in->p, k, i, &one);
			bool		semicolon = false;

			cb_add_n(&one, in->p + i + used, k - i - used);
			for (size_t t = 0; t < one.len; t++)
				semicolon = semicolon || one.p[t] == ';';
			if (one.failed)
				out->failed = true;
			else if (semicolon)
				cb_add_n(out, in->p + i, k - i);
			else
				cb_add_n(out, one.p, one.len);
			cb_free(&one);
		}
		i = k;
	}
}

/* ---------------------------------------------------------------- ftfy steps */

/* One code point through fix_c1_controls, ligatures, width and quotes. */
static void
fix_char(int32_t c, cpbuf *out)
{
	if (c >= 0x80 && c <= 0x9F)
		c = (int32_t) cm_c1_as_cp1252[c - 0x80];
	switch (c)
	{
		case 0x132:
			cb_add(out, 'I');
			cb_add(out, 'J');
			return;
		case 0x133:
			cb_add(out, 'i');
			cb_add(out, 'j');
			return;
		case 0x149:
			cb_add(out, 0x2BC);
			cb_add(out, 'n');
			return;
		case 0x1F1:
			cb_add(out, 'D');
			cb_add(out, 'Z');
			return;
		case 0x1F2:
			cb_add(out, 'D');
			cb_add(out, 'z');
			return;
		case 0x1F3:
			cb_add(out, 'd');
			cb_add(out, 'z');
			return;
		case 0x1C4:
			cb_add(out, 'D');
			cb_add(out, 0x17D);
			return;
		case 0x1C5:
			cb_add(out, 'D');
			cb_add(out, 0x17E);
			return;
		case 0x1C6:
			cb_add(out, 'd');
			cb_add(out, 0x17E);
			return;
		case 0x1C7:
			cb_add(out, 'L');
			cb_add(out, 'J');
			return;
		case 0x1C8:
			cb_add(out, 'L');
			cb_add(out, 'j');
			return;
		case 0x1C9:
			cb_add(out, 'l');
			cb_add(out, 'j');
			return;
		case 0x1CA:
			cb_add(out, 'N');
			cb_add(out, 'J');
			return;
		case 0x1CB:
			cb_add(out, 'N');
			cb_add(out, 'j');
			return;
		case 0x1CC:
			cb_add(out, 'n');
			cb_add(out, 'j');
			return;
		case 0xFB00:
			cb_add(out, 'f');
			cb_add(out, 'f');
			return;
		case 0xFB01:
			cb_add(out, 'f');
			cb_add(out, 'i');
			return;
		case 0xFB02:
			cb_add(out, 'f');
			cb_add(out, 'l');
			return;
		case 0xFB03:
			cb_add(out, 'f');
			cb_add(out, 'f');
			cb_add(out, 'i');
			return;
		case 0xFB04:
			cb_add(out, 'f');
			cb_add(out, 'f');
			cb_add(out, 'l');
			return;
		case 0xFB05:
			cb_add(out, 0x17F);
			cb_add(out, 't');
			return;
		case 0xFB06:
			cb_add(out, 's');
			cb_add(out, 't');
			return;
		case 0x3000:
			cb_add(out, ' ');
			return;
		case CM_WIDTH_MACRON:
			cb_add(out, ' ');
			cb_add(out, 0x304);
			return;
	}
	if (c >= CM_WIDTH_MAP_FIRST && c <= CM_WIDTH_MAP_LAST && cm_width_map[c - CM_WIDTH_MAP_FIRST] != 0)
		c = (int32_t) cm_width_map[c - CM_WIDTH_MAP_FIRST];
	if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B))
		c = '\'';
	else if (c >= 0x201C && c <= 0x201F)
		c = '"';
	cb_add(out, c);
}

static bool
is_control_removed(int32_t c)
{
	return (c >= 0 && c <= 8) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
		(c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Length of an ANSI escape "\033[" (digit | ";")* [A-Za-z] at in[i], or 0. */
static size_t
ansi_escape_length(const int32_t *in, size_t n, size_t i)
{
	size_t		k;

	if (in[i] != 0x1B || i + 1 >= n || in[i + 1] != '[')
		return 0;
	for (k = i + 2; k < n && (in[k] == ';' || utf8proc_category(in[k]) == UTF8PROC_CATEGORY_ND); k++)
		;
	if (k < n && ((in[k] >= 'a' && in[k] <= 'z') || (in[k] >= 'A' && in[k] <= 'Z')))
		return k + 1 - i;
	return 0;
}

/* NFC of in into out, through utf8proc's UTF-8 interface. */
static void
nfc(const cpbuf *in, cpbuf *out)
{
	utf8proc_uint8_t *u8,
			   *r = NULL;
	utf8proc_ssize_t len;
	size_t		n = 0,
				cap;

	out->len = 0;
	if (in->len == 0)
		return;
	if (!cm_mul_size(in->len, 4, &cap) || (u8 = malloc(cap)) == NULL)
	{
		out->failed = true;
		return;
	}
	for (size_t i = 0; i < in->len; i++)
		n += (size_t) utf8proc_encode_char(in->p[i], u8 + n);
	len = utf8proc_map(u8, (utf8proc_ssize_t) n, &r,
					   (utf8proc_option_t) (UTF8PROC_STABLE | UTF8PROC_COMPOSE));
	free(u8);
	if (len < 0)
	{
		out->failed = true;
		return;
	}
	for (utf8proc_ssize_t i = 0; i < len;)
	{
		int32_t		cp;

		i += (utf8proc_ssize_t) cm_tok_utf8_decode(r + i, (size_t) (len - i), &cp);
		cb_add(out, cp);
	}
	free(r);
}

/*
 * One round of ftfy's fixers over a segment, from a to b: unescape_html
 * (when allowed), fix_c1_controls, fix_latin_ligatures, fix_character_width,
 * uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
 * remove_control_chars, NFC.
 */
static void
ftfy_round(cpbuf *a, cpbuf *b, bool unescape)
{
	if (unescape)
	{
		ftfy_unescape(a, b);
		cb_swap(a, b);
	}
	b->len = 0;
	for (size_t i = 0; i < a->len; i++)
		fix_char(a->p[i], b);
	cb_swap(a, b);
	b->len = 0;
	for (size_t i = 0; i < a->len; i++)
	{
		int32_t		c = a->p[i];

		if (c == '\r')
		{
			cb_add(b, '\n');
			if (i + 1 < a->len && a->p[i + 1] == '\n')
				i++;
		}
		else if (c == 0x2028 || c == 0x2029 || c == 0x85)
			cb_add(b, '\n');
		else
			cb_add(b, c);
	}
	cb_swap(a, b);
	b->len = 0;
	for (size_t i = 0; i < a->len;)
	{
		size_t		esc = ansi_escape_length(a->p, a->len, i);

		if (esc > 0)
			i += esc;
		else
			cb_add(b, a->p[i++]);
	}
	cb_swap(a, b);
	b->len = 0;
	for (size_t i = 0; i < a->len; i++)
		if (!is_control_removed(a->p[i]))
			cb_add(b, a->p[i]);
	cb_swap(a, b);
	nfc(a, b);
	cb_swap(a, b);
}

/* ftfy.fix_text over the whole text, segment by segment, into out. */
static void
ftfy_fix_text(const cpbuf *text, cpbuf *out)
{
	bool		unescape = true;
	cpbuf		a = {0},
				b = {0},
				prev = {0};

	for (size_t pos = 0; pos < text->len && !out->failed;)
	{
		size_t		end = pos;

		while (end < text->len && text->p[end] != '\n' && end - pos < FTFY_MAX_SEGMENT)
			end++;
		if (end < text->len && text->p[end] == '\n' && end - pos < FTFY_MAX_SEGMENT)
			end++;
		for (size_t i = pos; i < end && unescape; i++)
			unescape = text->p[i] != '<';
		a.len = 0;
		cb_add_n(&a, text->p + pos, end - pos);
		for (int round = 0; round < CM_CLEAN_MAX_ROUNDS && !a.failed; round++)
		{
			prev.len = 0;
			cb_add_n(&prev, a.p, a.len);
			ftfy_round(&a, &b, unescape);
			if (a.failed || b.failed || prev.failed)
				break;
			if (a.len == prev.len && memcmp(a.p, prev.p, a.len * sizeof(int32_t)) == 0)
				break;
		}
		if (a.failed || b.failed || prev.failed)
			out->failed = true;
		cb_add_n(out, a.p, a.len);
		pos = end;
	}
	cb_free(&a);
	cb_free(&b);
	cb_free(&prev);
}

cm_status
cm_clean_text_openclip(const char *text, size_t len, bool lower, char **out, size_t *out_len,
					   cm_error *err)
{
	cpbuf		t = {0},
				u = {0};
	char	   *s = NULL;
	size_t		n = 0,
				cap;
	size_t		first,
				last;

	*out = NULL;
	*out_len = 0;
	for (size_t i = 0; i < len;)
	{
		int32_t		cp;

		i += cm_tok_utf8_decode((const uint8_t *) text + i, len - i, &cp);
		cb_add(&t, cp);
	}
	ftfy_fix_text(&t, &u);
	html_unescape(&u, &t);
	html_unescape(&t, &u);
	if (t.failed || u.failed)
		goto nomem;

	/* strip, then every whitespace run becomes one space */
	for (first = 0; first < u.len && cm_is_python_space(u.p[first]); first++)
		;
	for (last = u.len; last > first && cm_is_python_space(u.p[last - 1]); last--)
		;
	if (!cm_mul_size(last - first, 4, &cap) || (s = malloc(cap + 1)) == NULL)
		goto nomem;
	for (size_t i = first; i < last; i++)
	{
		if (cm_is_python_space(u.p[i]))
		{
			s[n++] = ' ';
			while (i + 1 < last && cm_is_python_space(u.p[i + 1]))
				i++;
		}
		else
			n += (size_t) utf8proc_encode_char(u.p[i], (utf8proc_uint8_t *) s + n);
	}
	cb_free(&t);
	cb_free(&u);

	if (lower)
	{
		/* Python's str.lower(): full mappings, the final sigma in context */
		char	   *l;
		size_t		m = 0;

		/* a lower-case mapping is at most 3 bytes longer per code point */
		if (!cm_mul_size(n, 3, &cap) || (l = malloc(cap + 1)) == NULL)
		{
			free(s);
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory cleaning text");
		}
		for (size_t pos = 0; pos < n;)
		{
			int32_t		cp,
						lo[2];
			size_t		k = cm_tok_utf8_decode((const uint8_t *) s + pos, n - pos, &cp);
			int			c;

			if (cp == 0x3A3 && cm_tok_final_sigma(s, n, pos, k))
			{
				lo[0] = 0x3C2;
				c = 1;
			}
			else
				c = cm_tok_lower(cp, lo);
			for (int i = 0; i < c; i++)
				m += (size_t) utf8proc_encode_char(lo[i], (utf8proc_uint8_t *) l + m);
			pos += k;
		}
		free(s);
		s = l;
		n = m;
	}
	*out = s;
	*out_len = n;
	return CM_OK;

nomem:
	cb_free(&t);
	cb_free(&u);
	return cm_set_error(err, CM_ERR_NOMEM, "out of memory cleaning text");
}
