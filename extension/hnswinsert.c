/*
 * hnswinsert.c
 *	  Inserting one element into a crossmodal_hnsw graph on disk, safe under concurrency.
 *
 * Locking: the backend holds the index's HNSW_SCAN_LOCK in share mode for
 * the whole insert, so vacuum cannot free an element this insert may still
 * link to.  Buffer locks are taken one at a time, except that the metapage
 * may be held while the first element's page is written (metapage first,
 * never the other way round).  Each neighbour list is rewritten under its
 * page's exclusive lock from what is on the page at that moment, so
 * concurrent inserts never lose each other's links.
 */
#include "postgres.h"

#include "access/genam.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/*
 * Writes an element tuple on a page with room for it and returns where.
 * Tries this backend's last page, then the free space map (space that vacuum
 * freed), then extends the relation.
 */
static void
HnswPlaceTuple(Relation index, HnswElementTuple etup, Size size, ItemPointer tid)
{
	Size		need = MAXALIGN(size);
	BlockNumber blkno = RelationGetTargetBlock(index);

	if (blkno == HNSW_METAPAGE_BLKNO)
		blkno = InvalidBlockNumber;
	if (blkno == InvalidBlockNumber)
		blkno = GetPageWithFreeSpace(index, need);

	for (;;)
	{
		Buffer		buf;
		Page		page;
		GenericXLogState *xlog;
		OffsetNumber offno;
		bool		fresh = false;

		if (blkno == InvalidBlockNumber || blkno == HNSW_METAPAGE_BLKNO)
		{
			LockRelationForExtension(index, ExclusiveLock);
			buf = ReadBuffer(index, P_NEW);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			UnlockRelationForExtension(index, ExclusiveLock);
			fresh = true;
		}
		else
		{
			buf = ReadBuffer(index, blkno);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		}
		blkno = BufferGetBlockNumber(buf);
		xlog = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(xlog, buf, fresh ? GENERIC_XLOG_FULL_IMAGE : 0);
		if (fresh || PageIsNew(page))
			HnswInitPage(page, HNSW_PAGE_ELEMENTS);
		if (!(HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS) ||
			PageGetFreeSpace(page) < need)
		{
			Size		avail = (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS) ?
				PageGetFreeSpace(page) : 0;

			GenericXLogAbort(xlog);
			UnlockReleaseBuffer(buf);
			if (fresh)
				elog(ERROR, "element tuple of %zu bytes does not fit an empty page", size);
			blkno = RecordAndGetPageWithFreeSpace(index, blkno, avail, need);
			continue;
		}
		offno = PageAddItem(page, (Item) etup, size, InvalidOffsetNumber, false, false);
		if (offno == InvalidOffsetNumber)
			elog(ERROR, "failed to add element tuple to index \"%s\"",
				 RelationGetRelationName(index));
		GenericXLogFinish(xlog);
		RelationSetTargetBlock(index, blkno);
		UnlockReleaseBuffer(buf);
		ItemPointerSet(tid, blkno, offno);
		return;
	}
}

/*
 * Adds newtid (at distance dist) to the layer-lc list of the element at
 * `tid`, provided that slot still holds the element we searched (same heap
 * TID).  A full list keeps its nearest entries: the farthest is replaced when
 * the new element is closer.
 */
static void
HnswAddConnection(HnswIndexState *state, ItemPointer tid, ItemPointer heaptid, int lc,
				  ItemPointer newtid, float dist)
{
	Buffer		buf = ReadBuffer(state->index, ItemPointerGetBlockNumber(tid));
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	GenericXLogState *xlog;
	Page		page;
	ItemId		itemid;
	HnswElementTuple etup;
	ItemPointerData *tids;
	float4	   *dists;
	int			first = HnswLevelFirstSlot(state->m, lc);
	int			nslots = HnswLevelSlots(state->m, lc);
	int			target = -1;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(state->index);
	page = GenericXLogRegisterBuffer(xlog, buf, 0);
	if (offno > PageGetMaxOffsetNumber(page))
		goto skip;
	itemid = PageGetItemId(page, offno);
	if (!ItemIdIsNormal(itemid))
		goto skip;
	etup = (HnswElementTuple) PageGetItem(page, itemid);
	if (etup->level < lc || !ItemPointerEquals(&etup->heaptid, heaptid))
		goto skip;
	tids = HnswElementTids(etup, state->dims, state->m) + first;
	dists = HnswElementDists(etup, state->dims) + first;
	for (int i = 0; i < nslots; i++)
	{
		if (!ItemPointerIsValid(&tids[i]))
		{
			target = i;
			break;
		}
		if (ItemPointerEquals(&tids[i], newtid))
			goto skip;
		if (dists[i] > dist && (target < 0 || dists[i] > dists[target]))
			target = i;
	}
	if (target < 0)
		goto skip;
	tids[target] = *newtid;
	dists[target] = dist;
	GenericXLogFinish(xlog);
	UnlockReleaseBuffer(buf);
	return;

skip:
	GenericXLogAbort(xlog);
	UnlockReleaseBuffer(buf);
}

/* Builds an element tuple with the given neighbours per layer. */
static HnswElementTuple
HnswFormElement(HnswIndexState *state, const float4 *vector, ItemPointer heaptid, int level,
				HnswCandidate **neighbors, int *nneighbors, Size *size)
{
	HnswElementTuple etup;
	ItemPointerData *tids;
	float4	   *dists;

	*size = HnswElementTupleSize(state->dims, state->m, level);
	etup = palloc0(*size);
	etup->level = level;
	etup->heaptid = *heaptid;
	memcpy(HnswElementVector(etup), vector, sizeof(float4) * state->dims);
	tids = HnswElementTids(etup, state->dims, state->m);
	dists = HnswElementDists(etup, state->dims);
	for (int i = 0; i < HnswElementSlots(state->m, level); i++)
		ItemPointerSetInvalid(&tids[i]);
	for (int lc = 0; lc <= level && neighbors != NULL; lc++)
	{
		int			first = HnswLevelFirstSlot(state->m, lc);

		for (int i = 0; i < nneighbors[lc]; i++)
		{
			tids[first + i] = neighbors[lc][i].tid;
			dists[first + i] = neighbors[lc][i].dist;
		}
	}
	return etup;
}

/*
 * Makes the new element the graph's entry point if the graph is empty or
 * the element reaches a higher layer.  Returns false if another backend made
 * the graph non-empty first (the caller then searches and links as usual).
 */
static bool
HnswUpdateEntry(HnswIndexState *state, ItemPointer tid, int level, bool onlyIfEmpty)
{
	Buffer		buf = ReadBuffer(state->index, HNSW_METAPAGE_BLKNO);
	GenericXLogState *xlog;
	HnswMetaPage meta;
	bool		done = false;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(state->index);
	meta = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, buf, 0));
	if (onlyIfEmpty ? !ItemPointerIsValid(&meta->entry) : meta->entryLevel < level)
	{
		meta->entry = *tid;
		meta->entryLevel = level;
		done = true;
		GenericXLogFinish(xlog);
	}
	else
		GenericXLogAbort(xlog);
	UnlockReleaseBuffer(buf);
	return done;
}

/* Fixes the index's dimensions from its first vector, if not fixed yet. */
static void
HnswFixDims(HnswIndexState *state, int dims)
{
	Buffer		buf = ReadBuffer(state->index, HNSW_METAPAGE_BLKNO);
	GenericXLogState *xlog;
	HnswMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(state->index);
	meta = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, buf, 0));
	if (meta->dims == 0)
	{
		meta->dims = dims;
		GenericXLogFinish(xlog);
	}
	else
		GenericXLogAbort(xlog);
	state->dims = meta->dims;
	UnlockReleaseBuffer(buf);
}

/*
 * Inserts a prepared vector: the insertion algorithm of the HNSW paper
 * (Algorithm 1) against the graph on disk.  Caller holds HNSW_SCAN_LOCK in
 * share mode (or is the only backend, during a build).
 */
void
HnswInsertVector(HnswIndexState *state, const float4 *vector, ItemPointer heaptid,
				 pg_prng_state *prng)
{
	HnswMetaPageData meta;
	int			level;
	int			entryLevel;
	HnswSearch	search;
	HnswCandidate *neighbors[HNSW_MAX_LEVEL + 1];
	int			nneighbors[HNSW_MAX_LEVEL + 1];
	HnswElementTuple etup;
	Size		size;
	ItemPointerData tid;

	level = HnswRandomLevel(state->m, HnswMaxLevel(state->dims, state->m), prng);

	HnswReadMeta(state->index, &meta);
	if (!ItemPointerIsValid(&meta.entry))
	{
		/* First element: it becomes the entry point, unless someone beat us. */
		Buffer		buf = ReadBuffer(state->index, HNSW_METAPAGE_BLKNO);
		HnswMetaPage m;
		bool		empty;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		m = HnswPageGetMeta(BufferGetPage(buf));
		empty = !ItemPointerIsValid(&m->entry);
		if (empty)
		{
			etup = HnswFormElement(state, vector, heaptid, level, NULL, NULL, &size);
			HnswPlaceTuple(state->index, etup, size, &tid);
			{
				GenericXLogState *xlog = GenericXLogStart(state->index);

				m = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, buf, 0));
				m->entry = tid;
				m->entryLevel = level;
				GenericXLogFinish(xlog);
			}
		}
		else
			memcpy(&meta, m, sizeof(HnswMetaPageData));
		UnlockReleaseBuffer(buf);
		if (empty)
			return;
	}

	entryLevel = meta.entryLevel;
	HnswSearchInit(&search, state, vector, state->efConstruction, true);
	HnswSearchBeginLayer(&search, entryLevel);
	if (!HnswSearchAddEntry(&search, &meta.entry, entryLevel))
	{
		/* The entry point moved under us (vacuum); use the current one. */
		HnswReadMeta(state->index, &meta);
		entryLevel = meta.entryLevel;
		HnswSearchBeginLayer(&search, entryLevel);
		if (!ItemPointerIsValid(&meta.entry) ||
			!HnswSearchAddEntry(&search, &meta.entry, entryLevel))
			elog(ERROR, "crossmodal_hnsw index \"%s\" has no usable entry point",
				 RelationGetRelationName(state->index));
	}

	/* Greedy descent through the layers above the new element's. */
	for (int lc = entryLevel; lc > level; lc--)
	{
		int			best;
		ItemPointerData next;

		HnswSearchLayer(&search, lc, 1, 0);
		HnswSearchResults(&search, &best);
		next = search.pool[best].tid;
		HnswSearchBeginLayer(&search, lc - 1);
		HnswSearchAddEntry(&search, &next, lc - 1);
	}

	/* On each of the element's layers: find efConstruction candidates, pick links. */
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
	{
		int			maxn = HnswLevelSlots(state->m, lc);
		int		   *order = palloc(sizeof(int) * (search.results.count + 1));
		int			nfound;
		HnswCandidate *found;
		int		   *selected = palloc(sizeof(int) * maxn);
		int			nselected;

		HnswSearchLayer(&search, lc, state->efConstruction, 0);
		nfound = HnswSearchResults(&search, order);
		found = palloc(sizeof(HnswCandidate) * Max(nfound, 1));
		for (int i = 0; i < nfound; i++)
			found[i] = search.pool[order[i]];
		nselected = HnswSelectNeighbors(state, found, nfound, maxn, selected);
		neighbors[lc] = palloc(sizeof(HnswCandidate) * Max(nselected, 1));
		nneighbors[lc] = nselected;
		for (int i = 0; i < nselected; i++)
			neighbors[lc][i] = found[selected[i]];

		if (lc > 0)
		{
			HnswSearchBeginLayer(&search, lc - 1);
			for (int i = 0; i < nfound; i++)
				HnswSearchAddEntry(&search, &found[i].tid, lc - 1);
		}
	}
	for (int lc = entryLevel + 1; lc <= level; lc++)
		nneighbors[lc] = 0;

	etup = HnswFormElement(state, vector, heaptid, level, neighbors, nneighbors, &size);
	HnswPlaceTuple(state->index, etup, size, &tid);

	/* Link back from every chosen neighbour. */
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
		for (int i = 0; i < nneighbors[lc]; i++)
			HnswAddConnection(state, &neighbors[lc][i].tid, &neighbors[lc][i].heaptid, lc,
							  &tid, neighbors[lc][i].dist);

	if (level > entryLevel)
		HnswUpdateEntry(state, &tid, level, false);
}

/* aminsert: index one heap tuple. */
bool
hnswinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
		   IndexInfo *indexInfo)
{
	MemoryContext cxt;
	MemoryContext old;
	HnswMetaPageData meta;
	HnswIndexState state;
	float4	   *vector;
	bool		indexable;

	if (isnull[0])
		return false;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw insert",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	LockPage(index, HNSW_SCAN_LOCK, ShareLock);
	HnswReadMeta(index, &meta);
	HnswInitState(&state, index, &meta);
	vector = HnswPrepareVector(&state, values[0], &indexable);
	if (indexable)
	{
		if (state.dims == 0)
		{
			int			dims;

			(void) HnswDatumGetFloats(values[0], &dims);
			HnswCheckDims(&state, dims);
			HnswFixDims(&state, dims);
			if (state.dims != dims)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("expected %d dimensions, not %d", state.dims, dims)));
		}
		HnswInsertVector(&state, vector, heap_tid, &pg_global_prng_state);
	}
	UnlockPage(index, HNSW_SCAN_LOCK, ShareLock);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
}
