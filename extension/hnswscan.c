/*
 * hnswscan.c
 *	  ORDER BY distance scans of crossmodal_hnsw, iterative past the first ef_search rows.
 *
 * The first batch is the HNSW search with ef = crossmodal.hnsw_ef_search.
 * When the executor asks for more rows than that batch held (a WHERE clause
 * rejected some, or the LIMIT is larger), an iterative scan
 * (crossmodal.hnsw_iterative_scan, pgvector's modes) resumes the search from
 * the elements it visited but did not return and the candidates it did not
 * expand, one batch of ef at a time, until crossmodal.hnsw_max_scan_tuples
 * elements have been read or its memory reaches work_mem times
 * crossmodal.hnsw_scan_mem_multiplier.  Within a batch rows come nearest
 * first; across batches the order is approximate, like the search itself
 * (relaxed_order), unless strict_order leaves out every row nearer than one
 * already returned.  With off, a scan ends after its first batch.
 *
 * HNSW's neighbour selection can leave an element with no incoming link (a
 * full list re-selected with the heuristic may drop the only link to it;
 * hnswlib and pgvector share this), and no search finds such an element.  So
 * when the search has visited every element it can reach and the scan is
 * still within its bound, the scan sweeps the index pages in order and
 * returns the live elements the search never visited, nearest first within
 * each page: a scan that runs to the end returns every indexed row.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* A row found by the sweep. */
typedef struct HnswSweptRow
{
	float		dist;
	ItemPointerData heaptid;
} HnswSweptRow;

typedef struct HnswScanOpaqueData
{
	MemoryContext cxt;			/* everything of one scan, reset on rescan */
	bool		started;
	bool		done;
	HnswIndexState state;
	HnswQuery	query;
	HnswSearch	search;
	int		   *batch;			/* pool indexes of the current batch */
	int			nbatch;
	int			next;			/* next batch entry to return */

	/* Iterative scans: the mode and memory bound of this scan, the last distance. */
	int			iterative;		/* HnswIterativeScan */
	Size		maxMemory;
	float		lastDist;

	/* The sweep after the graph (see the header comment). */
	bool		sweeping;
	HnswPageWalk sweepWalk;		/* to the index's size when the sweep began */
	HnswSweptRow *swept;		/* unvisited rows of the last page read */
	int			nswept;
	int			sweptCapacity;
	int			sweepNext;
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
	so->sweeping = false;
	so->swept = NULL;
	so->nswept = 0;
	so->sweptCapacity = 0;
	so->sweepNext = 0;
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
	so->iterative = hnsw_iterative_scan;
	so->maxMemory = (Size) Min((double) work_mem * 1024.0 * hnsw_scan_mem_multiplier,
							   (double) (SIZE_MAX / 2));
	so->lastDist = -get_float4_infinity();

	so->query.x = NULL;
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Datum		value = scan->orderByData[0].sk_argument;
		int			dims;
		const float4 *x = HnswDatumGetFloats(value, &dims);
		float4	   *q;

		if (meta.dims > 0 && dims != meta.dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different embedding dimensions %d and %d", meta.dims, dims)));
		q = palloc(sizeof(float4) * dims);
		memcpy(q, x, sizeof(float4) * dims);
		so->query.x = q;
		if (so->state.normalize)
		{
			bool		zero;

			/* A zero query has no direction: every distance is then equal. */
			HnswNormalize(q, dims, &zero);
			if (zero)
				so->query.x = NULL;
		}
	}

	HnswSearchInit(&so->search, &so->state, NULL, &so->query, ef, false);
	so->search.resumable = true;
	so->batch = palloc(sizeof(int) * (ef + 1));
	if (!ItemPointerIsValid(&meta.entry))
	{
		so->done = true;
		return;
	}
	HnswSearchBeginLayer(&so->search, meta.entryLevel);
	if (!HnswSearchAddEntry(&so->search, HnswTidKey(&meta.entry)) ||
		!HnswSearchDescend(&so->search, 0))
	{
		so->done = true;
		return;
	}
	so->search.nvisited = 0;
	HnswSearchLayer(&so->search, ef, hnsw_max_scan_tuples);
	so->nbatch = HnswSearchResults(&so->search, so->batch);
	so->next = 0;
}

static int
HnswCompareSweptRows(const void *a, const void *b)
{
	float		da = ((const HnswSweptRow *) a)->dist;
	float		db = ((const HnswSweptRow *) b)->dist;

	return (da > db) - (da < db);
}

/*
 * Reads the next index pages of the sweep until one holds live elements the
 * search never visited; they become so->swept, nearest first.  False when the
 * pages or the scan's bound run out.
 */
static bool
HnswScanSweep(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	HnswIndexState *state = &so->state;

	if (!hnsw_scan_sweep)
		return false;
	if (!so->sweeping)
	{
		so->sweeping = true;
		HnswPageWalkBegin(&so->sweepWalk, scan->indexRelation, NULL, BUFFER_LOCK_SHARE,
						  HNSW_METAPAGE_BLKNO + 1, RelationGetNumberOfBlocks(scan->indexRelation));
		so->sweptCapacity = MaxOffsetNumber;
		so->swept = palloc(sizeof(HnswSweptRow) * so->sweptCapacity);
	}
	so->nswept = 0;
	so->sweepNext = 0;
	while (so->nswept == 0 && so->search.nvisited < hnsw_max_scan_tuples)
	{
		Buffer		buf = HnswPageWalkNext(&so->sweepWalk);
		Page		page;
		OffsetNumber maxoff;

		if (!BufferIsValid(buf))
			break;
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
		{
			ItemId		itemid = PageGetItemId(page, off);
			HnswElementTuple etup;
			ItemPointerData tid;

			if (!ItemIdIsNormal(itemid))
				continue;
			etup = (HnswElementTuple) PageGetItem(page, itemid);
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
			if ((etup->flags & HNSW_ELEMENT_DELETED) ||
				HnswSearchVisited(&so->search, HnswTidKey(&tid)))
				continue;
			so->search.nvisited++;
			so->swept[so->nswept].dist = HnswDistance(state, &so->query, HnswElementCode(etup));
			so->swept[so->nswept].heaptid = etup->heaptid;
			so->nswept++;
		}
	}
	/* No page stays locked while the executor has the rows. */
	HnswPageWalkRelease(&so->sweepWalk);
	if (so->nswept > 1)
		qsort(so->swept, so->nswept, sizeof(HnswSweptRow), HnswCompareSweptRows);
	return so->nswept > 0;
}

/*
 * Fetches the next batch; false when the scan is exhausted, not iterative,
 * or over one of its bounds.
 */
static bool
HnswScanNextBatch(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	int			ef = so->search.ef;

	if (so->iterative == HNSW_ITERATIVE_SCAN_OFF ||
		so->search.nvisited >= hnsw_max_scan_tuples ||
		MemoryContextMemAllocated(so->cxt, true) > so->maxMemory)
		return false;
	if (so->sweeping || !HnswSearchContinue(&so->search))
		return HnswScanSweep(scan);
	HnswSearchLayer(&so->search, ef, hnsw_max_scan_tuples);
	so->nbatch = HnswSearchResults(&so->search, so->batch);
	so->next = 0;
	return so->nbatch > 0;
}

/*
 * The next row of the scan into *heaptid and *dist: from the current batch,
 * or from the next one.  False when the scan has no more.
 */
static bool
HnswScanNext(IndexScanDesc scan, ItemPointer heaptid, float *dist)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old;
	HnswCandidate *c;

	old = MemoryContextSwitchTo(so->cxt);
	if (!so->started || (so->sweeping ? so->sweepNext >= so->nswept : so->next >= so->nbatch))
	{
		bool		more;

		/* Keep vacuum from freeing elements while we follow edges. */
		LockPage(scan->indexRelation, HNSW_SCAN_LOCK, ShareLock);
		if (!so->started)
		{
			so->started = true;
			pgstat_count_index_scan(scan->indexRelation);
			HnswScanStart(scan);
			if (so->done && so->iterative != HNSW_ITERATIVE_SCAN_OFF)
			{
				/*
				 * No way into the graph (no entry point, or it is gone): the
				 * sweep still returns what the pages hold.  Nothing was
				 * returned yet, so every element counts as unvisited.
				 */
				so->done = false;
				HnswSearchBeginLayer(&so->search, 0);
				so->search.nvisited = 0;
				more = HnswScanSweep(scan);
			}
			else if (so->done)
				more = false;
			else
				more = so->nbatch > 0;
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

	if (so->sweeping)
	{
		HnswSweptRow *row = &so->swept[so->sweepNext++];

		*heaptid = row->heaptid;
		*dist = row->dist;
		return true;
	}
	c = &so->search.pool[so->batch[so->next++]];
	*heaptid = c->heaptid;
	*dist = c->dist;
	return true;
}

bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	ItemPointerData heaptid;
	float		dist;

	if (so->done)
		return false;
	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crossmodal_hnsw indexes can only be scanned in ORDER BY distance order"),
				 errhint("Use ORDER BY column <=> value (or <->, <#>, <+>) with a LIMIT.")));

	do
	{
		if (!HnswScanNext(scan, &heaptid, &dist))
			return false;
		CHECK_FOR_INTERRUPTS();
	} while (so->iterative == HNSW_ITERATIVE_SCAN_STRICT && dist < so->lastDist);
	so->lastDist = dist;

	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	scan->xs_orderbynulls[0] = false;
	scan->xs_heaptid = heaptid;
	scan->xs_orderbyvals[0] = Float8GetDatum((double) dist);
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
