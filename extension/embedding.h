/*
 * embedding.h
 *	  The embedding type: its in-memory and on-disk layout, limits and accessors.
 *
 * An embedding is a varlena holding a dimension count and that many float4
 * elements, every one of them finite.  The layout is the same in memory and on
 * disk, so a detoasted datum can be used in place.  Other modules (the index
 * access method, the encoder wrappers) build on this header; keep it small
 * and stable.
 */
#ifndef CROSSMODAL_EMBEDDING_H
#define CROSSMODAL_EMBEDDING_H

#include "postgres.h"

#include "fmgr.h"

#include "crossmodal.h"

/* Largest number of dimensions an embedding may have (also the typmod limit). */
#define EMBEDDING_MAX_DIM	16000

typedef struct Embedding
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int16		dim;			/* number of elements, 1..EMBEDDING_MAX_DIM */
	int16		unused;			/* reserved for future flags, always 0 */
	float4		x[FLEXIBLE_ARRAY_MEMBER];	/* the elements, all finite */
} Embedding;

/* Bytes taken by an embedding of dim elements, header included. */
#define EMBEDDING_SIZE(dim)		(offsetof(Embedding, x) + sizeof(float4) * (dim))

#define DatumGetEmbeddingP(d)		((Embedding *) PG_DETOAST_DATUM(d))
#define PG_GETARG_EMBEDDING_P(n)	DatumGetEmbeddingP(PG_GETARG_DATUM(n))
#define PG_RETURN_EMBEDDING_P(e)	PG_RETURN_POINTER(e)

/* Allocates (palloc0) an embedding of dim elements; dim must be in range. */
extern Embedding *EmbeddingNew(int dim);

/*
 * Raises the user-facing errors shared by every way a value enters the type:
 * a dimension count out of range, a value that is not finite, a dimension
 * count that does not match the column's typmod (-1 means unconstrained).
 */
extern void EmbeddingCheckDim(int dim);
extern void EmbeddingCheckElement(float4 value, int position);
extern void EmbeddingCheckTypmod(int dim, int32 typmod);

/* Raises the error for two operands whose dimensions differ. */
static inline void
EmbeddingCheckSameDim(const Embedding *a, const Embedding *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different embedding dimensions %d and %d",
						a->dim, b->dim)));
}

/*
 * Distances, with the same semantics as the SQL functions (distance.c):
 * dimensions must match; cosine distance is NaN when either side is zero.
 */
extern double EmbeddingCosineDistance(const Embedding *a, const Embedding *b);
extern double EmbeddingL2Distance(const Embedding *a, const Embedding *b);
extern double EmbeddingInnerProduct(const Embedding *a, const Embedding *b);
extern double EmbeddingL1Distance(const Embedding *a, const Embedding *b);

/*
 * The SQL-callable distance functions (distance.c): the index compares an
 * operator class's support function with these to call the kernels directly.
 */
extern CROSSMODAL_EXPORT Datum crossmodal_cosine_distance(PG_FUNCTION_ARGS);
extern CROSSMODAL_EXPORT Datum crossmodal_l2_distance(PG_FUNCTION_ARGS);
extern CROSSMODAL_EXPORT Datum crossmodal_embedding_negative_inner_product(PG_FUNCTION_ARGS);
extern CROSSMODAL_EXPORT Datum crossmodal_l1_distance(PG_FUNCTION_ARGS);

/* Module initialisation, called once from _PG_init. */
extern void EmbeddingInit(void);
extern void DistanceInit(void);

#endif							/* CROSSMODAL_EMBEDDING_H */
