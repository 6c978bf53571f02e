/*
 * hnswscan.c
 *	  ORDER BY distance scans of crossmodal_hnsw, iterative past the first ef_search rows.
 *
 * The first batch is the HNSW search with ef = crossmodal.hnsw_ef_search.
 * When the executor asks for more rows than that batch held (a WHERE clause
 * rejected some, or the LIMIT is larger), the search resumes from the
 * elements it visited but did not return and the candidates it did not
 * expand, one batch of ef at a time, until crossmodal.hnsw_max_scan_tuples
 * elements have been read.  Within a batch rows come nearest first; across
 * batches the order is approximate, like the search itself.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

typedef struct HnswScanOpaqueData
{
	MemoryContext cxt;			/* everything of one scan, reset on rescan */
	bool		started;
	bool		done;
	HnswIndexState state;
	float4	   *query;
	HnswSearch	search;
	int		   *batch;			/* pool indexes of the current batch */
	int			nbatch;
	int			next;			/* next batch entry to return */
} HnswScanOpaqueData;

typedef HnswScanOpaqueData *HnswScanOpaque;

IndexScanDesc
hnswbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	HnswScanOpaque so = palloc0(sizeof(HnswScanOpaqueData));

	/* The executor reads the distances of the rows from here. */
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	memset(scan->xs_orderbynulls, true, sizeof(bool) * Max(norderbys, 1));
	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void
hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	MemoryContextReset(so->cxt);
	so->started = false;
	so->done = false;
	so->nbatch = 0;
	so->next = 0;
}

/* Runs the first search: greedy descent, then ef_search on layer 0. */
static void
HnswScanStart(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	HnswMetaPageData meta;
	int			ef = hnsw_ef_search;

	HnswReadMeta(index, &meta);
	HnswInitState(&so->state, index, &meta);

	so->query = NULL;
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Datum		value = scan->orderByData[0].sk_argument;
		int			dims;
		const float4 *x = HnswDatumGetFloats(value, &dims);

		if (meta.dims > 0 && dims != meta.dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different embedding dimensions %d and %d", meta.dims, dims)));
		so->query = palloc(sizeof(float4) * dims);
		memcpy(so->query, x, sizeof(float4) * dims);
		if (so->state.normalize)
		{
			bool		zero;

			/* A zero query has no direction: every distance is then equal. */
			HnswNormalize(so->query, dims, &zero);
			if (zero)
				so->query = NULL;
		}
	}

	HnswSearchInit(&so->search, &so->state, so->query, ef, false);
	so->batch = palloc(sizeof(int) * (ef + 1));
	if (!ItemPointerIsValid(&meta.entry))
	{
		so->done = true;
		return;
	}
	HnswSearchBeginLayer(&so->search, meta.entryLevel);
	if (!HnswSearchAddEntry(&so->search, &meta.entry, meta.entryLevel))
	{
		so->done = true;
		return;
	}
	for (int lc = meta.entryLevel; lc > 0; lc--)
	{
		int			best;
		ItemPointerData next;

		HnswSearchLayer(&so->search, lc, 1, 0);
		if (HnswSearchResults(&so->search, &best) == 0)
		{
			so->done = true;
			return;
		}
		next = so->search.pool[best].tid;
		HnswSearchBeginLayer(&so->search, lc - 1);
		HnswSearchAddEntry(&so->search, &next, lc - 1);
	}
	so->search.nvisited = 0;
	HnswSearchLayer(&so->search, 0, ef, hnsw_max_scan_tuples);
	so->nbatch = HnswSearchResults(&so->search, so->batch);
	so->next = 0;
}

/* Fetches the next batch; false when the scan is exhausted or over its bound. */
static bool
HnswScanNextBatch(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	int			ef = so->search.ef;

	if (so->search.nvisited >= hnsw_max_scan_tuples)
		return false;
	if (!HnswSearchContinue(&so->search))
		return false;
	HnswSearchLayer(&so->search, 0, ef, hnsw_max_scan_tuples);
	so->nbatch = HnswSearchResults(&so->search, so->batch);
	so->next = 0;
	return so->nbatch > 0;
}

bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old;
	HnswCandidate *c;

	if (so->done)
		return false;
	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crossmodal_hnsw indexes can only be scanned in ORDER BY distance order"),
				 errhint("Use ORDER BY column <=> value (or <->, <#>) with a LIMIT.")));

	old = MemoryContextSwitchTo(so->cxt);
	if (!so->started || so->next >= so->nbatch)
	{
		bool		more;

		/* Keep vacuum from freeing elements while we follow edges. */
		LockPage(scan->indexRelation, HNSW_SCAN_LOCK, ShareLock);
		if (!so->started)
		{
			so->started = true;
			pgstat_count_index_scan(scan->indexRelation);
			HnswScanStart(scan);
			more = !so->done && so->nbatch > 0;
		}
		else
			more = HnswScanNextBatch(scan);
		UnlockPage(scan->indexRelation, HNSW_SCAN_LOCK, ShareLock);
		if (!more)
		{
			so->done = true;
			MemoryContextSwitchTo(old);
			return false;
		}
	}
	MemoryContextSwitchTo(old);

	c = &so->search.pool[so->batch[so->next++]];
	scan->xs_heaptid = c->heaptid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	if (scan->numberOfOrderBys > 0)
	{
		scan->xs_orderbyvals[0] = Float8GetDatum((double) c->dist);
		scan->xs_orderbynulls[0] = false;
	}
	return true;
}

void
hnswendscan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	MemoryContextDelete(so->cxt);
	pfree(so);
	scan->opaque = NULL;
}
