/*
 * crossmodal.c
 *	  Library entry point: the one _PG_init, which initialises every module.
 */
#include "postgres.h"

#include "fmgr.h"

#include "embedding.h"
#include "hnsw.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* The embedding type and its distance functions. */
	EmbeddingInit();
	DistanceInit();

	/* Encoder SQL wrappers: initialised here once that module lands. */

	/* HNSW index access method: options and settings. */
	HnswInit();
}
