/*
 * fuzz_embedding.c
 *	  libFuzzer target: arbitrary bytes as the embedding type's text form and
 *	  as its binary form, through the parser the server runs
 *	  (extension/embedding_parse.c), with two dimension limits (the type's
 *	  16,000 and a small one, to reach the limit's path cheaply).
 *
 * Checked: a value that parses has 1..max elements, all finite, and reads
 * back bit for bit from the shortest "%.9g" text and from its binary form; a
 * binary value consumes exactly its header's count of elements; a rejected
 * input names an element and a token inside the input; no read or write
 * outside the buffers (ASan: the output array is exactly the size the
 * parser asked for).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedding_parse.h"

#define MAX_DIM 16000
#define SMALL_MAX_DIM 5

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(int cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_embedding: invariant broken: %s\n", what);
		abort();
	}
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char) (v >> 24);
	p[1] = (unsigned char) (v >> 16);
	p[2] = (unsigned char) (v >> 8);
	p[3] = (unsigned char) v;
}

/* The binary form of values[dim]. */
static unsigned char *
to_binary(const float *values, int dim, size_t *len)
{
	unsigned char *b = malloc(4 + 4 * (size_t) dim);

	b[0] = (unsigned char) (dim >> 8);
	b[1] = (unsigned char) dim;
	b[2] = b[3] = 0;
	for (int i = 0; i < dim; i++)
	{
		uint32_t	bits;

		memcpy(&bits, &values[i], 4);
		put_be32(b + 4 + 4 * (size_t) i, bits);
	}
	*len = 4 + 4 * (size_t) dim;
	return b;
}

static void
check_binary_round_trip(const float *values, int dim)
{
	size_t		len;
	unsigned char *b = to_binary(values, dim, &len);
	float	   *back = malloc(sizeof(float) * dim);
	cm_emb_status status;
	cm_emb_error err;

	require(cm_embedding_binary_dim(b, len, MAX_DIM, dim, &status, &err) == dim,
			"the binary form of a parsed value has its count");
	require(cm_embedding_parse_binary(b, len, dim, back, &status, &err) == (long) len,
			"the binary form of a parsed value is consumed whole");
	require(memcmp(back, values, sizeof(float) * dim) == 0, "binary round trip is bit-exact");
	free(back);
	free(b);
}

static void
check_text_round_trip(const float *values, int dim)
{
	char	   *text = malloc(2 + (size_t) dim * 17);
	char	   *p = text;
	int			capacity;
	float	   *back;
	cm_emb_status status;
	cm_emb_error err;

	*p++ = '[';
	for (int i = 0; i < dim; i++)
		p += sprintf(p, "%s%.9g", i > 0 ? "," : "", values[i]);
	strcpy(p, "]");
	capacity = cm_embedding_text_max_elements(text, MAX_DIM);
	require(capacity == dim, "a printed value's bound is its count");
	back = malloc(sizeof(float) * capacity);
	require(cm_embedding_parse_text(text, MAX_DIM, dim, back, capacity, &status, &err) == dim,
			"a printed value parses with its own count as typmod");
	require(memcmp(back, values, sizeof(float) * dim) == 0, "text round trip is bit-exact");
	free(back);
	free(text);
}

static void
fuzz_text(const char *str, size_t len, int max_dim)
{
	int			capacity = cm_embedding_text_max_elements(str, max_dim);
	float	   *values = malloc(sizeof(float) * capacity);
	cm_emb_status status;
	cm_emb_error err;
	int			dim;

	require(capacity >= 1 && capacity <= max_dim + 1, "the bound is within 1..max+1");
	dim = cm_embedding_parse_text(str, max_dim, -1, values, capacity, &status, &err);
	if (dim < 0)
	{
		require(status != CM_EMB_OK && status != CM_EMB_TYPMOD, "a failure has its reason");
		require(err.offset + err.token_len <= len && err.token_len <= CM_EMB_TOKEN_MAX,
				"the quoted token lies inside the input");
		require(err.position >= 0 && err.position <= max_dim + 1, "the element number is in range");
		require(status != CM_EMB_TOO_MANY || err.position == max_dim + 1,
				"too many elements is reported at max + 1");
	}
	else
	{
		cm_emb_status s2;
		cm_emb_error e2;

		require(status == CM_EMB_OK && dim >= 1 && dim <= max_dim && dim <= capacity,
				"a value has 1..max elements");
		for (int i = 0; i < dim; i++)
			require(isfinite(values[i]), "every element is finite");
		require(cm_embedding_parse_text(str, max_dim, dim + 1, values, capacity, &s2, &e2) < 0 &&
				s2 == CM_EMB_TYPMOD && e2.value == dim && e2.expected == dim + 1,
				"another count than the value's is a typmod error");
		dim = cm_embedding_parse_text(str, max_dim, dim, values, capacity, &s2, &e2);
		require(dim > 0, "the value's own count as typmod parses");
		check_text_round_trip(values, dim);
		check_binary_round_trip(values, dim);
	}
	free(values);
}

static void
fuzz_binary(const unsigned char *data, size_t len, int max_dim)
{
	cm_emb_status status;
	cm_emb_error err;
	int			dim = cm_embedding_binary_dim(data, len, max_dim, -1, &status, &err);
	float	   *values;
	long		consumed;

	if (dim < 0)
	{
		require(status == CM_EMB_TRUNCATED || status == CM_EMB_BAD_DIM ||
				status == CM_EMB_BAD_RESERVED || status == CM_EMB_TOO_MANY,
				"a bad header has a header's reason");
		require(status != CM_EMB_TRUNCATED || len < 4, "a 4-byte header is never short");
		return;
	}
	require(dim >= 1 && dim <= max_dim, "a header's count is within 1..max");
	values = malloc(sizeof(float) * dim);
	consumed = cm_embedding_parse_binary(data, len, dim, values, &status, &err);
	if (consumed < 0)
	{
		require(status == CM_EMB_TRUNCATED || status == CM_EMB_NAN || status == CM_EMB_INFINITE,
				"bad elements have an element's reason");
		require(status != CM_EMB_TRUNCATED || len < 4 + 4 * (size_t) dim,
				"a long enough value is never short");
		require(status == CM_EMB_TRUNCATED || (err.position >= 1 && err.position <= dim),
				"a bad element is named");
	}
	else
	{
		require(consumed == 4 + 4 * (long) dim && (size_t) consumed <= len,
				"a value consumes its header's count of elements");
		for (int i = 0; i < dim; i++)
			require(isfinite(values[i]), "every element is finite");
		{
			size_t		blen;
			unsigned char *b = to_binary(values, dim, &blen);

			require(blen == (size_t) consumed && memcmp(b, data, blen) == 0,
					"the binary form is written back byte for byte");
			free(b);
		}
		if (max_dim == MAX_DIM)
			check_text_round_trip(values, dim);
	}
	free(values);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the server hands the input function a NUL-terminated string */
	char	   *str = malloc(size + 1);
	size_t		len;

	memcpy(str, data, size);
	str[size] = '\0';
	len = strlen(str);
	fuzz_text(str, len, MAX_DIM);
	fuzz_text(str, len, SMALL_MAX_DIM);
	free(str);

	fuzz_binary(data, size, MAX_DIM);
	fuzz_binary(data, size, SMALL_MAX_DIM);
	return 0;
}
