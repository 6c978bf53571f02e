/*
 * hnswstorage.c
 *	  The forms a crossmodal_hnsw index stores its vectors in (float4, half, int8, rabitq): codes, distances, limits.
 *
 * An element's code is what the graph's distances are computed on.  float4
 * keeps the prepared vector itself, so its distances are exact.  The compact
 * forms are smaller, so a search touches less memory, and a page holds more
 * dimensions; their distances are estimates, and a scan re-ranks its
 * candidates with the exact distance to the vector in the table
 * (hnswscan.c), using the bound each code carries on its own error:
 *
 *   half   IEEE binary16 per dimension, after a header with the Euclidean
 *          norm of the rounding error |x - x'| (x' the vector the code holds).
 *   int8   one scale s per vector (max |x_i| / 127) and round(x_i / s), after
 *          a header with s, |x'|^2 and |x - x'|.
 *   rabitq RaBitQ's one bit per dimension: the residual r = x - c from the
 *          centroid c of the rows the index was built on (kept in pages after
 *          the metapage; none for an index built empty) is rotated by a
 *          random orthogonal transform R (sign flips and Hadamard transforms,
 *          from a seed in the metapage) and only the signs of its coordinates
 *          are kept, with |r|, <r_bar, Rr/|r|> (the code's agreement with the
 *          rotated unit residual) and <r, c>; then <r, q - c> is estimated
 *          without bias as |r| <r_bar, R(q - c)> / <r_bar, Rr/|r|>, and
 *          <x, q> = <r, q - c> + <r, c> + <c, q>.  Rows share a large common
 *          component (image embeddings sit in a cone): without the centroid
 *          the signs would spend their resolution on it.  The error has no
 *          useful bound, so a scan re-ranks every candidate.
 *
 * A query (HnswQuery) is a prepared vector in the code's space: the vector
 * itself, or its rotation for rabitq.  An element's code can serve as a query
 * too (HnswCodeQuery), for the distances between two elements that neighbour
 * selection needs.
 */
#include "postgres.h"

#include <math.h>

#include "embedding.h"
#include "hnsw.h"
#include "port/pg_bitutils.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

/* The fixed part of each compact code, before the per-dimension values. */
typedef struct HnswHalfCode
{
	float4		error;			/* |x - x'| */
	uint16		x[FLEXIBLE_ARRAY_MEMBER];
} HnswHalfCode;

typedef struct HnswInt8Code
{
	float4		scale;			/* x'_i = scale * x[i] */
	float4		norm2;			/* |x'|^2 */
	float4		error;			/* |x - x'| */
	int8		x[FLEXIBLE_ARRAY_MEMBER];
} HnswInt8Code;

typedef struct HnswBitCode
{
	float4		norm;			/* |r|, r = x - centroid */
	float4		dot;			/* <r_bar, R r / |r|>, in (0, 1] */
	float4		cdot;			/* <r, centroid> */
	uint8		bits[FLEXIBLE_ARRAY_MEMBER];	/* sign of each rotated coordinate */
} HnswBitCode;

#define HNSW_ROTATION_ROUNDS		4

/* Slack for float rounding in the re-ranking bounds (relative). */
#define HNSW_BOUND_SLACK			1e-5f

static const char *const hnsw_storage_names[] = {
	[HNSW_STORAGE_FLOAT4] = "float4",
	[HNSW_STORAGE_HALF] = "half",
	[HNSW_STORAGE_INT8] = "int8",
	[HNSW_STORAGE_RABITQ] = "rabitq",
};

const char *
HnswStorageName(HnswStorage storage)
{
	return hnsw_storage_names[storage];
}

/* The form named `name`; false if there is none. */
bool
HnswStorageParse(const char *name, HnswStorage *storage)
{
	for (int i = 0; i < lengthof(hnsw_storage_names); i++)
	{
		if (pg_strcasecmp(name, hnsw_storage_names[i]) == 0)
		{
			*storage = (HnswStorage) i;
			return true;
		}
	}
	return false;
}

/* Dimensions of the code's space: rabitq pads to a multiple of 64. */
static int
HnswCodeDims(HnswStorage storage, int dims)
{
	return storage == HNSW_STORAGE_RABITQ ? TYPEALIGN(64, dims) : dims;
}

/* Bytes of the code of a `dims`-dimensional vector, a multiple of 4. */
Size
HnswCodeSize(HnswStorage storage, int dims)
{
	switch (storage)
	{
		case HNSW_STORAGE_FLOAT4:
			return sizeof(float4) * (Size) dims;
		case HNSW_STORAGE_HALF:
			return TYPEALIGN(4, offsetof(HnswHalfCode, x) + sizeof(uint16) * (Size) dims);
		case HNSW_STORAGE_INT8:
			return TYPEALIGN(4, offsetof(HnswInt8Code, x) + (Size) dims);
		case HNSW_STORAGE_RABITQ:
			return offsetof(HnswBitCode, bits) + HnswCodeDims(storage, dims) / 8;
	}
	return 0;					/* keep compiler quiet */
}

/* Whether an element of `dims` dimensions fits a page in this form with this m. */
static bool
HnswFits(HnswStorage storage, int dims, int m)
{
	return MAXALIGN(HnswElementTupleSize(HnswCodeSize(storage, dims), m, 0)) <= HNSW_PAGE_CAPACITY;
}

/* The most dimensions a page holds in this form with this m. */
static int
HnswMaxDims(HnswStorage storage, int m)
{
	int			lo = 0;
	int			hi = EMBEDDING_MAX_DIM;

	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (HnswFits(storage, mid, m))
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/*
 * Checks that vectors of `dims` dimensions can be indexed in the index's
 * form with its m; the error names the limit and the form that lifts it.
 */
void
HnswCheckDims(HnswIndexState *state, int dims)
{
	HnswStorage storage = state->storage;

	if (!HnswFits(storage, dims, state->m))
	{
		int			max = HnswMaxDims(storage, state->m);

		for (int other = storage + 1; other <= HNSW_STORAGE_RABITQ; other++)
		{
			if (HnswFits((HnswStorage) other, dims, state->m))
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("embedding of %d dimensions is too large for a crossmodal_hnsw index with storage = %s and m = %d",
								dims, HnswStorageName(storage), state->m),
						 errdetail("An index page holds at most %d dimensions with storage = %s and m = %d.",
								   max, HnswStorageName(storage), state->m),
						 errhint("Use storage = %s (up to %d dimensions with m = %d).",
								 HnswStorageName((HnswStorage) other),
								 HnswMaxDims((HnswStorage) other, state->m), state->m)));
		}
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding of %d dimensions is too large for a crossmodal_hnsw index with storage = %s and m = %d",
						dims, HnswStorageName(storage), state->m),
				 errdetail("An index page holds at most %d dimensions with storage = %s and m = %d.",
						   max, HnswStorageName(storage), state->m),
				 errhint("Use a smaller m.")));
	}
}

/*
 * Checks that the index's form works with its operator class: rabitq
 * estimates inner products, so it needs a distance made of them.
 */
void
HnswCheckStorage(HnswIndexState *state)
{
	if (state->storage == HNSW_STORAGE_RABITQ &&
		(state->metric == HNSW_METRIC_L1 || state->metric == HNSW_METRIC_OTHER))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crossmodal_hnsw storage = rabitq supports only cosine, Euclidean and inner product distances"),
				 errdetail("Index \"%s\" uses an operator class with another distance.",
						   RelationGetRelationName(state->index)),
				 errhint("Use storage = half, int8 or float4.")));
}

/* ---------- the random rotation of rabitq ---------- */

static uint64
HnswSplitMix64(uint64 *s)
{
	uint64		z = (*s += UINT64CONST(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* In-place fast Walsh-Hadamard transform of n (a power of two) values, scaled to be orthogonal. */
static void
HnswHadamard(float4 *x, int n)
{
	float4		scale = (float4) (1.0 / sqrt((double) n));

	for (int h = 1; h < n; h *= 2)
		for (int i = 0; i < n; i += 2 * h)
			for (int j = i; j < i + h; j++)
			{
				float4		a = x[j];
				float4		b = x[j + h];

				x[j] = a + b;
				x[j + h] = a - b;
			}
	for (int i = 0; i < n; i++)
		x[i] *= scale;
}

/*
 * The rotation: a vector padded with zeros to codeDims (D) values goes
 * through HNSW_ROTATION_ROUNDS rounds of random sign flips followed by a
 * Hadamard transform of its first B values (even rounds) or its last B
 * (odd rounds), B the largest power of two <= D.  Each step is orthogonal,
 * so norms and inner products are kept, and when D is not a power of two
 * the overlapping blocks still mix every coordinate with every other.
 */
static void
HnswRotate(HnswIndexState *state, const float4 *x, float4 *out)
{
	int			D = state->codeDims;
	int			B = 1;

	while (B * 2 <= D)
		B *= 2;
	memcpy(out, x, sizeof(float4) * state->dims);
	memset(out + state->dims, 0, sizeof(float4) * (D - state->dims));
	for (int r = 0; r < HNSW_ROTATION_ROUNDS; r++)
	{
		const uint8 *signs = state->rotationSigns + (Size) r * (D / 8);

		for (int i = 0; i < D; i++)
			if ((signs[i / 8] >> (i % 8)) & 1)
				out[i] = -out[i];
		HnswHadamard(out + (r % 2 == 0 ? 0 : D - B), B);
	}
}

/* ---------- rabitq's centroid ---------- */

/*
 * Writes the centroid into pages after the metapage (blocks 1 .. n, each a
 * HNSW_PAGE_CENTROID page of float4 values); the build does this before any
 * element page exists, and records n in the metapage.
 */
void
HnswWriteCentroid(Relation index, ForkNumber fork, const float4 *centroid, int dims)
{
	for (int done = 0; done < dims; done += HNSW_CENTROID_PER_PAGE)
	{
		int			n = Min(dims - done, (int) HNSW_CENTROID_PER_PAGE);
		Buffer		buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
		GenericXLogState *xlog;
		Page		page;

		if (BufferGetBlockNumber(buf) != 1 + (BlockNumber) (done / HNSW_CENTROID_PER_PAGE))
			elog(ERROR, "unexpected block %u while writing the centroid of crossmodal_hnsw index \"%s\"",
				 BufferGetBlockNumber(buf), RelationGetRelationName(index));
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(xlog, buf, GENERIC_XLOG_FULL_IMAGE);
		HnswInitPage(page, HNSW_PAGE_CENTROID);
		memcpy(PageGetContents(page), centroid + done, sizeof(float4) * n);
		((PageHeader) page)->pd_lower = (PageGetContents(page) + sizeof(float4) * n) - (char *) page;
		GenericXLogFinish(xlog);
		UnlockReleaseBuffer(buf);
	}
}

/* Reads the centroid from its `blocks` pages into the state. */
void
HnswReadCentroid(HnswIndexState *state, int blocks)
{
	float4	   *c = palloc(sizeof(float4) * state->dims);

	if (blocks != (state->dims + HNSW_CENTROID_PER_PAGE - 1) / HNSW_CENTROID_PER_PAGE)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("crossmodal_hnsw index \"%s\" has %d centroid pages for %d dimensions",
						RelationGetRelationName(state->index), blocks, state->dims)));
	for (int b = 0; b < blocks; b++)
	{
		int			done = b * HNSW_CENTROID_PER_PAGE;
		int			n = Min(state->dims - done, (int) HNSW_CENTROID_PER_PAGE);
		Buffer		buf = ReadBuffer(state->index, 1 + b);
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (PageIsNew(page) || !(HnswPageGetOpaque(page)->flags & HNSW_PAGE_CENTROID) ||
			((PageHeader) page)->pd_lower != (PageGetContents(page) + sizeof(float4) * n) - (char *) page)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("crossmodal_hnsw index \"%s\" has a damaged centroid page %d",
							RelationGetRelationName(state->index), 1 + b)));
		memcpy(c + done, PageGetContents(page), sizeof(float4) * n);
		UnlockReleaseBuffer(buf);
	}
	state->centroid = c;
	state->centroidNorm2 = HnswKernelDot(c, c, state->dims);
}

/* ---------- the index state ---------- */

/* Sets the dimensions (0: not known yet) and what follows from them. */
void
HnswSetDims(HnswIndexState *state, int dims)
{
	state->dims = dims;
	state->codeDims = HnswCodeDims(state->storage, dims);
	state->codeSize = HnswCodeSize(state->storage, dims);
	state->rotationSigns = NULL;
	if (state->storage == HNSW_STORAGE_RABITQ && dims > 0)
	{
		uint64		s = state->seed;
		Size		nbytes = (Size) HNSW_ROTATION_ROUNDS * state->codeDims / 8;
		uint8	   *signs = palloc(nbytes);

		for (Size i = 0; i < nbytes; i += 8)
		{
			uint64		r = HnswSplitMix64(&s);

			memcpy(signs + i, &r, Min(8, nbytes - i));
		}
		state->rotationSigns = signs;
	}
}

/* ---------- queries and codes ---------- */

/*
 * A prepared vector as a query in the code's space: for rabitq, a palloc'd
 * rotation of its difference from the centroid.
 */
void
HnswMakeQuery(HnswIndexState *state, const float4 *vector, HnswQuery *q)
{
	memset(q, 0, sizeof(HnswQuery));
	if (vector == NULL)
		return;
	if (state->storage == HNSW_STORAGE_RABITQ)
	{
		float4	   *r = palloc(sizeof(float4) * state->codeDims);
		double		sum = 0;

		if (state->centroid != NULL)
		{
			float4	   *d = palloc(sizeof(float4) * state->dims);

			for (int i = 0; i < state->dims; i++)
				d[i] = vector[i] - state->centroid[i];
			q->offset = HnswKernelDot(vector, state->centroid, state->dims);
			HnswRotate(state, d, r);
			pfree(d);
		}
		else
			HnswRotate(state, vector, r);
		for (int i = 0; i < state->codeDims; i++)
			sum += r[i];
		q->x = r;
		q->sum = (float4) sum;
	}
	else
		q->x = vector;
	q->norm2 = HnswKernelDot(q->x, q->x, state->codeDims);
}

/*
 * The code an element stores for a prepared vector (q: the same vector as
 * a query, HnswMakeQuery).
 */
void
HnswEncode(HnswIndexState *state, const HnswQuery *q, const float4 *vector, char *code)
{
	int			dims = state->dims;

	memset(code, 0, state->codeSize);
	switch (state->storage)
	{
		case HNSW_STORAGE_FLOAT4:
			memcpy(code, vector, sizeof(float4) * dims);
			break;
		case HNSW_STORAGE_HALF:
			{
				HnswHalfCode *c = (HnswHalfCode *) code;
				double		err = 0;

				for (int i = 0; i < dims; i++)
				{
					uint16		h = FloatToHalf(vector[i]);
					double		d = (double) vector[i] - HalfToFloat(h);

					if ((h & 0x7c00) == 0x7c00)
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("embedding element %g is out of range for crossmodal_hnsw storage = half",
										vector[i]),
								 errdetail("Half precision holds values up to 65504 in magnitude."),
								 errhint("Use storage = int8 or float4.")));
					c->x[i] = h;
					err += d * d;
				}
				c->error = (float4) sqrt(err);
			}
			break;
		case HNSW_STORAGE_INT8:
			{
				HnswInt8Code *c = (HnswInt8Code *) code;
				float4		amax = 0;
				double		norm2 = 0;
				double		err = 0;

				for (int i = 0; i < dims; i++)
					amax = Max(amax, fabsf(vector[i]));
				c->scale = amax / 127.0f;
				for (int i = 0; i < dims; i++)
				{
					long		v = c->scale > 0 ? lrintf(vector[i] / c->scale) : 0;
					double		x;

					c->x[i] = (int8) Max(-127, Min(127, v));
					x = (double) c->scale * c->x[i];
					norm2 += x * x;
					err += ((double) vector[i] - x) * ((double) vector[i] - x);
				}
				c->norm2 = (float4) norm2;
				c->error = (float4) sqrt(err);
			}
			break;
		case HNSW_STORAGE_RABITQ:
			{
				HnswBitCode *c = (HnswBitCode *) code;
				int			D = state->codeDims;
				double		norm = sqrt((double) q->norm2);
				double		abssum = 0;

				for (int i = 0; i < D; i++)
				{
					if (q->x[i] > 0)
						c->bits[i / 8] |= (uint8) (1 << (i % 8));
					abssum += fabs((double) q->x[i]);
				}
				c->norm = (float4) norm;
				/* a zero residual's code agrees with nothing: any positive value will do */
				c->dot = norm > 0 ? (float4) (abssum / (norm * sqrt((double) D))) : 1.0f;
				if (state->centroid != NULL)
					c->cdot = HnswKernelDot(vector, state->centroid, dims) - state->centroidNorm2;
			}
			break;
	}
}

/*
 * What is wrong with an element's code, as a sentence, or NULL: the values
 * hnsw.h promises for the storage form (crossmodal_hnsw_check).
 */
char *
HnswCodeProblem(HnswIndexState *state, const char *code)
{
	int			dims = state->dims;

	switch (state->storage)
	{
		case HNSW_STORAGE_FLOAT4:
			{
				const float4 *x = (const float4 *) code;
				double		norm2 = 0;

				for (int i = 0; i < dims; i++)
				{
					if (!isfinite(x[i]))
						return psprintf("Element %d of the stored vector is not finite.", i + 1);
					norm2 += (double) x[i] * x[i];
				}
				if (state->normalize && fabs(sqrt(norm2) - 1.0) > 1e-3)
					return psprintf("The stored vector of a cosine index has norm %g, not 1.", sqrt(norm2));
			}
			break;
		case HNSW_STORAGE_HALF:
			{
				const HnswHalfCode *c = (const HnswHalfCode *) code;

				if (!isfinite(c->error) || c->error < 0)
					return psprintf("The half code's error is %g, not a finite value >= 0.", c->error);
				for (int i = 0; i < dims; i++)
					if ((c->x[i] & 0x7c00) == 0x7c00)
						return psprintf("Element %d of the half code is not finite (0x%04X).",
										i + 1, c->x[i]);
			}
			break;
		case HNSW_STORAGE_INT8:
			{
				const HnswInt8Code *c = (const HnswInt8Code *) code;
				double		norm2 = 0;

				if (!isfinite(c->scale) || c->scale < 0 || !isfinite(c->norm2) || c->norm2 < 0 ||
					!isfinite(c->error) || c->error < 0)
					return psprintf("The int8 code's scale, norm2 and error are %g, %g and %g, not finite values >= 0.",
									c->scale, c->norm2, c->error);
				for (int i = 0; i < dims; i++)
				{
					double		x = (double) c->scale * c->x[i];

					if (c->x[i] < -127)
						return psprintf("Element %d of the int8 code is %d, outside -127..127.",
										i + 1, c->x[i]);
					norm2 += x * x;
				}
				if (fabs(norm2 - c->norm2) > 1e-4 * Max(norm2, 1e-6))
					return psprintf("The int8 code's norm2 is %g; its values give %g.", c->norm2, norm2);
			}
			break;
		case HNSW_STORAGE_RABITQ:
			{
				const HnswBitCode *c = (const HnswBitCode *) code;

				if (!isfinite(c->norm) || c->norm < 0 || !isfinite(c->cdot) ||
					!(c->dot > 0 && c->dot <= 1.0f + 1e-5f))
					return psprintf("The rabitq code's norm, dot and cdot are %g, %g and %g: norm must be finite and >= 0, dot in (0, 1], cdot finite.",
									c->norm, c->dot, c->cdot);
			}
			break;
	}
	return NULL;
}

/*
 * An element's code as a query, for distances between two elements.
 * `scratch` holds codeDims floats for the forms that decode.
 */
void
HnswCodeQuery(HnswIndexState *state, const char *code, HnswQuery *q, float4 *scratch)
{
	int			dims = state->dims;

	memset(q, 0, sizeof(HnswQuery));
	switch (state->storage)
	{
		case HNSW_STORAGE_FLOAT4:
			q->x = (const float4 *) code;
			return;
		case HNSW_STORAGE_HALF:
			{
				const HnswHalfCode *c = (const HnswHalfCode *) code;

				for (int i = 0; i < dims; i++)
					scratch[i] = HalfToFloat(c->x[i]);
				q->norm2 = HnswKernelDot(scratch, scratch, dims);
			}
			break;
		case HNSW_STORAGE_INT8:
			{
				const HnswInt8Code *c = (const HnswInt8Code *) code;

				q->norm2 = c->norm2;
				if (state->metric != HNSW_METRIC_L1 && state->metric != HNSW_METRIC_OTHER)
				{
					/* compared code to code, in integers (HnswDistance) */
					q->code = code;
					return;
				}
				for (int i = 0; i < dims; i++)
					scratch[i] = c->scale * c->x[i];
			}
			break;
		case HNSW_STORAGE_RABITQ:
			/* compared code to code (HnswDistance): nothing to decode */
			q->code = code;
			q->norm2 = ((const HnswBitCode *) code)->norm * ((const HnswBitCode *) code)->norm;
			return;
	}
	q->x = scratch;
}

/* The graph's distance between two float vectors (a float4 code is one). */
static float
HnswFloatDistance(HnswIndexState *state, const float4 *q, const float4 *x)
{
	int			dims = state->dims;

	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			return HnswKernelL2Squared(q, x, dims);
		case HNSW_METRIC_IP:
			return -HnswKernelDot(q, x, dims);
		case HNSW_METRIC_COSINE:
			return 1.0f - HnswKernelDot(q, x, dims);
		case HNSW_METRIC_L1:
			return HnswKernelL1(q, x, dims);
		case HNSW_METRIC_OTHER:
			return HnswDistanceViaProc(state, q, x);
	}
	return 0.0f;				/* keep compiler quiet */
}

/*
 * A half or int8 code decoded, then the float distance: for L1 and other
 * operator classes, whose distances are not made of inner products.
 */
static float
HnswDecodedDistance(HnswIndexState *state, const float4 *q, const char *code)
{
	float4	   *x = palloc(sizeof(float4) * state->dims);
	float		d;

	if (state->storage == HNSW_STORAGE_HALF)
		for (int i = 0; i < state->dims; i++)
			x[i] = HalfToFloat(((const HnswHalfCode *) code)->x[i]);
	else
		for (int i = 0; i < state->dims; i++)
			x[i] = ((const HnswInt8Code *) code)->scale * ((const HnswInt8Code *) code)->x[i];
	d = HnswFloatDistance(state, q, x);
	pfree(x);
	return d;
}

/* Two int8 codes compared: the inner product of the two vectors they hold, exactly. */
static float
HnswInt8CodeDistance(HnswIndexState *state, const HnswInt8Code *a, const HnswInt8Code *b)
{
	float		ip = a->scale * b->scale * (float) hnsw_kernels->dot_i8(a->x, b->x, state->dims);

	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			return a->norm2 + b->norm2 - 2.0f * ip;
		case HNSW_METRIC_IP:
			return -ip;
		case HNSW_METRIC_COSINE:
			return 1.0f - ip;
		case HNSW_METRIC_L1:
		case HNSW_METRIC_OTHER:
			break;				/* compared decoded (HnswCodeQuery) */
	}
	return 0.0f;				/* keep compiler quiet */
}

/*
 * Two rabitq codes compared: RaBitQ's symmetric estimate of the inner
 * product of the two unit vectors is <a_bar, b_bar> / (<a_bar, a> <b_bar, b>),
 * and <a_bar, b_bar> = 1 - 2 hamming(a, b) / D.
 */
static float
HnswBitCodeDistance(HnswIndexState *state, const HnswBitCode *a, const HnswBitCode *b)
{
	int			D = state->codeDims;
	uint64		differ = 0;
	float		ip;

	for (int i = 0; i < D / 8; i += 8)
	{
		uint64		wa,
					wb;

		memcpy(&wa, a->bits + i, 8);
		memcpy(&wb, b->bits + i, 8);
		differ += pg_popcount64(wa ^ wb);
	}
	/* <r_a, r_b>, then <x_a, x_b> = <r_a, r_b> + <r_a, c> + <r_b, c> + |c|^2 */
	ip = a->norm * b->norm * (1.0f - 2.0f * differ / D) / (a->dot * b->dot);
	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			return a->norm * a->norm + b->norm * b->norm - 2.0f * ip;
		case HNSW_METRIC_IP:
			return -(ip + a->cdot + b->cdot + state->centroidNorm2);
		case HNSW_METRIC_COSINE:
			return 1.0f - (ip + a->cdot + b->cdot + state->centroidNorm2);
		case HNSW_METRIC_L1:
		case HNSW_METRIC_OTHER:
			break;				/* not with rabitq (HnswCheckStorage) */
	}
	return 0.0f;				/* keep compiler quiet */
}

/*
 * The distance the graph is ordered by, between a query and an element's
 * code.  It is monotonic in the opclass's ordering operator: squared L2 for
 * L2, 1 - dot for unit vectors (cosine), -dot for inner product; for the
 * compact forms, an estimate of it.  A query without a vector is at distance
 * 0 from everything.
 */
float
HnswDistance(HnswIndexState *state, const HnswQuery *q, const char *code)
{
	int			dims = state->dims;
	float		ip = 0.0f;

	if (q->code != NULL)
		return state->storage == HNSW_STORAGE_INT8 ?
			HnswInt8CodeDistance(state, (const HnswInt8Code *) q->code, (const HnswInt8Code *) code) :
			HnswBitCodeDistance(state, (const HnswBitCode *) q->code, (const HnswBitCode *) code);
	if (q->x == NULL)
		return 0.0f;
	switch (state->storage)
	{
		case HNSW_STORAGE_FLOAT4:
			return HnswFloatDistance(state, q->x, (const float4 *) code);
		case HNSW_STORAGE_HALF:
			{
				const HnswHalfCode *c = (const HnswHalfCode *) code;

				switch (state->metric)
				{
					case HNSW_METRIC_L2:
						return hnsw_kernels->l2_squared_f16(q->x, c->x, dims);
					case HNSW_METRIC_IP:
						return -hnsw_kernels->inner_product_f16(q->x, c->x, dims);
					case HNSW_METRIC_COSINE:
						return 1.0f - hnsw_kernels->inner_product_f16(q->x, c->x, dims);
					case HNSW_METRIC_L1:
					case HNSW_METRIC_OTHER:
						return HnswDecodedDistance(state, q->x, code);
				}
			}
			break;
		case HNSW_STORAGE_INT8:
			{
				const HnswInt8Code *c = (const HnswInt8Code *) code;

				if (state->metric == HNSW_METRIC_L1 || state->metric == HNSW_METRIC_OTHER)
					return HnswDecodedDistance(state, q->x, code);
				ip = c->scale * hnsw_kernels->inner_product_i8(q->x, c->x, dims);
				break;
			}
		case HNSW_STORAGE_RABITQ:
			{
				const HnswBitCode *c = (const HnswBitCode *) code;
				int			D = state->codeDims;
				float		masked = hnsw_kernels->masked_sum(q->x, c->bits, D);
				float		ipbar = (2.0f * masked - q->sum) / sqrtf((float) D);

				/* <r, q - c>; |x - q|^2 = |r|^2 + |q - c|^2 - 2 <r, q - c> */
				ip = c->norm * ipbar / c->dot;
				if (state->metric == HNSW_METRIC_L2)
					return q->norm2 + c->norm * c->norm - 2.0f * ip;
				ip += c->cdot + q->offset;
				break;
			}
	}
	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			/* int8: |q|^2 - 2 q.x' + |x'|^2 */
			return q->norm2 - 2.0f * ip + ((const HnswInt8Code *) code)->norm2;
		case HNSW_METRIC_IP:
			return -ip;
		case HNSW_METRIC_COSINE:
			return 1.0f - ip;
		case HNSW_METRIC_L1:
		case HNSW_METRIC_OTHER:
			break;
	}
	return 0.0f;				/* keep compiler quiet */
}

/*
 * A lower bound of the exact distance (in the graph's units) of an element
 * whose code gives `approx`, from the error its code carries: |x - x'| <= e
 * bounds |q.x - q.x'| by |q| e (and an L1 distance by sqrt(dims) e).
 * float4 codes are exact; rabitq codes and
 * distances through another operator class have no bound (-infinity).
 */
float
HnswLowerBound(HnswIndexState *state, const char *code, float approx, float queryNorm)
{
	float		e;
	float		slack = HNSW_BOUND_SLACK * (1.0f + fabsf(approx));

	switch (state->storage)
	{
		case HNSW_STORAGE_FLOAT4:
			return approx;
		case HNSW_STORAGE_HALF:
			e = ((const HnswHalfCode *) code)->error;
			break;
		case HNSW_STORAGE_INT8:
			e = ((const HnswInt8Code *) code)->error;
			break;
		default:
			return -INFINITY;
	}
	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			{
				/* |q - x| >= |q - x'| - e */
				float		r = sqrtf(Max(approx, 0.0f)) - e;

				return r > 0 ? r * r - slack : -slack;
			}
		case HNSW_METRIC_IP:
		case HNSW_METRIC_COSINE:
			return approx - queryNorm * e - slack;
		case HNSW_METRIC_L1:
			/* |L1(q, x) - L1(q, x')| <= |x - x'|_1 <= sqrt(dims) e */
			return approx - sqrtf((float) state->dims) * e - slack;
		case HNSW_METRIC_OTHER:
			break;
	}
	return -INFINITY;
}

/*
 * The exact distance, in the graph's units, between the prepared query and
 * a vector from the table: what a scan re-ranks with.  An operator class of
 * another distance gets its own function of the raw query.
 */
float
HnswExactDistance(HnswIndexState *state, const float4 *query, const float4 *rawQuery,
				  const float4 *x)
{
	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			return HnswKernelL2Squared(query, x, state->dims);
		case HNSW_METRIC_IP:
			return -HnswKernelDot(query, x, state->dims);
		case HNSW_METRIC_COSINE:
			{
				float		dot,
							qq,
							xx;

				hnsw_kernels->cosine_parts(query, x, state->dims, &dot, &qq, &xx);
				return (float) CosineDistanceFromParts(dot, qq, xx);
			}
		case HNSW_METRIC_L1:
			return HnswKernelL1(query, x, state->dims);
		case HNSW_METRIC_OTHER:
			return HnswDistanceViaProc(state, rawQuery, x);
	}
	return 0.0f;				/* keep compiler quiet */
}
