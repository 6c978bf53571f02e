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
 * In a compact storage form (hnswstorage.c) the search's distances are
 * estimates.  A batch is then re-ranked with the exact distance to each
 * row's vector in the table, lazily: rows are taken in the order of a lower
 * bound of their exact distance that each code gives, and a row is returned
 * once no row still to be fetched can come before it.  So rows come in exact
 * distance order within a batch, and only a few more rows than are returned
 * are fetched from the table (every row of the batch, for rabitq, whose codes
 * give no useful bound).  A row no longer visible to the scan's snapshot is
 * dropped, as the executor would drop it.
 *
 * HNSW's neighbour selection can leave an element with no incoming link (a
 * full list that drops a member for a newcomer may drop the only link to
 * it; hnswlib and pgvector share this), and no search finds such an
 * element.  So when the search has visited every element it can reach and
 * the scan is still within its bound, the scan sweeps the index pages in
 * order and returns the live elements the search never visited, nearest
 * first within each page: a scan that runs to the end returns every
 * indexed row.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* A row of the current batch or swept page. */
typedef struct HnswScanRow
{
	float		bound;			/* lower bound of its exact distance */
	float		dist;			/* exact, once known */
	ItemPointerData heaptid;
} HnswScanRow;

typedef struct HnswScanOpaqueData
{
	MemoryContext cxt;			/* everything of one scan, reset on rescan */
	bool		started;
	bool		done;
	HnswIndexState state;
	HnswQuery	query;			/* in the codes' space */
	float4	   *prepared;		/* the query vector (unit-normalised for cosine) */
	float4	   *raw;			/* as given */
	bool		rerank;			/* a compact form: exact distances from the table */
	HnswSearch	search;
	int		   *batch;			/* pool indexes of a batch */

	/* The rows to return next, in `rows`: sorted by bound. */
	HnswScanRow *rows;
	int			nrows;
	int			rowsCapacity;
	int			nextRow;		/* the next row to look at */
	int		   *ready;			/* rows with exact distances: a min-heap */
	int			nready;

	/* Iterative scans: the mode and memory bound of this scan, the last distance. */
	int			iterative;		/* HnswIterativeScan */
	Size		maxMemory;
	float		lastDist;

	/* The sweep after the graph (see the header comment). */
	bool		sweeping;
	HnswPageWalk sweepWalk;		/* to the index's size when the sweep began */

	/* Reading the table for re-ranking: kept across rescans. */
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	IndexInfo  *indexInfo;
	EState	   *estate;			/* for an expression index */
	MemoryContext rowCxt;		/* per fetched row */
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
	so->rows = NULL;
	so->nrows = 0;
	so->rowsCapacity = 0;
	so->nextRow = 0;
	so->ready = NULL;
	so->nready = 0;
	so->sweeping = false;
}

/* ---------- the rows to return ---------- */

static int
HnswCompareRowBounds(const void *a, const void *b)
{
	float		da = ((const HnswScanRow *) a)->bound;
	float		db = ((const HnswScanRow *) b)->bound;

	return (da > db) - (da < db);
}

/* Empties the row set, with room for n rows. */
static void
HnswScanResetRows(HnswScanOpaque so, int n)
{
	if (n > so->rowsCapacity)
	{
		so->rowsCapacity = Max(n, 64);
		so->rows = MemoryContextAlloc(so->cxt, sizeof(HnswScanRow) * so->rowsCapacity);
		so->ready = MemoryContextAlloc(so->cxt, sizeof(int) * so->rowsCapacity);
	}
	so->nrows = 0;
	so->nextRow = 0;
	so->nready = 0;
}

static void
HnswScanAddRow(HnswScanOpaque so, ItemPointer heaptid, float dist, float bound)
{
	HnswScanRow *row = &so->rows[so->nrows++];

	row->heaptid = *heaptid;
	row->dist = dist;
	row->bound = so->rerank ? bound : dist;
}

/* Once the set is complete: rows in the order they may come out. */
static void
HnswScanSortRows(HnswScanOpaque so)
{
	if (so->nrows > 1)
		qsort(so->rows, so->nrows, sizeof(HnswScanRow), HnswCompareRowBounds);
}

/* Prepares reading the table (once per scan, in the scan's own context). */
static void
HnswScanBeginTable(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(MemoryContextGetParent(so->cxt));

	if (scan->heapRelation == NULL)
		elog(ERROR, "crossmodal_hnsw scan of index \"%s\" has no table to re-rank from",
			 RelationGetRelationName(scan->indexRelation));
	so->fetch = table_index_fetch_begin(scan->heapRelation);
	so->slot = table_slot_create(scan->heapRelation, NULL);
	so->indexInfo = BuildIndexInfo(scan->indexRelation);
	if (so->indexInfo->ii_Expressions != NIL)
	{
		so->estate = CreateExecutorState();
		GetPerTupleExprContext(so->estate)->ecxt_scantuple = so->slot;
	}
	so->rowCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw re-rank",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
}

/*
 * The exact distance of a row, from its vector in the table (the indexed
 * column, or the index's expression computed on the row).  False when no
 * version of the row is visible to the scan.
 */
static bool
HnswScanExact(IndexScanDesc scan, HnswScanRow *row)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	bool		callAgain = false;
	bool		allDead = false;
	bool		found;
	MemoryContext old;

	/*
	 * The fetch moves the TID it is given to the version it finds, a
	 * heap-only tuple after a HOT update; the row keeps the index's TID (the
	 * chain's root), the only one the executor can fetch it by.
	 */
	ItemPointerData tid = row->heaptid;

	if (so->fetch == NULL)
		HnswScanBeginTable(scan);
	old = MemoryContextSwitchTo(so->rowCxt);
	found = table_index_fetch_tuple(so->fetch, &tid, scan->xs_snapshot, so->slot,
									&callAgain, &allDead);
	if (found)
	{
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		if (so->estate != NULL)
			ResetPerTupleExprContext(so->estate);
		FormIndexDatum(so->indexInfo, so->slot, so->estate, values, isnull);
		if (isnull[0])
			found = false;
		else
		{
			int			dims;
			const float4 *x = HnswDatumGetFloats(values[0], &dims);

			if (dims != so->state.dims)
				elog(ERROR, "crossmodal_hnsw index \"%s\" holds %d dimensions, its table row %d",
					 RelationGetRelationName(scan->indexRelation), so->state.dims, dims);
			row->dist = so->prepared == NULL ? 0.0f :
				HnswExactDistance(&so->state, so->prepared, so->raw, x);
		}
	}
	ExecClearTuple(so->slot);
	MemoryContextSwitchTo(old);
	MemoryContextReset(so->rowCxt);
	return found;
}

static void
HnswScanReadyPush(HnswScanOpaque so, int r)
{
	int			i = so->nready++;

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (so->rows[so->ready[parent]].dist <= so->rows[r].dist)
			break;
		so->ready[i] = so->ready[parent];
		i = parent;
	}
	so->ready[i] = r;
}

static int
HnswScanReadyPop(HnswScanOpaque so)
{
	int			top = so->ready[0];
	int			last = so->ready[--so->nready];
	int			i = 0;

	while (true)
	{
		int			child = 2 * i + 1;

		if (child >= so->nready)
			break;
		if (child + 1 < so->nready &&
			so->rows[so->ready[child + 1]].dist < so->rows[so->ready[child]].dist)
			child++;
		if (so->rows[so->ready[child]].dist >= so->rows[last].dist)
			break;
		so->ready[i] = so->ready[child];
		i = child;
	}
	if (so->nready > 0)
		so->ready[i] = last;
	return top;
}

/*
 * The next row of the set in exact distance order, or NULL when the set is
 * used up.  A row whose bound is below the best exact distance known so far
 * may still come first: fetch it before deciding.
 */
static HnswScanRow *
HnswScanNextRow(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (!so->rerank)
		return so->nextRow < so->nrows ? &so->rows[so->nextRow++] : NULL;
	while (so->nextRow < so->nrows &&
		   (so->nready == 0 || so->rows[so->nextRow].bound <= so->rows[so->ready[0]].dist))
	{
		int			r = so->nextRow++;

		CHECK_FOR_INTERRUPTS();
		if (HnswScanExact(scan, &so->rows[r]))
			HnswScanReadyPush(so, r);
	}
	return so->nready > 0 ? &so->rows[HnswScanReadyPop(so)] : NULL;
}

/* ---------- the graph ---------- */

/* Makes the search's current batch the row set. */
static void
HnswScanTakeBatch(HnswScanOpaque so)
{
	int			n = HnswSearchResults(&so->search, so->batch);

	HnswScanResetRows(so, n);
	for (int i = 0; i < n; i++)
	{
		HnswCandidate *c = &so->search.pool[so->batch[i]];

		HnswScanAddRow(so, &c->heaptid, c->dist, c->bound);
	}
	HnswScanSortRows(so);
}

/* Runs the first search: greedy descent, then ef_search on layer 0. */
static bool
HnswScanStart(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	HnswMetaPageData meta;
	int			ef = hnsw_ef_search;

	HnswReadMeta(index, &meta);
	HnswInitState(&so->state, index, &meta);
	so->rerank = so->state.storage != HNSW_STORAGE_FLOAT4;
	so->iterative = hnsw_iterative_scan;
	so->maxMemory = (Size) Min((double) work_mem * 1024.0 * hnsw_scan_mem_multiplier,
							   (double) (SIZE_MAX / 2));
	so->lastDist = -get_float4_infinity();

	so->prepared = NULL;
	so->raw = NULL;
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Datum		value = scan->orderByData[0].sk_argument;
		int			dims;
		const float4 *x = HnswDatumGetFloats(value, &dims);

		if (meta.dims > 0 && dims != meta.dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different embedding dimensions %d and %d", meta.dims, dims)));
		so->raw = palloc(sizeof(float4) * dims);
		memcpy(so->raw, x, sizeof(float4) * dims);
		so->prepared = palloc(sizeof(float4) * dims);
		memcpy(so->prepared, x, sizeof(float4) * dims);
		if (so->state.normalize)
		{
			bool		zero;

			/* A zero query has no direction: every distance is then equal. */
			HnswNormalize(so->prepared, dims, &zero);
			if (zero)
				so->prepared = NULL;
		}
	}
	HnswMakeQuery(&so->state, so->prepared, &so->query);

	HnswSearchInit(&so->search, &so->state, NULL, &so->query, ef, false);
	so->search.resumable = true;
	so->search.bounds = so->rerank;
	so->batch = palloc(sizeof(int) * (ef + 1));
	if (!ItemPointerIsValid(&meta.entry))
		return false;
	HnswSearchBeginLayer(&so->search, meta.entryLevel);
	if (!HnswSearchAddEntry(&so->search, HnswTidKey(&meta.entry)) ||
		!HnswSearchDescend(&so->search, 0))
		return false;
	so->search.nvisited = 0;
	HnswSearchLayer(&so->search, ef, hnsw_max_scan_tuples);
	HnswScanTakeBatch(so);
	return true;
}

/*
 * Reads the next index pages of the sweep until one holds live elements the
 * search never visited; they become the row set.  False when the pages or
 * the scan's bound run out.
 */
static bool
HnswScanSweep(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	HnswIndexState *state = &so->state;
	float		queryNorm = sqrtf(so->query.norm2);

	if (!hnsw_scan_sweep)
		return false;
	if (!so->sweeping)
	{
		so->sweeping = true;
		HnswPageWalkBegin(&so->sweepWalk, scan->indexRelation, NULL, BUFFER_LOCK_SHARE,
						  HNSW_METAPAGE_BLKNO + 1, RelationGetNumberOfBlocks(scan->indexRelation));
	}
	HnswScanResetRows(so, MaxOffsetNumber);
	while (so->nrows == 0 && so->search.nvisited < hnsw_max_scan_tuples)
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
			float		dist;

			if (!ItemIdIsNormal(itemid))
				continue;
			etup = (HnswElementTuple) PageGetItem(page, itemid);
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
			if ((etup->flags & HNSW_ELEMENT_DELETED) ||
				HnswSearchVisited(&so->search, HnswTidKey(&tid)))
				continue;
			so->search.nvisited++;
			dist = HnswDistance(state, &so->query, HnswElementCode(etup));
			HnswScanAddRow(so, &etup->heaptid, dist,
						   HnswLowerBound(state, HnswElementCode(etup), dist, queryNorm));
		}
	}
	/* No page stays locked while the executor has the rows. */
	HnswPageWalkRelease(&so->sweepWalk);
	HnswScanSortRows(so);
	return so->nrows > 0;
}

/*
 * Fetches the next batch; false when the scan is exhausted, not iterative,
 * or over one of its bounds.
 */
static bool
HnswScanNextBatch(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (so->iterative == HNSW_ITERATIVE_SCAN_OFF ||
		so->search.nvisited >= hnsw_max_scan_tuples ||
		MemoryContextMemAllocated(so->cxt, true) > so->maxMemory)
		return false;
	if (so->sweeping || !HnswSearchContinue(&so->search))
		return HnswScanSweep(scan);
	HnswSearchLayer(&so->search, so->search.ef, hnsw_max_scan_tuples);
	HnswScanTakeBatch(so);
	return so->nrows > 0;
}

bool
hnswgettuple(IndexScanDesc scan, ScanDirection dir)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;
	MemoryContext old;
	HnswScanRow *row;

	if (so->done)
		return false;
	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crossmodal_hnsw indexes can only be scanned in ORDER BY distance order"),
				 errhint("Use ORDER BY column <=> value (or <->, <#>, <+>) with a LIMIT.")));

	old = MemoryContextSwitchTo(so->cxt);
	for (;;)
	{
		bool		more;

		row = so->started ? HnswScanNextRow(scan) : NULL;
		if (row != NULL)
		{
			/* strict_order: a row nearer than one returned (a later batch's) is left out */
			if (so->iterative == HNSW_ITERATIVE_SCAN_STRICT && row->dist < so->lastDist)
				continue;
			break;
		}

		/* Keep vacuum from freeing elements while we follow edges. */
		LockPage(scan->indexRelation, HNSW_SCAN_LOCK, ShareLock);
		if (!so->started)
		{
			so->started = true;
			pgstat_count_index_scan(scan->indexRelation);
			more = HnswScanStart(scan);
			if (!more && so->iterative != HNSW_ITERATIVE_SCAN_OFF)
			{
				/*
				 * No way into the graph (no entry point, or it is gone): the
				 * sweep still returns what the pages hold.  Nothing was
				 * returned yet, so every element counts as unvisited.
				 */
				HnswSearchBeginLayer(&so->search, 0);
				so->search.nvisited = 0;
				more = HnswScanSweep(scan);
			}
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
	so->lastDist = row->dist;

	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	scan->xs_orderbynulls[0] = false;
	scan->xs_heaptid = row->heaptid;
	scan->xs_orderbyvals[0] = Float8GetDatum((double) row->dist);
	return true;
}

void
hnswendscan(IndexScanDesc scan)
{
	HnswScanOpaque so = (HnswScanOpaque) scan->opaque;

	if (so->fetch != NULL)
	{
		table_index_fetch_end(so->fetch);
		ExecDropSingleTupleTableSlot(so->slot);
		if (so->estate != NULL)
			FreeExecutorState(so->estate);
		MemoryContextDelete(so->rowCxt);
	}
	MemoryContextDelete(so->cxt);
	pfree(so);
	scan->opaque = NULL;
}
