/*
 * embedding_parse.h
 *	  The embedding's text and binary input forms, parsed without PostgreSQL.
 *
 * This is plain C with no PostgreSQL headers, so that a libFuzzer target
 * (test/fuzz/fuzz_embedding.c) can run the very code the server runs.  The
 * parser reports what is wrong as a status plus where (element number, byte
 * offset and length of the offending token); embedding.c turns that into the
 * user-facing ereport.  Nothing here allocates: the caller passes the output
 * array, sized with cm_embedding_text_max_elements or the binary header.
 */
#ifndef CROSSMODAL_EMBEDDING_PARSE_H
#define CROSSMODAL_EMBEDDING_PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef enum cm_emb_status
{
	CM_EMB_OK = 0,
	/* text form */
	CM_EMB_NO_OPEN_BRACKET,		/* does not start with "[" */
	CM_EMB_EMPTY,				/* "[]" */
	CM_EMB_MISSING_ELEMENT,		/* nothing where an element should be */
	CM_EMB_NOT_A_NUMBER,		/* an element that is not a number */
	CM_EMB_OUT_OF_RANGE,		/* finite, but overflows or underflows float4 */
	CM_EMB_NO_CLOSE_BRACKET,	/* the text ends before "]" */
	CM_EMB_BAD_SEPARATOR,		/* neither "," nor "]" after an element */
	CM_EMB_JUNK_AFTER,			/* something after the closing "]" */
	/* both forms */
	CM_EMB_NAN,					/* an element is NaN */
	CM_EMB_INFINITE,			/* an element is +-Infinity */
	CM_EMB_TOO_MANY,			/* more than max_dim elements */
	CM_EMB_TYPMOD,				/* not the expected number of elements */
	/* binary form */
	CM_EMB_TRUNCATED,			/* fewer bytes than the header promises */
	CM_EMB_BAD_DIM,				/* dimension count below 1 */
	CM_EMB_BAD_RESERVED			/* the reserved field is not 0 */
} cm_emb_status;

/* Where a parse failed; fields that do not apply are 0. */
typedef struct cm_emb_error
{
	int			position;		/* 1-based number of the element concerned */
	size_t		offset;			/* text: byte offset of the offending token */
	size_t		token_len;		/* text: its length, at most CM_EMB_TOKEN_MAX */
	int			value;			/* the dimension count or reserved field read */
	int			expected;		/* CM_EMB_TYPMOD: the expected count */
	int			negative;		/* CM_EMB_INFINITE: -Infinity */
} cm_emb_error;

/* Longest token an error quotes. */
#define CM_EMB_TOKEN_MAX	40

/* White space around brackets, elements and commas: PostgreSQL's scanner_isspace. */
static inline int
cm_emb_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/*
 * Upper bound of the elements the text form `str` can hold (one more than
 * its commas), capped at max_dim + 1 so that a caller can size its array
 * before parsing and still learn that there were too many.
 */
extern int	cm_embedding_text_max_elements(const char *str, int max_dim);

/*
 * Parses "[1,2.5,-0.03]" (white space allowed around brackets, elements and
 * commas; elements as strtof reads them) into values[capacity].  Returns the
 * number of elements, or -1 with *status and *err set.  expected_dim is the
 * required count or -1.  capacity must be at least
 * cm_embedding_text_max_elements(str, max_dim).
 */
extern int	cm_embedding_parse_text(const char *str, int max_dim, int expected_dim,
									float *values, int capacity,
									cm_emb_status *status, cm_emb_error *err);

/*
 * The binary form: int16 dimension count, int16 reserved (0), then that many
 * float4, all big-endian.  cm_embedding_binary_dim reads and checks the
 * header (count >= 1, reserved 0, the expected count, at most max_dim) and
 * returns the count, or -1; cm_embedding_parse_binary then reads the elements
 * into values[dim] and returns the bytes consumed (4 + 4 * dim), or -1.
 * Bytes after the value are the caller's business (PostgreSQL rejects them).
 */
extern int	cm_embedding_binary_dim(const unsigned char *data, size_t len, int max_dim,
									int expected_dim, cm_emb_status *status, cm_emb_error *err);
extern long cm_embedding_parse_binary(const unsigned char *data, size_t len, int dim,
									  float *values, cm_emb_status *status, cm_emb_error *err);

/* Length of the token at p (up to a delimiter), capped at CM_EMB_TOKEN_MAX. */
extern size_t cm_embedding_token_len(const char *p);

#endif							/* CROSSMODAL_EMBEDDING_PARSE_H */
