/*
 * tokenizer_json.c
 *	  Load and validate a Hugging Face tokenizer.json into the pipeline of
 *	  tokenizer_hf.c.  Every field is type- and range-checked before use;
 *	  components outside the implemented set are refused by name.
 */
#include "tokenizer_hf_impl.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_text.h"

#define MAX_NESTING 4

typedef struct ctx
{
	cm_hf_tokenizer *tok;
	const char *label;
	cm_error   *err;
} ctx;

static const cJSON *
member(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

	return (v == NULL || cJSON_IsNull(v)) ? NULL : v;
}

static const char *
str_member(const cJSON *obj, const char *key)
{
	const cJSON *v = member(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
bool_member(const cJSON *obj, const char *key, bool dflt)
{
	const cJSON *v = member(obj, key);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static char *
dup_str(const char *s, size_t *len)
{
	size_t		n = strlen(s);
	char	   *d = malloc(n + 1);

	if (d != NULL)
		memcpy(d, s, n + 1);
	if (len)
		*len = n;
	return d;
}

static bool
valid_utf8(const char *s)
{
	size_t		bad;

	return cm_tok_utf8_valid((const uint8_t *) s, strlen(s), &bad);
}

/* base64 (standard alphabet, padding optional) into a malloc'd buffer. */
static unsigned char *
base64_decode(const char *s, size_t *out_len)
{
	size_t		n = strlen(s);
	unsigned char *out = malloc(n / 4 * 3 + 3);
	size_t		o = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
	{
		int			c = (unsigned char) s[i],
					v;

		if (c == '=')
			break;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
		}
	}
	*out_len = o;
	return out;
}

/* A pattern object {"String": s} or {"Regex": r} as a literal (+ repeat). */
static cm_status
get_pattern(ctx *c, const cJSON *pat, const char *what, char **lit, size_t *lit_len, int *repeat)
{
	const char *s = str_member(pat, "String");
	const char *r = str_member(pat, "Regex");

	*repeat = -1;				/* a literal */
	if (s != NULL)
	{
		if (!valid_utf8(s) || s[0] == '\0')
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: %s pattern is empty or not UTF-8", c->label, what);
		*lit = dup_str(s, lit_len);
		return *lit ? CM_OK : cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
	}
	if (r != NULL)
	{
		size_t		n = strlen(r);

		/* the forms real checkpoints use: \s+, x+, x{n,}, a plain literal */
		if (strcmp(r, "\\s+") == 0)
		{
			*repeat = 0;
			*lit = dup_str(" ", lit_len);
			return *lit ? CM_OK : cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
		}
		if (n >= 2 && strchr("\\^$.|?*+()[]{}", r[0]) == NULL && (unsigned char) r[0] < 0x80)
		{
			int			min = -1;

			if (n == 2 && r[1] == '+')
				min = 1;
			else if (n >= 5 && r[1] == '{' && r[n - 2] == ',' && r[n - 1] == '}')
			{
				min = 0;
				for (size_t i = 2; i < n - 2 && min >= 0; i++)
					min = (r[i] < '0' || r[i] > '9' || min > 1000) ? -1 : min * 10 + (r[i] - '0');
			}
			if (min >= 1)
			{
				*repeat = min;
				*lit = malloc(2);
				if (*lit == NULL)
					return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
				(*lit)[0] = r[0];
				(*lit)[1] = '\0';
				*lit_len = 1;
				return CM_OK;
			}
		}
		if (strpbrk(r, "\\^$.|?*+()[]{}") == NULL && valid_utf8(r) && n > 0)
		{
			*lit = dup_str(r, lit_len);
			return *lit ? CM_OK : cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
		}
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: %s regular expression \"%.60s\" is not supported",
							c->label, what, r);
	}
	return cm_set_error(c->err, CM_ERR_MODEL, "%s: %s pattern must be {\"String\": ...} or {\"Regex\": ...}",
						c->label, what);
}

static hf_norm *
new_norm(ctx *c)
{
	if (c->tok->n_norm >= HF_MAX_STEPS)
	{
		cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: more than %d normalizers", c->label, HF_MAX_STEPS);
		return NULL;
	}
	return &c->tok->norm[c->tok->n_norm++];
}

static cm_status
parse_normalizer(ctx *c, const cJSON *n, int depth)
{
	const char *type = str_member(n, "type");
	hf_norm    *nm;

	if (n == NULL)
		return CM_OK;
	if (type == NULL)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: a normalizer has no \"type\"", c->label);
	if (strcmp(type, "Sequence") == 0)
	{
		const cJSON *list = member(n, "normalizers");
		const cJSON *e;

		if (!cJSON_IsArray(list) || depth >= MAX_NESTING)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: normalizer Sequence without a list", c->label);
		cJSON_ArrayForEach(e, list)
		{
			cm_status	s = parse_normalizer(c, e, depth + 1);

			if (s != CM_OK)
				return s;
		}
		return CM_OK;
	}
	if ((nm = new_norm(c)) == NULL)
		return CM_ERR_UNSUPPORTED;
	if (strcmp(type, "NFC") == 0)
		nm->kind = NORM_NFC;
	else if (strcmp(type, "NFD") == 0)
		nm->kind = NORM_NFD;
	else if (strcmp(type, "NFKC") == 0)
		nm->kind = NORM_NFKC;
	else if (strcmp(type, "NFKD") == 0)
		nm->kind = NORM_NFKD;
	else if (strcmp(type, "Lowercase") == 0)
		nm->kind = NORM_LOWERCASE;
	else if (strcmp(type, "Strip") == 0)
	{
		nm->kind = NORM_STRIP;
		nm->left = bool_member(n, "strip_left", true);
		nm->right = bool_member(n, "strip_right", true);
	}
	else if (strcmp(type, "Replace") == 0)
	{
		const char *content = str_member(n, "content");
		cm_status	s;

		nm->kind = NORM_REPLACE;
		if (content == NULL || !valid_utf8(content))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: Replace normalizer without a \"content\" string", c->label);
		s = get_pattern(c, member(n, "pattern"), "Replace", &nm->a, &nm->a_len, &nm->min_repeat);
		if (s != CM_OK)
			return s;
		if ((nm->b = dup_str(content, &nm->b_len)) == NULL)
			return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
	}
	else if (strcmp(type, "Prepend") == 0)
	{
		const char *p = str_member(n, "prepend");

		nm->kind = NORM_PREPEND;
		if (p == NULL || !valid_utf8(p))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: Prepend normalizer without a \"prepend\" string", c->label);
		if ((nm->a = dup_str(p, &nm->a_len)) == NULL)
			return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
	}
	else if (strcmp(type, "Precompiled") == 0)
	{
		const char *b64 = str_member(n, "precompiled_charsmap");
		unsigned char *blob;
		size_t		len;

		nm->kind = NORM_PRECOMPILED;
		if (b64 == NULL)
		{
			/* no charsmap: the identity */
			c->tok->n_norm--;
			return CM_OK;
		}
		if ((blob = base64_decode(b64, &len)) == NULL)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: precompiled_charsmap is not base64", c->label);
		return cm_hf_charsmap_init(&nm->charsmap, blob, len, c->label, c->err);
	}
	else if (strcmp(type, "BertNormalizer") == 0)
	{
		const cJSON *sa = member(n, "strip_accents");

		nm->kind = NORM_BERT;
		nm->clean_text = bool_member(n, "clean_text", true);
		nm->chinese_chars = bool_member(n, "handle_chinese_chars", true);
		nm->lowercase = bool_member(n, "lowercase", true);
		nm->strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : nm->lowercase;
	}
	else
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: normalizer \"%.40s\" is not supported", c->label, type);
	return CM_OK;
}

static cm_status
get_behavior(ctx *c, const cJSON *obj, hf_split_behavior *b)
{
	const char *s = str_member(obj, "behavior");

	if (s == NULL || strcmp(s, "Isolated") == 0)
		*b = SPLIT_ISOLATED;
	else if (strcmp(s, "Removed") == 0)
		*b = SPLIT_REMOVED;
	else if (strcmp(s, "MergedWithPrevious") == 0)
		*b = SPLIT_MERGED_WITH_PREVIOUS;
	else if (strcmp(s, "MergedWithNext") == 0)
		*b = SPLIT_MERGED_WITH_NEXT;
	else if (strcmp(s, "Contiguous") == 0)
		*b = SPLIT_CONTIGUOUS;
	else
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: unknown split behavior \"%.40s\"", c->label, s);
	return CM_OK;
}

static cm_status
parse_pre(ctx *c, const cJSON *n, int depth)
{
	const char *type = str_member(n, "type");
	hf_pre	   *pt;

	if (n == NULL)
		return CM_OK;
	if (type == NULL)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: a pre-tokenizer has no \"type\"", c->label);
	if (strcmp(type, "Sequence") == 0)
	{
		const cJSON *list = member(n, "pretokenizers");
		const cJSON *e;

		if (!cJSON_IsArray(list) || depth >= MAX_NESTING)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: pre-tokenizer Sequence without a list", c->label);
		cJSON_ArrayForEach(e, list)
		{
			cm_status	s = parse_pre(c, e, depth + 1);

			if (s != CM_OK)
				return s;
		}
		return CM_OK;
	}
	if (c->tok->n_pre >= HF_MAX_STEPS)
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizers", c->label, HF_MAX_STEPS);
	pt = &c->tok->pre[c->tok->n_pre++];
	if (strcmp(type, "Metaspace") == 0)
	{
		const char *rep = str_member(n, "replacement");
		const char *scheme = str_member(n, "prepend_scheme");

		pt->kind = PRE_METASPACE;
		if (rep == NULL || rep[0] == '\0' || !valid_utf8(rep))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: Metaspace without a replacement", c->label);
		if ((pt->pattern = dup_str(rep, &pt->pattern_len)) == NULL)
			return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
		if (scheme != NULL)
		{
			if (strcmp(scheme, "always") == 0)
				pt->prepend = 2;
			else if (strcmp(scheme, "first") == 0)
				pt->prepend = 1;
			else if (strcmp(scheme, "never") == 0)
				pt->prepend = 0;
			else
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: Metaspace prepend_scheme \"%.20s\"", c->label, scheme);
		}
		else
			pt->prepend = bool_member(n, "add_prefix_space", true) ? 2 : 0;
		pt->split = bool_member(n, "split", true);
	}
	else if (strcmp(type, "Split") == 0)
	{
		int			repeat;
		cm_status	s;

		pt->kind = PRE_SPLIT;
		if ((s = get_pattern(c, member(n, "pattern"), "Split", &pt->pattern, &pt->pattern_len, &repeat)) != CM_OK ||
			(s = get_behavior(c, n, &pt->behavior)) != CM_OK)
			return s;
		if (repeat != -1 || bool_member(n, "invert", false))
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with a repeated or inverted pattern is not supported",
								c->label);
	}
	else if (strcmp(type, "WhitespaceSplit") == 0)
		pt->kind = PRE_WHITESPACE_SPLIT;
	else if (strcmp(type, "Whitespace") == 0)
		pt->kind = PRE_WHITESPACE;
	else if (strcmp(type, "BertPreTokenizer") == 0)
		pt->kind = PRE_BERT;
	else if (strcmp(type, "ByteLevel") == 0)
	{
		pt->kind = PRE_BYTELEVEL;
		pt->add_prefix_space = bool_member(n, "add_prefix_space", true);
		pt->use_regex = bool_member(n, "use_regex", true);
	}
	else if (strcmp(type, "Punctuation") == 0)
	{
		pt->kind = PRE_PUNCTUATION;
		return get_behavior(c, n, &pt->behavior);
	}
	else if (strcmp(type, "Digits") == 0)
	{
		pt->kind = PRE_DIGITS;
		pt->individual_digits = bool_member(n, "individual_digits", false);
	}
	else
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%.40s\" is not supported", c->label, type);
	return CM_OK;
}

/* The id of a token named in the post-processor: added tokens, then vocab. */
static int32_t
token_id(cm_hf_tokenizer *tok, const char *s)
{
	return cm_hf_tokenizer_token_id(tok, s);
}

/*
 * A post-processor's token id from a JSON number: -1 unless it is whole and
 * in range, checked before the conversion (undefined for a double that does
 * not fit, such as 1e300).
 */
static int32_t
json_token_id(const cJSON *v)
{
	double		d = cJSON_IsNumber(v) ? v->valuedouble : -1;

	return d >= 0 && d < HF_MAX_VOCAB && floor(d) == d ? (int32_t) d : -1;
}

static cm_status
add_special(ctx *c, bool prefix, int32_t id)
{
	cm_hf_tokenizer *tok = c->tok;

	if (id < 0 || id >= tok->n_vocab)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: post-processor names a token outside the vocabulary", c->label);
	if ((prefix ? tok->n_prefix : tok->n_suffix) >= HF_MAX_TEMPLATE)
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: more than %d special tokens around a sequence",
							c->label, HF_MAX_TEMPLATE);
	if (prefix)
		tok->prefix_ids[tok->n_prefix++] = id;
	else
		tok->suffix_ids[tok->n_suffix++] = id;
	return CM_OK;
}

static cm_status
parse_post(ctx *c, const cJSON *n, int depth)
{
	const char *type = str_member(n, "type");

	if (n == NULL)
		return CM_OK;
	if (type == NULL)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: a post-processor has no \"type\"", c->label);
	if (strcmp(type, "Sequence") == 0)
	{
		const cJSON *list = member(n, "processors");
		const cJSON *e;

		if (!cJSON_IsArray(list) || depth >= MAX_NESTING)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: post-processor Sequence without a list", c->label);
		cJSON_ArrayForEach(e, list)
		{
			cm_status	s = parse_post(c, e, depth + 1);

			if (s != CM_OK)
				return s;
		}
		return CM_OK;
	}
	if (strcmp(type, "ByteLevel") == 0)
		return CM_OK;			/* offsets only */
	if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0)
	{
		const cJSON *cls = member(n, "cls");
		const cJSON *sep = member(n, "sep");
		cm_status	s;

		if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !cJSON_IsNumber(cJSON_GetArrayItem(cls, 1)) ||
			!cJSON_IsNumber(cJSON_GetArrayItem(sep, 1)))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: %s needs \"cls\" and \"sep\" [token, id]", c->label, type);
		if ((s = add_special(c, true, json_token_id(cJSON_GetArrayItem(cls, 1)))) != CM_OK)
			return s;
		return add_special(c, false, json_token_id(cJSON_GetArrayItem(sep, 1)));
	}
	if (strcmp(type, "TemplateProcessing") == 0)
	{
		const cJSON *single = member(n, "single");
		const cJSON *specials = member(n, "special_tokens");
		const cJSON *item;
		bool		seen_seq = false;

		if (!cJSON_IsArray(single))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: TemplateProcessing without a \"single\" template", c->label);
		cJSON_ArrayForEach(item, single)
		{
			const cJSON *sp = member(item, "SpecialToken");
			const cJSON *sq = member(item, "Sequence");

			if (sq != NULL)
			{
				const char *id = str_member(sq, "id");

				if (id == NULL || strcmp(id, "A") != 0 || seen_seq)
					return cm_set_error(c->err, CM_ERR_MODEL, "%s: the single template must hold $A once", c->label);
				seen_seq = true;
			}
			else if (sp != NULL)
			{
				const char *name = str_member(sp, "id");
				const cJSON *entry = name ? member(specials, name) : NULL;
				const cJSON *ids = member(entry, "ids");
				const cJSON *e;

				if (name == NULL)
					return cm_set_error(c->err, CM_ERR_MODEL, "%s: a template special token has no id", c->label);
				if (cJSON_IsArray(ids))
				{
					cJSON_ArrayForEach(e, ids)
					{
						cm_status	s;

						if (!cJSON_IsNumber(e))
							return cm_set_error(c->err, CM_ERR_MODEL, "%s: special token \"%.40s\" has a non-numeric id",
												c->label, name);
						if ((s = add_special(c, !seen_seq, json_token_id(e))) != CM_OK)
							return s;
					}
				}
				else
				{
					cm_status	s = add_special(c, !seen_seq, token_id(c->tok, name));

					if (s != CM_OK)
						return s;
				}
			}
			else
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: a template item is neither a SpecialToken nor a Sequence",
									c->label);
		}
		if (!seen_seq)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: the single template has no $A", c->label);
		return CM_OK;
	}
	return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: post-processor \"%.40s\" is not supported", c->label, type);
}

/* The model's vocabulary, sized first, then filled. */
static cm_status
parse_model(ctx *c, const cJSON *model, int32_t n_ids)
{
	cm_hf_tokenizer *tok = c->tok;
	const char *type = str_member(model, "type");
	const cJSON *vocab = member(model, "vocab");
	const cJSON *e;
	size_t		arena = 0;
	int32_t		n = 0;
	cm_status	s;

	if (!cJSON_IsObject(model))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: no \"model\" object", c->label);
	if (type == NULL)
		type = member(model, "merges") ? "BPE" : cJSON_IsArray(vocab) ? "Unigram" : "WordPiece";
	if (strcmp(type, "BPE") == 0)
		tok->model = HF_BPE;
	else if (strcmp(type, "WordPiece") == 0)
		tok->model = HF_WORDPIECE;
	else if (strcmp(type, "Unigram") == 0)
		tok->model = HF_UNIGRAM;
	else
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: model \"%.40s\" is not supported (BPE, WordPiece, Unigram)",
							c->label, type);
	tok->kind_name = tok->model == HF_BPE ? "BPE" : tok->model == HF_WORDPIECE ? "WordPiece" : "Unigram";

	if (tok->model == HF_UNIGRAM ? !cJSON_IsArray(vocab) : !cJSON_IsObject(vocab))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: model.vocab must be %s", c->label,
							tok->model == HF_UNIGRAM ? "a list of [piece, score]" : "an object of token -> id");
	cJSON_ArrayForEach(e, vocab)
	{
		const char *key;

		if (++n > HF_MAX_VOCAB)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: more than %d tokens", c->label, HF_MAX_VOCAB);
		if (tok->model == HF_UNIGRAM)
		{
			const cJSON *p = cJSON_GetArrayItem(e, 0);
			const cJSON *sc = cJSON_GetArrayItem(e, 1);

			if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(p) || !cJSON_IsNumber(sc) ||
				!isfinite(sc->valuedouble))
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: Unigram vocab entry %d is not [piece, score]",
									c->label, (int) n - 1);
			key = p->valuestring;
		}
		else
		{
			double		v = e->valuedouble;

			if (!cJSON_IsNumber(e) || !(v >= 0 && v < HF_MAX_VOCAB) || floor(v) != v)
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: token \"%.40s\" has an invalid id", c->label,
									e->string ? e->string : "");
			if ((int32_t) v + 1 > n_ids)
				n_ids = (int32_t) v + 1;
			key = e->string ? e->string : "";
		}
		if (!valid_utf8(key))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: a token is not valid UTF-8", c->label);
		if (!cm_add_size(arena, strlen(key) + 1, &arena))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: vocabulary too large", c->label);
	}
	if (n == 0)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: empty vocabulary", c->label);
	if (n > n_ids)
		n_ids = n;
	if ((s = cm_hf_vocab_init(tok, n_ids, arena, c->err)) != CM_OK)
		return s;
	n = 0;
	cJSON_ArrayForEach(e, vocab)
	{
		if (tok->model == HF_UNIGRAM)
		{
			const char *p = cJSON_GetArrayItem(e, 0)->valuestring;

			if ((s = cm_hf_vocab_set(tok, n, p, strlen(p), c->label, c->err)) != CM_OK)
				return s;
			tok->score[n] = cJSON_GetArrayItem(e, 1)->valuedouble;
			tok->matchable[n] = 1;
		}
		else if ((s = cm_hf_vocab_set(tok, (int32_t) e->valuedouble, e->string, strlen(e->string),
									  c->label, c->err)) != CM_OK)
			return s;
		n++;
	}

	if (tok->model == HF_UNIGRAM)
	{
		const cJSON *unk = member(model, "unk_id");

		tok->unk_id = -1;
		if (unk != NULL)
		{
			if (!cJSON_IsNumber(unk) || unk->valuedouble < 0 || unk->valuedouble >= n)
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: model.unk_id is out of range", c->label);
			tok->unk_id = (int32_t) unk->valuedouble;
		}
		tok->byte_fallback = bool_member(model, "byte_fallback", false);
		tok->fuse_unk = true;
		return cm_hf_unigram_finish(tok, c->label, c->err);
	}

	{
		const char *unk = str_member(model, "unk_token");
		const char *prefix = str_member(model, "continuing_subword_prefix");
		const char *suffix = str_member(model, "end_of_word_suffix");

		tok->unk_id = unk ? cm_hf_vocab_find(tok, unk, strlen(unk)) : -1;
		if (unk != NULL && tok->unk_id < 0 && tok->model == HF_WORDPIECE)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: unk_token \"%.40s\" is not in the vocabulary", c->label, unk);
		if (tok->model == HF_WORDPIECE && prefix == NULL)
			prefix = "##";
		if ((prefix && (tok->subword_prefix = dup_str(prefix, NULL)) == NULL) ||
			(suffix && (tok->word_suffix = dup_str(suffix, NULL)) == NULL))
			return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
	}
	if (tok->model == HF_WORDPIECE)
	{
		const cJSON *m = member(model, "max_input_chars_per_word");

		tok->max_word_chars = 100;
		if (m != NULL)
		{
			if (!cJSON_IsNumber(m) || m->valuedouble < 1 || m->valuedouble > 1e6)
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: max_input_chars_per_word is out of range", c->label);
			tok->max_word_chars = (int) m->valuedouble;
		}
		return CM_OK;
	}

	/* BPE */
	{
		const cJSON *merges = member(model, "merges");
		const cJSON *dropout = member(model, "dropout");
		char	   *joined = NULL;
		size_t		joined_cap = 0;
		int			line = 0;

		if (dropout != NULL && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: BPE dropout is a training setting and is not supported",
								c->label);
		tok->byte_fallback = bool_member(model, "byte_fallback", false);
		tok->fuse_unk = bool_member(model, "fuse_unk", false);
		tok->ignore_merges = bool_member(model, "ignore_merges", false);
		if (merges != NULL && !cJSON_IsArray(merges))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: model.merges must be a list", c->label);
		if ((s = cm_bpe_merges_init(&tok->merges, (size_t) (merges ? cJSON_GetArraySize(merges) : 0), c->err)) != CM_OK)
			return s;
		cJSON_ArrayForEach(e, merges)
		{
			const char *l,
					   *r;
			size_t		ll,
						rl;
			int32_t		li,
						ri,
						mi;
			char	   *sp = NULL;

			line++;
			if (cJSON_IsString(e) && (sp = strchr(e->valuestring, ' ')) != NULL && strchr(sp + 1, ' ') == NULL)
			{
				l = e->valuestring;
				ll = (size_t) (sp - l);
				r = sp + 1;
				rl = strlen(r);
			}
			else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
					 cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1)))
			{
				l = cJSON_GetArrayItem(e, 0)->valuestring;
				r = cJSON_GetArrayItem(e, 1)->valuestring;
				ll = strlen(l);
				rl = strlen(r);
			}
			else
			{
				free(joined);
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: merge %d is not \"a b\" or [a, b]", c->label, line);
			}
			if (ll + rl + 1 > joined_cap)
			{
				char	   *p = realloc(joined, ll + rl + 1);

				if (p == NULL)
				{
					free(joined);
					return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
				}
				joined = p;
				joined_cap = ll + rl + 1;
			}
			memcpy(joined, l, ll);
			memcpy(joined + ll, r, rl);
			li = cm_hf_vocab_find(tok, l, ll);
			ri = cm_hf_vocab_find(tok, r, rl);
			mi = cm_hf_vocab_find(tok, joined, ll + rl);
			if (li < 0 || ri < 0 || mi < 0)
			{
				free(joined);
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: merge %d names a token that is not in the vocabulary",
									c->label, line);
			}
			cm_bpe_merges_add(&tok->merges, li, ri, mi);
		}
		free(joined);
		if (tok->byte_fallback)
		{
			for (int b = 0; b < 256; b++)
			{
				char		name[8];

				snprintf(name, sizeof(name), "<0x%02X>", b);
				tok->byte_id[b] = cm_hf_vocab_find(tok, name, 6);
			}
		}
	}
	return CM_OK;
}

static cm_status
parse_added(ctx *c, const cJSON *list, int32_t *max_id)
{
	const cJSON *e;
	int			n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;

	*max_id = -1;
	if (list != NULL && !cJSON_IsArray(list))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: added_tokens must be a list", c->label);
	if (n > HF_MAX_ADDED)
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: more than %d added tokens", c->label, HF_MAX_ADDED);
	if (n == 0)
		return CM_OK;
	c->tok->added = calloc((size_t) n, sizeof(hf_added));
	if (c->tok->added == NULL)
		return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *id = member(e, "id");
		const char *content = str_member(e, "content");
		hf_added   *a = &c->tok->added[c->tok->n_added];

		if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= HF_MAX_VOCAB ||
			floor(id->valuedouble) != id->valuedouble || content == NULL || content[0] == '\0' ||
			!valid_utf8(content))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: added token %d needs an id and a non-empty content",
								c->label, c->tok->n_added);
		if (bool_member(e, "single_word", false))
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: added token \"%.40s\" is single_word, which is not supported",
								c->label, content);
		if ((a->content = dup_str(content, &a->len)) == NULL)
			return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
		a->id = (int32_t) id->valuedouble;
		a->lstrip = bool_member(e, "lstrip", false);
		a->rstrip = bool_member(e, "rstrip", false);
		if (a->id > *max_id)
			*max_id = a->id;
		c->tok->n_added++;
	}
	return CM_OK;
}

cm_hf_tokenizer *
cm_hf_tokenizer_from_json(const char *json, size_t len, const char *label, cm_error *err)
{
	cJSON	   *root;
	const char *end = NULL;
	cm_hf_tokenizer *tok;
	ctx			c = {NULL, label, err};
	int32_t		max_added;
	cm_status	s;

	if (json == NULL || len == 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: empty file", label);
		return NULL;
	}
	if (len > CM_HF_TOKENIZER_MAX_FILE_BYTES)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: %zu bytes, more than the %zu-byte limit", label, len,
					 CM_HF_TOKENIZER_MAX_FILE_BYTES);
		return NULL;
	}
	root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (root == NULL || !cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		cm_set_error(err, CM_ERR_MODEL, "%s: not a JSON object", label);
		return NULL;
	}
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL)
	{
		cJSON_Delete(root);
		cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
		return NULL;
	}
	c.tok = tok;
	tok->unk_id = -1;
	for (int b = 0; b < 256; b++)
		tok->byte_id[b] = -1;
	{
		const cJSON *trunc = member(root, "truncation");
		const cJSON *pad = member(root, "padding");

		(void) trunc;			/* the caller truncates to the model's positions */
		(void) pad;				/* and pads as the model was trained */
	}
	if ((s = parse_added(&c, member(root, "added_tokens"), &max_added)) != CM_OK ||
		(s = parse_model(&c, member(root, "model"), max_added + 1)) != CM_OK ||
		(s = parse_normalizer(&c, member(root, "normalizer"), 0)) != CM_OK ||
		(s = parse_pre(&c, member(root, "pre_tokenizer"), 0)) != CM_OK ||
		(s = parse_post(&c, member(root, "post_processor"), 0)) != CM_OK)
	{
		cJSON_Delete(root);
		cm_hf_tokenizer_free(tok);
		return NULL;
	}
	cJSON_Delete(root);
	return tok;
}
