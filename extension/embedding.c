/*
 * embedding.c
 *	  The embedding type: text and binary I/O, typmod, casts, arithmetic, comparisons, aggregates.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "crossmodal.h"
#include "embedding.h"
#include "embedding_parse.h"

void
EmbeddingInit(void)
{
	/* Nothing to set up yet: the type has no GUCs or caches. */
}

Embedding *
EmbeddingNew(int dim)
{
	Embedding  *result;

	EmbeddingCheckDim(dim);
	result = (Embedding *) palloc0(EMBEDDING_SIZE(dim));
	SET_VARSIZE(result, EMBEDDING_SIZE(dim));
	result->dim = dim;
	return result;
}

void
EmbeddingCheckDim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("embedding must have at least 1 dimension")));
	if (dim > EMBEDDING_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding cannot have more than %d dimensions",
						EMBEDDING_MAX_DIM)));
}

void
EmbeddingCheckElement(float4 value, int position)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in embedding"),
				 errdetail("Element %d is NaN.", position)));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in embedding"),
				 errdetail("Element %d is %s.", position,
						   value > 0 ? "Infinity" : "-Infinity")));
}

void
EmbeddingCheckTypmod(int dim, int32 typmod)
{
	if (typmod != -1 && dim != typmod)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/* Raises the error for an element that is finite but does not fit in a float4. */
static void
EmbeddingOutOfRange(const char *value, int position)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value \"%s\" is out of range for type embedding", value),
			 errdetail("Element %d does not fit in a real (float4).", position)));
}

/* Converts a double to an element, rejecting NaN, infinities and overflow. */
static float4
EmbeddingElementFromDouble(double value, int position)
{
	float4		result = (float4) value;

	if (isnan(value) || isinf(value))
		EmbeddingCheckElement(result, position);
	if (isinf(result) || (result == 0.0f && value != 0.0))
	{
		char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

		double_to_shortest_decimal_buf(value, buf);
		EmbeddingOutOfRange(buf, position);
	}
	return result;
}

/*
 * Raises the errors both forms share: NaN or infinite elements, too many
 * elements, a count that is not the typmod's; the binary form's own.
 */
static pg_attribute_noreturn() void
EmbeddingParseError(cm_emb_status status, const cm_emb_error *err)
{
	switch (status)
	{
		case CM_EMB_NAN:
			EmbeddingCheckElement(get_float4_nan(), err->position);
			break;
		case CM_EMB_INFINITE:
			EmbeddingCheckElement(err->negative ? -get_float4_infinity() : get_float4_infinity(),
								  err->position);
			break;
		case CM_EMB_TOO_MANY:
			EmbeddingCheckDim(EMBEDDING_MAX_DIM + 1);
			break;
		case CM_EMB_TYPMOD:
			EmbeddingCheckTypmod(err->value, err->expected);
			break;
		case CM_EMB_TRUNCATED:
			/* what pq_getmsg* says of a short message */
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("insufficient data left in message")));
			break;
		case CM_EMB_BAD_DIM:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid dimension count %d in binary embedding", err->value),
					 errdetail("An embedding must have at least 1 dimension.")));
			break;
		case CM_EMB_BAD_RESERVED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid reserved field %d in binary embedding", err->value),
					 errdetail("The field after the dimension count must be 0.")));
			break;
		default:
			break;
	}
	elog(ERROR, "embedding parser failed with status %d", (int) status);
}

/*
 * Raises the error for a text form the parser (embedding_parse.c) rejected;
 * str is the whole input, quoted in the message.
 */
static pg_attribute_noreturn() void
EmbeddingTextError(const char *str, cm_emb_status status, const cm_emb_error *err)
{
	char	   *token = pnstrdup(str + err->offset, err->token_len);

	switch (status)
	{
		case CM_EMB_NO_OPEN_BRACKET:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Embedding contents must start with \"[\".")));
			break;
		case CM_EMB_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("An embedding must have at least 1 dimension.")));
			break;
		case CM_EMB_MISSING_ELEMENT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Element %d is missing.", err->position)));
			break;
		case CM_EMB_NOT_A_NUMBER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Element %d is not a number: \"%s\".", err->position, token)));
			break;
		case CM_EMB_OUT_OF_RANGE:
			EmbeddingOutOfRange(token, err->position);
			break;
		case CM_EMB_NO_CLOSE_BRACKET:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Embedding contents must end with \"]\".")));
			break;
		case CM_EMB_BAD_SEPARATOR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Expected \",\" or \"]\" after element %d, found \"%s\".",
							   err->position, token)));
			break;
		case CM_EMB_JUNK_AFTER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", str),
					 errdetail("Junk after closing right bracket.")));
			break;
		default:
			EmbeddingParseError(status, err);
	}
	elog(ERROR, "embedding parser failed with status %d", (int) status);
}

/*
 * Text input: "[1,2.5,-0.03]", with optional white space around the brackets,
 * the elements and the commas (parsed by embedding_parse.c).
 */
CROSSMODAL_FUNCTION(crossmodal_embedding_in);
Datum
crossmodal_embedding_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			capacity = cm_embedding_text_max_elements(str, EMBEDDING_MAX_DIM);
	float4	   *values = (float4 *) palloc(sizeof(float4) * capacity);
	cm_emb_status status;
	cm_emb_error err;
	int			dim;
	Embedding  *result;

	dim = cm_embedding_parse_text(str, EMBEDDING_MAX_DIM, typmod, values, capacity,
								  &status, &err);
	if (dim < 0)
		EmbeddingTextError(str, status, &err);
	result = EmbeddingNew(dim);
	memcpy(result->x, values, sizeof(float4) * dim);
	pfree(values);
	PG_RETURN_EMBEDDING_P(result);
}

/*
 * Text output: each element in the shortest decimal form that reads back to
 * the same float4 (the same digits as real's output).
 */
CROSSMODAL_FUNCTION(crossmodal_embedding_out);
Datum
crossmodal_embedding_out(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);
	char	   *buf = palloc((Size) emb->dim * FLOAT_SHORTEST_DECIMAL_LEN + 2);
	char	   *p = buf;

	*p++ = '[';
	for (int i = 0; i < emb->dim; i++)
	{
		if (i > 0)
			*p++ = ',';
		p += float_to_shortest_decimal_bufn(emb->x[i], p);
	}
	*p++ = ']';
	*p = '\0';
	PG_FREE_IF_COPY(emb, 0);
	PG_RETURN_CSTRING(buf);
}

CROSSMODAL_FUNCTION(crossmodal_embedding_typmod_in);
Datum
crossmodal_embedding_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *mods;
	int			n;

	mods = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("Type embedding takes exactly one modifier, the number of dimensions.")));
	if (mods[0] < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type embedding must be at least 1")));
	/* 22023 as for every invalid modifier, like varchar(n) and pgvector */
	if (mods[0] > EMBEDDING_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type embedding cannot exceed %d",
						EMBEDDING_MAX_DIM)));
	PG_RETURN_INT32(mods[0]);
}

CROSSMODAL_FUNCTION(crossmodal_embedding_typmod_out);
Datum
crossmodal_embedding_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(typmod < 0 ? pstrdup("") : psprintf("(%d)", typmod));
}

/*
 * Binary form: int16 dimensions, int16 reserved (0), then the float4
 * elements, all in network byte order.
 */
CROSSMODAL_FUNCTION(crossmodal_embedding_recv);
Datum
crossmodal_embedding_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	const unsigned char *data = (const unsigned char *) buf->data + buf->cursor;
	size_t		len = buf->len - buf->cursor;
	cm_emb_status status;
	cm_emb_error err;
	int			dim;
	long		consumed;
	Embedding  *result;

	dim = cm_embedding_binary_dim(data, len, EMBEDDING_MAX_DIM, typmod, &status, &err);
	if (dim < 0)
		EmbeddingParseError(status, &err);
	result = EmbeddingNew(dim);
	consumed = cm_embedding_parse_binary(data, len, dim, result->x, &status, &err);
	if (consumed < 0)
		EmbeddingParseError(status, &err);
	buf->cursor += consumed;
	PG_RETURN_EMBEDDING_P(result);
}

CROSSMODAL_FUNCTION(crossmodal_embedding_send);
Datum
crossmodal_embedding_send(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, emb->dim);
	pq_sendint16(&buf, emb->unused);
	for (int i = 0; i < emb->dim; i++)
		pq_sendfloat4(&buf, emb->x[i]);
	PG_FREE_IF_COPY(emb, 0);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Length coercion embedding -> embedding(n), used on assignment and cast. */
CROSSMODAL_FUNCTION(crossmodal_embedding);
Datum
crossmodal_embedding(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);

	EmbeddingCheckTypmod(emb->dim, PG_GETARG_INT32(1));
	PG_RETURN_EMBEDDING_P(emb);
}

/* Casts from arrays: one-dimensional, no NULLs, every element finite and in float4 range. */
static Embedding *
EmbeddingFromArray(ArrayType *array, int32 typmod)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Embedding  *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be one-dimensional"),
				 errdetail("The array has %d dimensions.", ARR_NDIM(array))));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	EmbeddingCheckDim(n);
	EmbeddingCheckTypmod(n, typmod);

	result = EmbeddingNew(n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls"),
					 errdetail("Element %d is NULL.", i + 1)));
		switch (elemtype)
		{
			case INT4OID:
				result->x[i] = (float4) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				result->x[i] = DatumGetFloat4(elems[i]);
				EmbeddingCheckElement(result->x[i], i + 1);
				break;
			case FLOAT8OID:
				result->x[i] = EmbeddingElementFromDouble(DatumGetFloat8(elems[i]), i + 1);
				break;
			case NUMERICOID:
				{
					Numeric		num = DatumGetNumeric(elems[i]);

					/*
					 * Numeric infinities and values beyond double range both
					 * become double infinities here; tell them apart.
					 */
					double		value = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
																		   elems[i]));

					if (numeric_is_nan(num))
						EmbeddingCheckElement(get_float4_nan(), i + 1);
					if (numeric_is_inf(num))
						EmbeddingCheckElement((float4) value, i + 1);
					if (isinf(value))
						EmbeddingOutOfRange(numeric_out_sci(num, 6), i + 1);
					result->x[i] = EmbeddingElementFromDouble(value, i + 1);
					break;
				}
			default:
				elog(ERROR, "unsupported array element type %u for embedding", elemtype);
		}
	}
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_embedding_from_integer_array);
Datum
crossmodal_embedding_from_integer_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingFromArray(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_INT32(1)));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_from_real_array);
Datum
crossmodal_embedding_from_real_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingFromArray(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_INT32(1)));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_from_double_array);
Datum
crossmodal_embedding_from_double_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingFromArray(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_INT32(1)));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_from_numeric_array);
Datum
crossmodal_embedding_from_numeric_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingFromArray(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_INT32(1)));
}

/* Casts to arrays; the element conversion is the only difference. */
typedef enum EmbeddingArrayKind
{
	EMBEDDING_TO_INTEGER,
	EMBEDDING_TO_REAL,
	EMBEDDING_TO_DOUBLE,
	EMBEDDING_TO_NUMERIC,
} EmbeddingArrayKind;

static ArrayType *
EmbeddingToArray(const Embedding *emb, EmbeddingArrayKind kind)
{
	Datum	   *elems = (Datum *) palloc(sizeof(Datum) * emb->dim);

	for (int i = 0; i < emb->dim; i++)
	{
		switch (kind)
		{
			case EMBEDDING_TO_INTEGER:
				/* Rounds to nearest and checks the range, as real::integer does. */
				elems[i] = DirectFunctionCall1(ftoi4, Float4GetDatum(emb->x[i]));
				break;
			case EMBEDDING_TO_REAL:
				elems[i] = Float4GetDatum(emb->x[i]);
				break;
			case EMBEDDING_TO_DOUBLE:
				elems[i] = Float8GetDatum((float8) emb->x[i]);
				break;
			case EMBEDDING_TO_NUMERIC:
				{
					/*
					 * Through the shortest decimal form rather than real's
					 * numeric cast (6 significant digits), so the cast back
					 * gives the same embedding.
					 */
					char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

					float_to_shortest_decimal_buf(emb->x[i], buf);
					elems[i] = DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1));
					break;
				}
		}
	}

	switch (kind)
	{
		case EMBEDDING_TO_INTEGER:
			return construct_array(elems, emb->dim, INT4OID, sizeof(int32), true, TYPALIGN_INT);
		case EMBEDDING_TO_REAL:
			return construct_array(elems, emb->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
		case EMBEDDING_TO_DOUBLE:
			return construct_array(elems, emb->dim, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
								   TYPALIGN_DOUBLE);
		case EMBEDDING_TO_NUMERIC:
			return construct_array(elems, emb->dim, NUMERICOID, -1, false, TYPALIGN_INT);
	}
	elog(ERROR, "unexpected embedding array kind %d", (int) kind);
	return NULL;				/* keep compiler quiet */
}

CROSSMODAL_FUNCTION(crossmodal_embedding_to_integer_array);
Datum
crossmodal_embedding_to_integer_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), EMBEDDING_TO_INTEGER));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_to_real_array);
Datum
crossmodal_embedding_to_real_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), EMBEDDING_TO_REAL));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_to_double_array);
Datum
crossmodal_embedding_to_double_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), EMBEDDING_TO_DOUBLE));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_to_numeric_array);
Datum
crossmodal_embedding_to_numeric_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), EMBEDDING_TO_NUMERIC));
}

CROSSMODAL_FUNCTION(crossmodal_dims);
Datum
crossmodal_dims(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);

	PG_RETURN_INT32(emb->dim);
}

/* Euclidean norm, accumulated in double so that no finite input overflows. */
static double
EmbeddingNorm(const Embedding *emb)
{
	double		sum = 0.0;

	for (int i = 0; i < emb->dim; i++)
		sum += (double) emb->x[i] * (double) emb->x[i];
	return sqrt(sum);
}

CROSSMODAL_FUNCTION(crossmodal_norm);
Datum
crossmodal_norm(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(EmbeddingNorm(PG_GETARG_EMBEDDING_P(0)));
}

/* Scales to unit length; the zero embedding is returned unchanged. */
CROSSMODAL_FUNCTION(crossmodal_l2_normalize);
Datum
crossmodal_l2_normalize(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);
	double		length = EmbeddingNorm(emb);
	Embedding  *result = EmbeddingNew(emb->dim);

	for (int i = 0; i < emb->dim; i++)
		result->x[i] = length > 0.0 ? (float4) (emb->x[i] / length) : emb->x[i];
	PG_RETURN_EMBEDDING_P(result);
}

/* Elements start .. start + count - 1 (1-based), clipped to the embedding like substr. */
CROSSMODAL_FUNCTION(crossmodal_subvector);
Datum
crossmodal_subvector(PG_FUNCTION_ARGS)
{
	Embedding  *emb = PG_GETARG_EMBEDDING_P(0);
	int32		start = PG_GETARG_INT32(1);
	int32		count = PG_GETARG_INT32(2);
	int64		first = Max((int64) start, 1);
	int64		end = Min((int64) start + (int64) count, (int64) emb->dim + 1);
	Embedding  *result;

	if (count < 1 || end <= first)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("embedding must have at least 1 dimension"),
				 errdetail("Start %d and count %d select no element of an embedding of %d dimensions.",
						   start, count, emb->dim)));
	result = EmbeddingNew((int) (end - first));
	memcpy(result->x, emb->x + (first - 1), sizeof(float4) * result->dim);
	PG_RETURN_EMBEDDING_P(result);
}

/* Element-wise arithmetic; results that leave the float4 range are errors. */
typedef enum EmbeddingArithmetic
{
	EMBEDDING_ADD,
	EMBEDDING_SUBTRACT,
	EMBEDDING_MULTIPLY,
} EmbeddingArithmetic;

static Embedding *
EmbeddingElementwise(const Embedding *a, const Embedding *b, EmbeddingArithmetic op)
{
	Embedding  *result;

	EmbeddingCheckSameDim(a, b);
	result = EmbeddingNew(a->dim);
	for (int i = 0; i < a->dim; i++)
	{
		float4		value;

		switch (op)
		{
			case EMBEDDING_ADD:
				value = a->x[i] + b->x[i];
				break;
			case EMBEDDING_SUBTRACT:
				value = a->x[i] - b->x[i];
				break;
			case EMBEDDING_MULTIPLY:
				value = a->x[i] * b->x[i];
				if (value == 0.0f && a->x[i] != 0.0f && b->x[i] != 0.0f)
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("value out of range: underflow"),
							 errdetail("Element %d of the product is too small for a real (float4).",
									   i + 1)));
				break;
			default:
				elog(ERROR, "unexpected embedding operation %d", (int) op);
				value = 0.0f;	/* keep compiler quiet */
		}
		if (isinf(value))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value out of range: overflow"),
					 errdetail("Element %d of the result is too large for a real (float4).",
							   i + 1)));
		result->x[i] = value;
	}
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_embedding_add);
Datum
crossmodal_embedding_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingElementwise(PG_GETARG_EMBEDDING_P(0),
											   PG_GETARG_EMBEDDING_P(1), EMBEDDING_ADD));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_sub);
Datum
crossmodal_embedding_sub(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingElementwise(PG_GETARG_EMBEDDING_P(0),
											   PG_GETARG_EMBEDDING_P(1), EMBEDDING_SUBTRACT));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_mul);
Datum
crossmodal_embedding_mul(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(EmbeddingElementwise(PG_GETARG_EMBEDDING_P(0),
											   PG_GETARG_EMBEDDING_P(1), EMBEDDING_MULTIPLY));
}

/* a || b: the elements of a followed by those of b, within the dimension limit. */
CROSSMODAL_FUNCTION(crossmodal_embedding_concat);
Datum
crossmodal_embedding_concat(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);
	Embedding  *result = EmbeddingNew(a->dim + b->dim);	/* checks the limit */

	memcpy(result->x, a->x, sizeof(float4) * a->dim);
	memcpy(result->x + a->dim, b->x, sizeof(float4) * b->dim);
	PG_RETURN_EMBEDDING_P(result);
}

/*
 * Total order for btree: element by element, then the shorter embedding
 * first when one is a prefix of the other.  -0 and +0 compare equal.
 */
static int
EmbeddingCompare(const Embedding *a, const Embedding *b)
{
	int			n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	return (a->dim > b->dim) - (a->dim < b->dim);
}

#define EMBEDDING_COMPARISON(name, test) \
CROSSMODAL_FUNCTION(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Embedding  *a = PG_GETARG_EMBEDDING_P(0); \
	Embedding  *b = PG_GETARG_EMBEDDING_P(1); \
	int			cmp = EmbeddingCompare(a, b); \
\
	PG_FREE_IF_COPY(a, 0); \
	PG_FREE_IF_COPY(b, 1); \
	PG_RETURN_BOOL(test); \
}

EMBEDDING_COMPARISON(crossmodal_embedding_lt, cmp < 0)
EMBEDDING_COMPARISON(crossmodal_embedding_le, cmp <= 0)
EMBEDDING_COMPARISON(crossmodal_embedding_eq, cmp == 0)
EMBEDDING_COMPARISON(crossmodal_embedding_ne, cmp != 0)
EMBEDDING_COMPARISON(crossmodal_embedding_ge, cmp >= 0)
EMBEDDING_COMPARISON(crossmodal_embedding_gt, cmp > 0)

CROSSMODAL_FUNCTION(crossmodal_embedding_cmp);
Datum
crossmodal_embedding_cmp(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);
	int			cmp = EmbeddingCompare(a, b);

	PG_FREE_IF_COPY(a, 0);
	PG_FREE_IF_COPY(b, 1);
	PG_RETURN_INT32(cmp);
}

/*
 * Hashes agree with equality: the dimension count and the element bits, with
 * -0 folded into +0 because they compare equal.
 */
static uint64
EmbeddingHash(const Embedding *emb, uint64 seed, bool extended)
{
	float4	   *canonical = (float4 *) palloc(sizeof(float4) * (emb->dim + 1));
	Size		len = sizeof(float4) * (emb->dim + 1);
	uint64		result;

	/* The first slot carries the dimension count. */
	memset(canonical, 0, sizeof(float4));
	memcpy(canonical, &emb->dim, sizeof(emb->dim));
	for (int i = 0; i < emb->dim; i++)
		canonical[i + 1] = emb->x[i] == 0.0f ? 0.0f : emb->x[i];
	if (extended)
		result = DatumGetUInt64(hash_any_extended((unsigned char *) canonical, len, seed));
	else
		result = DatumGetUInt32(hash_any((unsigned char *) canonical, len));
	pfree(canonical);
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_embedding_hash);
Datum
crossmodal_embedding_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_UINT32((uint32) EmbeddingHash(PG_GETARG_EMBEDDING_P(0), 0, false));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_hash_extended);
Datum
crossmodal_embedding_hash_extended(PG_FUNCTION_ARGS)
{
	PG_RETURN_UINT64(EmbeddingHash(PG_GETARG_EMBEDDING_P(0), PG_GETARG_INT64(1), true));
}

/*
 * Aggregates avg(embedding) and sum(embedding).  The transition state is a
 * double precision[]: the count, then the double sums.  It is a real type
 * rather than internal so that Citus can compute partial states on its
 * workers and combine them on the coordinator (it ships states in their text
 * form, which for float8 is exact); parallel workers pass it as a datum.  As
 * float8_accum does, the state is updated in place when called as an
 * aggregate, and a new state is returned when the functions are called
 * directly (the argument may be a column's value, which must not change).
 * A state may come from outside (an INITCOND, a Citus worker, a call from
 * SQL), so its shape is checked on every call and its values where they are
 * used.
 */
#define EMBEDDING_AGG_STATE_N(dim) ((dim) + 1)

/*
 * The aggregate's memory context, where the state may be changed in place;
 * NULL when the function is called directly.
 */
static MemoryContext
EmbeddingAggContext(FunctionCallInfo fcinfo)
{
	MemoryContext aggcontext;

	return AggCheckCallContext(fcinfo, &aggcontext) ? aggcontext : NULL;
}

/* A zeroed state for dim dimensions, allocated in context. */
static ArrayType *
EmbeddingAggStateNew(MemoryContext context, int dim)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	int			n = EMBEDDING_AGG_STATE_N(dim);
	Datum	   *zeros = palloc(sizeof(Datum) * n);
	ArrayType  *state;

	for (int i = 0; i < n; i++)
		zeros[i] = Float8GetDatum(0.0);
	state = construct_array(zeros, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	pfree(zeros);
	MemoryContextSwitchTo(old);
	return state;
}

/*
 * The state's values (count, then sums) and dimensions, after checking its
 * shape; with check_values, also that the count is a whole number >= 0 and
 * every sum is finite.  The count alone, {0}, is the empty state (pgvector's
 * INITCOND, so that an aggregate declared as pgvector's works): it has no
 * dimensions yet and takes those of the first embedding or state added.
 */
static float8 *
EmbeddingAggStateValues(ArrayType *state, bool check_values, int *dim)
{
	int			n = ARR_NDIM(state) == 1 ? ARR_DIMS(state)[0] : 0;
	float8	   *values = (float8 *) ARR_DATA_PTR(state);

	if (ARR_NDIM(state) != 1 || ARR_HASNULL(state) || ARR_ELEMTYPE(state) != FLOAT8OID || n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid embedding aggregate state"),
				 errdetail("The state must be a one-dimensional double precision array without NULLs: the count, then 1 to %d sums, or {0}.",
						   EMBEDDING_MAX_DIM)));
	if (n == 1 && values[0] != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid embedding aggregate state"),
				 errdetail("A state without sums must count 0 rows.")));
	if (n > 1)
		EmbeddingCheckDim(n - 1);	/* 54000 past the dimension limit */
	if (check_values)
	{
		if (!(values[0] >= 0 && values[0] == floor(values[0]) && isfinite(values[0])))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid embedding aggregate state"),
					 errdetail("The count, the first element, must be a whole number of at least 0.")));
		for (int i = 1; i < n; i++)
			if (!isfinite(values[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid embedding aggregate state"),
						 errdetail("Element %d is not finite.", i + 1)));
	}
	*dim = n - 1;
	return values;
}

static void
EmbeddingAggCheckSameDim(int a, int b)
{
	if (a != b)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different embedding dimensions %d and %d", a, b)));
}

/*
 * Adds addend to *sum, raising 22003 when a finite sum leaves double's range
 * (only forged states' sums are large enough); a sum that was not finite is
 * left for the final function to report as an invalid state.
 */
static inline void
EmbeddingAggAdd(float8 *sum, float8 addend)
{
	float8		result = *sum + addend;

	if (unlikely(isinf(result)) && isfinite(*sum) && isfinite(addend))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow"),
				 errdetail("A sum of the embedding aggregate state is too large for double precision.")));
	*sum = result;
}

/*
 * The state argument to change: in an aggregate it is ours (a detoasted copy
 * too); called directly it may be a column's value, so it is copied.
 */
static ArrayType *
EmbeddingAggStateArg(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext)
{
	return aggcontext ? PG_GETARG_ARRAYTYPE_P(argno) : PG_GETARG_ARRAYTYPE_P_COPY(argno);
}

CROSSMODAL_FUNCTION(crossmodal_embedding_accum);
Datum
crossmodal_embedding_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = EmbeddingAggContext(fcinfo);
	ArrayType  *state = NULL;
	Embedding  *emb;
	float8	   *values = NULL;
	int			dim = 0;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	emb = PG_GETARG_EMBEDDING_P(1);
	if (!PG_ARGISNULL(0))
	{
		state = EmbeddingAggStateArg(fcinfo, 0, aggcontext);
		values = EmbeddingAggStateValues(state, false, &dim);
	}
	if (dim == 0)				/* no state yet, or the empty one */
	{
		state = EmbeddingAggStateNew(aggcontext ? aggcontext : CurrentMemoryContext, emb->dim);
		values = (float8 *) ARR_DATA_PTR(state);
	}
	else
		EmbeddingAggCheckSameDim(dim, emb->dim);
	values[0] += 1;
	for (int i = 0; i < emb->dim; i++)
		EmbeddingAggAdd(&values[i + 1], emb->x[i]);
	PG_FREE_IF_COPY(emb, 1);
	PG_RETURN_ARRAYTYPE_P(state);
}

CROSSMODAL_FUNCTION(crossmodal_embedding_combine);
Datum
crossmodal_embedding_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = EmbeddingAggContext(fcinfo);
	ArrayType  *state1 = NULL;
	ArrayType  *state2;
	float8	   *values1 = NULL;
	float8	   *values2;
	int			dim1 = 0;
	int			dim2;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	state2 = PG_GETARG_ARRAYTYPE_P(1);
	values2 = EmbeddingAggStateValues(state2, true, &dim2);
	if (!PG_ARGISNULL(0))
	{
		state1 = EmbeddingAggStateArg(fcinfo, 0, aggcontext);
		values1 = EmbeddingAggStateValues(state1, false, &dim1);
	}
	if (dim1 == 0)
	{
		/*
		 * The first state of a group, or the empty one: a copy of the second
		 * (two empty states give the empty state), in the aggregate's context.
		 */
		state1 = EmbeddingAggStateNew(aggcontext ? aggcontext : CurrentMemoryContext, dim2);
		memcpy(ARR_DATA_PTR(state1), values2, sizeof(float8) * EMBEDDING_AGG_STATE_N(dim2));
		PG_RETURN_ARRAYTYPE_P(state1);
	}
	if (dim2 == 0)
		PG_RETURN_ARRAYTYPE_P(state1);
	EmbeddingAggCheckSameDim(dim1, dim2);
	for (int i = 0; i < EMBEDDING_AGG_STATE_N(dim1); i++)
		EmbeddingAggAdd(&values1[i], values2[i]);
	PG_RETURN_ARRAYTYPE_P(state1);
}

/* The state's sums divided by divisor as an embedding, checking float4 range. */
static Embedding *
EmbeddingFromSums(const float8 *sums, int dim, double divisor)
{
	Embedding  *result = EmbeddingNew(dim);

	for (int i = 0; i < dim; i++)
	{
		result->x[i] = (float4) (sums[i] / divisor);
		if (isinf(result->x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value out of range: overflow"),
					 errdetail("Element %d of the result is too large for a real (float4).",
							   i + 1)));
	}
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_embedding_avg_final);
Datum
crossmodal_embedding_avg_final(PG_FUNCTION_ARGS)
{
	int			dim;
	float8	   *values = EmbeddingAggStateValues(PG_GETARG_ARRAYTYPE_P(0), true, &dim);

	/* Only a state made outside the transition function can count 0 rows. */
	if (values[0] == 0)
		PG_RETURN_NULL();
	PG_RETURN_EMBEDDING_P(EmbeddingFromSums(values + 1, dim, values[0]));
}

CROSSMODAL_FUNCTION(crossmodal_embedding_sum_final);
Datum
crossmodal_embedding_sum_final(PG_FUNCTION_ARGS)
{
	int			dim;
	float8	   *values = EmbeddingAggStateValues(PG_GETARG_ARRAYTYPE_P(0), true, &dim);

	if (values[0] == 0)
		PG_RETURN_NULL();
	PG_RETURN_EMBEDDING_P(EmbeddingFromSums(values + 1, dim, 1.0));
}
