/*
 * embedding_parse.c
 *	  The embedding's text and binary input forms, parsed without PostgreSQL.
 *
 * Plain C (see embedding_parse.h): embedding.c calls it from the type's input
 * and receive functions, test/fuzz/fuzz_embedding.c from libFuzzer.
 */
#include "embedding_parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *
skip_spaces(const char *p)
{
	while (cm_emb_isspace(*p))
		p++;
	return p;
}

size_t
cm_embedding_token_len(const char *p)
{
	size_t		len = 0;

	while (p[len] != '\0' && p[len] != ',' && p[len] != ']' &&
		   !cm_emb_isspace(p[len]) && len < CM_EMB_TOKEN_MAX)
		len++;
	return len;
}

int
cm_embedding_text_max_elements(const char *str, int max_dim)
{
	int			n = 1;

	for (const char *p = str; *p != '\0' && n <= max_dim; p++)
		if (*p == ',')
			n++;
	return n;
}

static int
fail(cm_emb_status *status, cm_emb_status what)
{
	*status = what;
	return -1;
}

static int
fail_token(cm_emb_status *status, cm_emb_status what, cm_emb_error *err, const char *str,
		   const char *p, size_t len, int position)
{
	err->offset = (size_t) (p - str);
	err->token_len = len;
	err->position = position;
	return fail(status, what);
}

int
cm_embedding_parse_text(const char *str, int max_dim, int expected_dim, float *values,
						int capacity, cm_emb_status *status, cm_emb_error *err)
{
	const char *p = skip_spaces(str);
	int			dim = 0;

	memset(err, 0, sizeof(*err));
	*status = CM_EMB_OK;
	if (*p != '[')
		return fail(status, CM_EMB_NO_OPEN_BRACKET);
	p = skip_spaces(p + 1);
	if (*p == ']')
		return fail(status, CM_EMB_EMPTY);

	for (;;)
	{
		char	   *end;
		float		value;
		int			position = dim + 1;

		p = skip_spaces(p);
		if (dim == max_dim)
		{
			err->position = position;
			return fail(status, CM_EMB_TOO_MANY);
		}

		errno = 0;
		value = strtof(p, &end);
		if (end == p)
		{
			size_t		len = cm_embedding_token_len(p);

			return fail_token(status, len == 0 ? CM_EMB_MISSING_ELEMENT : CM_EMB_NOT_A_NUMBER,
							  err, str, p, len, position);
		}
		/* as PostgreSQL's float4in: a result that underflowed to zero or overflowed */
		if (errno == ERANGE && (value == 0.0f || isinf(value)))
		{
			size_t		len = (size_t) (end - p);

			return fail_token(status, CM_EMB_OUT_OF_RANGE, err, str, p,
							  len < CM_EMB_TOKEN_MAX ? len : CM_EMB_TOKEN_MAX, position);
		}
		if (isnan(value))
		{
			err->position = position;
			return fail(status, CM_EMB_NAN);
		}
		if (isinf(value))
		{
			err->position = position;
			err->negative = value < 0;
			return fail(status, CM_EMB_INFINITE);
		}
		/* a caller that sized values by the commas never gets here */
		if (dim >= capacity)
		{
			err->position = position;
			return fail(status, CM_EMB_TOO_MANY);
		}
		values[dim++] = value;

		p = skip_spaces(end);
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == ']')
		{
			p++;
			break;
		}
		if (*p == '\0')
			return fail(status, CM_EMB_NO_CLOSE_BRACKET);
		return fail_token(status, CM_EMB_BAD_SEPARATOR, err, str, p,
						  cm_embedding_token_len(p), position);
	}

	p = skip_spaces(p);
	if (*p != '\0')
		return fail_token(status, CM_EMB_JUNK_AFTER, err, str, p, cm_embedding_token_len(p), 0);
	if (expected_dim != -1 && dim != expected_dim)
	{
		err->value = dim;
		err->expected = expected_dim;
		return fail(status, CM_EMB_TYPMOD);
	}
	return dim;
}

static int
read_int16(const unsigned char *p)
{
	return (int16_t) (uint16_t) ((p[0] << 8) | p[1]);
}

int
cm_embedding_binary_dim(const unsigned char *data, size_t len, int max_dim, int expected_dim,
						cm_emb_status *status, cm_emb_error *err)
{
	int			dim;
	int			reserved;

	memset(err, 0, sizeof(*err));
	*status = CM_EMB_OK;
	if (len < 4)
		return fail(status, CM_EMB_TRUNCATED);
	dim = read_int16(data);
	reserved = read_int16(data + 2);
	err->value = dim;
	if (dim < 1)
		return fail(status, CM_EMB_BAD_DIM);
	if (reserved != 0)
	{
		err->value = reserved;
		return fail(status, CM_EMB_BAD_RESERVED);
	}
	if (expected_dim != -1 && dim != expected_dim)
	{
		err->expected = expected_dim;
		return fail(status, CM_EMB_TYPMOD);
	}
	if (dim > max_dim)
		return fail(status, CM_EMB_TOO_MANY);
	return dim;
}

long
cm_embedding_parse_binary(const unsigned char *data, size_t len, int dim, float *values,
						  cm_emb_status *status, cm_emb_error *err)
{
	const unsigned char *p = data + 4;

	memset(err, 0, sizeof(*err));
	*status = CM_EMB_OK;
	for (int i = 0; i < dim; i++, p += 4)
	{
		uint32_t	bits;
		float		value;

		if ((size_t) (p - data) + 4 > len)
			return fail(status, CM_EMB_TRUNCATED);
		bits = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
		memcpy(&value, &bits, sizeof(value));
		err->position = i + 1;
		if (isnan(value))
			return fail(status, CM_EMB_NAN);
		if (isinf(value))
		{
			err->negative = value < 0;
			return fail(status, CM_EMB_INFINITE);
		}
		values[i] = value;
	}
	err->position = 0;
	return (long) (p - data);
}
