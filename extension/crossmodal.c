/*
 * crossmodal.c
 *	  Library entry point: the one _PG_init, which initialises every module.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "crossmodal.h"
#include "embedding.h"
#include "encode_once.h"
#include "hnsw.h"
#include "model_registry.h"

/* The two names PostgreSQL looks up besides the SQL-callable functions. */
extern CROSSMODAL_EXPORT const Pg_magic_struct *Pg_magic_func(void);
extern CROSSMODAL_EXPORT void _PG_init(void);

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	/* The embedding type and its distance functions. */
	EmbeddingInit();
	DistanceInit();

	/* Encoder settings and the per-backend model registry. */
	EncoderRegistryInit();

	/* Query-level encodes once per execution (a planner hook when preloaded). */
	EncodeOnceInit();

	/* HNSW index access method: options and settings. */
	HnswInit();

	/* Last: every module has defined its crossmodal.* settings. */
	MarkGUCPrefixReserved("crossmodal");
}
