/*
 * spm_model.c
 *	  Read a SentencePiece model file (spiece.model, a serialised ModelProto)
 *	  into the tokenizer pipeline of tokenizer_hf.c, with the steps of
 *	  transformers' SiglipTokenizer around SentencePiece's own normaliser and
 *	  Unigram model.
 *
 * The protobuf wire format is walked by hand: every length is checked
 * against what is left of its message before it is used, and only the
 * fields the tokenizer needs are read (the rest are skipped by wire type).
 * test_spm.c proves the result identical to the reference library,
 * libsentencepiece, on a large generated set.
 */
#include "tokenizer_hf_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_text.h"

/* SentencePiece piece types */
#define PIECE_NORMAL 1
#define PIECE_UNKNOWN 2
#define PIECE_CONTROL 3
#define PIECE_USER_DEFINED 4
#define PIECE_UNUSED 5
#define PIECE_BYTE 6

typedef struct pb
{
	const unsigned char *p;
	const unsigned char *end;
} pb;

static bool
pb_varint(pb *b, uint64_t *v)
{
	uint64_t	r = 0;

	for (int shift = 0; shift < 64; shift += 7)
	{
		if (b->p >= b->end)
			return false;
		r |= (uint64_t) (*b->p & 0x7F) << shift;
		if ((*b->p++ & 0x80) == 0)
		{
			*v = r;
			return true;
		}
	}
	return false;
}

/* The next field: number, wire type, and for LEN fields the sub-range. */
static bool
pb_field(pb *b, uint32_t *field, int *wire, uint64_t *value, pb *sub)
{
	uint64_t	key;

	if (!pb_varint(b, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
		return false;
	*field = (uint32_t) (key >> 3);
	*wire = (int) (key & 7);
	switch (*wire)
	{
		case 0:
			return pb_varint(b, value);
		case 1:
			if (b->end - b->p < 8)
				return false;
			memcpy(value, b->p, 8);
			b->p += 8;
			return true;
		case 5:
			{
				uint32_t	v;

				if (b->end - b->p < 4)
					return false;
				v = (uint32_t) b->p[0] | (uint32_t) b->p[1] << 8 | (uint32_t) b->p[2] << 16 |
					(uint32_t) b->p[3] << 24;
				*value = v;
				b->p += 4;
				return true;
			}
		case 2:
			if (!pb_varint(b, value) || *value > (uint64_t) (b->end - b->p))
				return false;
			sub->p = b->p;
			sub->end = b->p + *value;
			b->p += *value;
			return true;
		default:
			return false;
	}
}

typedef struct spm_piece
{
	const unsigned char *s;
	size_t		len;
	float		score;
	int			type;
} spm_piece;

typedef struct spm_spec
{
	int			model_type;		/* 1 unigram */
	bool		byte_fallback;
	bool		suffix_whitespace;
	const unsigned char *charsmap;
	size_t		charsmap_len;
	bool		add_dummy_prefix;
	bool		remove_extra_whitespaces;
	bool		escape_whitespaces;
	bool		has_rule_tsv;
} spm_spec;

static cm_status
parse_trainer(pb b, spm_spec *spec, const char *label, cm_error *err)
{
	while (b.p < b.end)
	{
		uint32_t	f;
		int			w;
		uint64_t	v;
		pb			sub;

		if (!pb_field(&b, &f, &w, &v, &sub))
			return cm_set_error(err, CM_ERR_MODEL, "%s: trainer_spec is malformed", label);
		if (f == 3 && w == 0)
			spec->model_type = (int) v;
		else if (f == 35 && w == 0)
			spec->byte_fallback = v != 0;
		else if (f == 24 && w == 0)
			spec->suffix_whitespace = v != 0;
	}
	return CM_OK;
}

static cm_status
parse_normalizer(pb b, spm_spec *spec, const char *label, cm_error *err)
{
	while (b.p < b.end)
	{
		uint32_t	f;
		int			w;
		uint64_t	v;
		pb			sub;

		if (!pb_field(&b, &f, &w, &v, &sub))
			return cm_set_error(err, CM_ERR_MODEL, "%s: normalizer_spec is malformed", label);
		if (f == 2 && w == 2)
		{
			spec->charsmap = sub.p;
			spec->charsmap_len = (size_t) (sub.end - sub.p);
		}
		else if (f == 3 && w == 0)
			spec->add_dummy_prefix = v != 0;
		else if (f == 4 && w == 0)
			spec->remove_extra_whitespaces = v != 0;
		else if (f == 5 && w == 0)
			spec->escape_whitespaces = v != 0;
		else if (f == 6 && w == 2 && sub.end > sub.p)
			spec->has_rule_tsv = true;
	}
	return CM_OK;
}

static cm_status
parse_piece(pb b, spm_piece *piece, const char *label, cm_error *err)
{
	piece->s = NULL;
	piece->len = 0;
	piece->score = 0;
	piece->type = PIECE_NORMAL;
	while (b.p < b.end)
	{
		uint32_t	f;
		int			w;
		uint64_t	v;
		pb			sub;

		if (!pb_field(&b, &f, &w, &v, &sub))
			return cm_set_error(err, CM_ERR_MODEL, "%s: a piece is malformed", label);
		if (f == 1 && w == 2)
		{
			piece->s = sub.p;
			piece->len = (size_t) (sub.end - sub.p);
		}
		else if (f == 2 && w == 5)
		{
			uint32_t	bits = (uint32_t) v;

			memcpy(&piece->score, &bits, sizeof(float));
		}
		else if (f == 3 && w == 0)
			piece->type = (int) v;
	}
	if (piece->s == NULL || piece->len == 0)
		return cm_set_error(err, CM_ERR_MODEL, "%s: a piece has no text", label);
	if (!isfinite(piece->score))
		return cm_set_error(err, CM_ERR_MODEL, "%s: piece \"%.*s\" has a score that is not finite",
							label, (int) (piece->len > 40 ? 40 : piece->len), piece->s);
	if (piece->type < PIECE_NORMAL || piece->type > PIECE_BYTE)
		return cm_set_error(err, CM_ERR_MODEL, "%s: piece \"%.*s\" has unknown type %d", label,
							(int) (piece->len > 40 ? 40 : piece->len), piece->s, piece->type);
	{
		size_t		bad;

		if (!cm_tok_utf8_valid(piece->s, piece->len, &bad))
			return cm_set_error(err, CM_ERR_MODEL, "%s: a piece is not valid UTF-8", label);
	}
	return CM_OK;
}

/* The model's precompiled charsmap, copied into a SentencePiece normaliser. */
static cm_status
spm_charsmap(hf_norm *nm, const spm_spec *spec, const char *label, cm_error *err)
{
	unsigned char *blob;

	if (spec->charsmap == NULL || spec->charsmap_len == 0)
		return CM_OK;
	blob = malloc(spec->charsmap_len);
	if (blob == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
	memcpy(blob, spec->charsmap, spec->charsmap_len);
	return cm_hf_charsmap_init(&nm->charsmap, blob, spec->charsmap_len, label, err);
}

/* The user-defined pieces, for the normaliser to pass through unchanged. */
static cm_status
spm_user_defined(hf_norm *nm, const cm_hf_tokenizer *tok, const char *label, cm_error *err)
{
	size_t		bytes = 0,
				at = 0;
	int			n = 0;

	for (int32_t i = 0; i < tok->n_vocab; i++)
		if (tok->user_defined[i])
		{
			bytes += tok->str_len[i] + 1;
			n++;
		}
	if (n == 0)
		return CM_OK;
	nm->user_defined = malloc(bytes);
	nm->user_defined_len = malloc((size_t) n * sizeof(size_t));
	if (nm->user_defined == NULL || nm->user_defined_len == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
	for (int32_t i = 0; i < tok->n_vocab; i++)
		if (tok->user_defined[i])
		{
			memcpy(nm->user_defined + at, tok->strings + tok->str_off[i], tok->str_len[i] + 1);
			at += tok->str_len[i] + 1;
			nm->user_defined_len[nm->n_user_defined++] = tok->str_len[i];
		}
	return CM_OK;
}

/*
 * Read a SentencePiece Unigram model into the shared pipeline: as
 * SiglipTokenizer uses it (siglip), or as SentencePieceProcessor::Encode
 * does (the model's own normalizer settings, no special tokens).
 */
static cm_hf_tokenizer *
spm_load(const unsigned char *model, size_t len, const char *label, bool siglip, bool lower_case,
		 cm_error *err)
{
	cm_hf_tokenizer *tok = NULL;
	spm_spec	spec = {.model_type = 1, .add_dummy_prefix = true,
	.remove_extra_whitespaces = true, .escape_whitespaces = true};
	spm_piece  *pieces = NULL;
	size_t		n = 0,
				cap = 0,
				arena = 0;
	pb			b = {model, model + len};
	int32_t		unk = -1,
				eos = -1;

	if (model == NULL || len == 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: empty SentencePiece model", label);
		return NULL;
	}
	if (len > CM_HF_TOKENIZER_MAX_FILE_BYTES)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: %zu bytes, more than the %zu-byte limit", label, len,
					 CM_HF_TOKENIZER_MAX_FILE_BYTES);
		return NULL;
	}
	while (b.p < b.end)
	{
		uint32_t	f;
		int			w;
		uint64_t	v;
		pb			sub;

		if (!pb_field(&b, &f, &w, &v, &sub))
		{
			cm_set_error(err, CM_ERR_MODEL, "%s: not a SentencePiece model (malformed protobuf)", label);
			goto fail;
		}
		if (f == 1 && w == 2)
		{
			if (n == cap)
			{
				size_t		nc = cap ? cap * 2 : 1024;
				spm_piece  *np;

				if (nc > HF_MAX_VOCAB)
				{
					cm_set_error(err, CM_ERR_MODEL, "%s: more than %d pieces", label, HF_MAX_VOCAB);
					goto fail;
				}
				np = realloc(pieces, nc * sizeof(spm_piece));
				if (np == NULL)
				{
					cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
					goto fail;
				}
				pieces = np;
				cap = nc;
			}
			if (parse_piece(sub, &pieces[n], label, err) != CM_OK)
				goto fail;
			arena += pieces[n].len + 1;
			n++;
		}
		else if (f == 2 && w == 2)
		{
			if (parse_trainer(sub, &spec, label, err) != CM_OK)
				goto fail;
		}
		else if (f == 3 && w == 2)
		{
			if (parse_normalizer(sub, &spec, label, err) != CM_OK)
				goto fail;
		}
	}
	if (n == 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: the SentencePiece model has no pieces", label);
		goto fail;
	}
	if (spec.model_type != 1)
	{
		cm_set_error(err, CM_ERR_UNSUPPORTED, "%s: SentencePiece model type %d is not supported (only Unigram, 1)",
					 label, spec.model_type);
		goto fail;
	}
	if (spec.suffix_whitespace || spec.has_rule_tsv)
	{
		cm_set_error(err, CM_ERR_UNSUPPORTED, "%s: %s is not supported", label,
					 spec.suffix_whitespace ? "treat_whitespace_as_suffix" : "a normalization_rule_tsv");
		goto fail;
	}

	tok = calloc(1, sizeof(*tok));
	if (tok == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
		goto fail;
	}
	tok->kind_name = "SentencePiece Unigram";
	tok->model = HF_UNIGRAM;
	tok->unk_id = -1;
	tok->float_scores = true;
	tok->fuse_unk = true;
	tok->byte_fallback = spec.byte_fallback;
	if (cm_hf_vocab_init(tok, (int32_t) n, arena, err) != CM_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
	{
		if (cm_hf_vocab_set(tok, (int32_t) i, (const char *) pieces[i].s, pieces[i].len, label, err) != CM_OK)
			goto fail;
		tok->score[i] = pieces[i].score;
		tok->matchable[i] = pieces[i].type == PIECE_NORMAL || pieces[i].type == PIECE_USER_DEFINED;
		tok->user_defined[i] = pieces[i].type == PIECE_USER_DEFINED;
		if (pieces[i].type == PIECE_UNKNOWN && unk < 0)
			unk = (int32_t) i;
	}
	if (unk < 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: the SentencePiece model has no unknown piece", label);
		goto fail;
	}
	tok->unk_id = unk;
	if (cm_hf_unigram_finish(tok, label, err) != CM_OK)
		goto fail;
	if (!siglip)
	{
		tok->norm[0].kind = NORM_SPM;
		tok->norm[0].add_dummy_prefix = spec.add_dummy_prefix;
		tok->norm[0].remove_extra_whitespaces = spec.remove_extra_whitespaces;
		tok->norm[0].escape_whitespaces = spec.escape_whitespaces;
		tok->n_norm = 1;
		if (spm_charsmap(&tok->norm[0], &spec, label, err) != CM_OK ||
			spm_user_defined(&tok->norm[0], tok, label, err) != CM_OK)
			goto fail;
		free(pieces);
		return tok;
	}
	eos = cm_hf_vocab_find(tok, "</s>", 4);
	if (eos < 0)
	{
		cm_set_error(err, CM_ERR_MODEL, "%s: the SentencePiece model has no \"</s>\" piece", label);
		goto fail;
	}

	/* SiglipTokenizer: eos and unk are its special tokens, stripping spaces */
	tok->added = calloc(2, sizeof(hf_added));
	tok->unk_string = malloc(tok->str_len[unk] + 1);
	if (tok->added == NULL || tok->unk_string == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
		goto fail;
	}
	memcpy(tok->unk_string, tok->strings + tok->str_off[unk], tok->str_len[unk] + 1);
	for (int i = 0; i < 2; i++)
	{
		int32_t		id = i == 0 ? eos : unk;
		hf_added   *a = &tok->added[i];

		a->content = malloc(tok->str_len[id] + 1);
		if (a->content == NULL)
		{
			cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", label);
			goto fail;
		}
		memcpy(a->content, tok->strings + tok->str_off[id], tok->str_len[id] + 1);
		a->len = tok->str_len[id];
		a->id = id;
		a->lstrip = a->rstrip = true;
		tok->n_added++;
	}
	tok->suffix_ids[0] = eos;
	tok->n_suffix = 1;
	tok->lower_first = lower_case;
	tok->siglip_prefix = true;

	tok->norm[0].kind = NORM_SIGLIP_CANON;
	tok->norm[1].kind = NORM_SPM;
	tok->norm[1].add_dummy_prefix = false;	/* SiglipTokenizer turns it off */
	tok->norm[1].remove_extra_whitespaces = spec.remove_extra_whitespaces;
	tok->norm[1].escape_whitespaces = spec.escape_whitespaces;
	tok->n_norm = 2;
	if (spm_charsmap(&tok->norm[1], &spec, label, err) != CM_OK ||
		spm_user_defined(&tok->norm[1], tok, label, err) != CM_OK)
		goto fail;

	/* how many tokens "<unk>" itself becomes (SiglipTokenizer drops them) */
	{
		int32_t		ids[64];
		int			got = 0;

		tok->siglip_prefix = false;
		tok->lower_first = false;
		tok->n_added = 0;
		tok->spm_unk_prefix = 0;
		tok->n_suffix = 0;
		tok->norm[0].kind = NORM_SPM;	/* SentencePiece alone, on "<unk>" */
		{
			hf_norm		saved = tok->norm[1];
			int			saved_n = tok->n_norm;

			tok->norm[0] = saved;
			tok->n_norm = 1;
			if (cm_hf_tokenizer_encode(tok, tok->unk_string, strlen(tok->unk_string), ids, 64, &got, err) != CM_OK)
			{
				memset(&tok->norm[0], 0, sizeof(hf_norm));
				goto fail;
			}
			memset(&tok->norm[0], 0, sizeof(hf_norm));
			tok->norm[0].kind = NORM_SIGLIP_CANON;
			tok->n_norm = saved_n;
		}
		tok->spm_unk_prefix = got;
		tok->spm_siglip = true;
		tok->siglip_prefix = true;
		tok->lower_first = lower_case;
		tok->n_added = 2;
		tok->n_suffix = 1;
	}
	free(pieces);
	return tok;

fail:
	free(pieces);
	cm_hf_tokenizer_free(tok);
	return NULL;
}

cm_hf_tokenizer *
cm_hf_tokenizer_from_spm_siglip(const unsigned char *model, size_t len, const char *label,
								bool lower_case, cm_error *err)
{
	return spm_load(model, len, label, true, lower_case, err);
}

cm_hf_tokenizer *
cm_hf_tokenizer_from_spm(const unsigned char *model, size_t len, const char *label, cm_error *err)
{
	return spm_load(model, len, label, false, false, err);
}
