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

/* Vectors already read by this insert's search, by index TID. */
typedef struct HnswVectorCache
{
	uint64	   *slotKeys;
	float4	  **slotVectors;
	uint32		mask;
} HnswVectorCache;

static void
HnswVectorCacheInit(HnswVectorCache *cache, const HnswSearch *search)
{
	uint32		size = 64;

	while (size < (uint32) search->npool * 2)
		size *= 2;
	cache->slotKeys = palloc0(sizeof(uint64) * size);
	cache->slotVectors = palloc0(sizeof(float4 *) * size);
	cache->mask = size - 1;
	for (int i = 0; i < search->npool; i++)
	{
		uint64		key = HnswTidKey((ItemPointer) &search->pool[i].tid) + 1;
		uint32		pos = (uint32) (key * UINT64CONST(0x9E3779B97F4A7C15) >> 32) & cache->mask;

		if (search->pool[i].vector == NULL)
			continue;
		while (cache->slotKeys[pos] != 0 && cache->slotKeys[pos] != key)
			pos = (pos + 1) & cache->mask;
		cache->slotKeys[pos] = key;
		cache->slotVectors[pos] = search->pool[i].vector;
	}
}

static float4 *
HnswVectorCacheGet(const HnswVectorCache *cache, ItemPointer tid)
{
	uint64		key = HnswTidKey(tid) + 1;
	uint32		pos = (uint32) (key * UINT64CONST(0x9E3779B97F4A7C15) >> 32) & cache->mask;

	while (cache->slotKeys[pos] != 0)
	{
		if (cache->slotKeys[pos] == key)
			return cache->slotVectors[pos];
		pos = (pos + 1) & cache->mask;
	}
	return NULL;
}

/* Copies the vector of the element at tid (NULL if the slot holds none). */
static float4 *
HnswLoadVector(HnswIndexState *state, ItemPointer tid)
{
	Buffer		buf;
	Page		page;
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	float4	   *v = NULL;

	if (ItemPointerGetBlockNumber(tid) == HNSW_METAPAGE_BLKNO)
		return NULL;
	buf = ReadBuffer(state->index, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS) &&
		offno <= PageGetMaxOffsetNumber(page) && ItemIdIsNormal(PageGetItemId(page, offno)))
	{
		HnswElementTuple etup = (HnswElementTuple) PageGetItem(page, PageGetItemId(page, offno));

		v = palloc(sizeof(float4) * state->dims);
		memcpy(v, HnswElementVector(etup), sizeof(float4) * state->dims);
	}
	UnlockReleaseBuffer(buf);
	return v;
}

/*
 * Opens the element at tid for a change to its layer-lc list: locks its page
 * (exclusively, or shared for a read) and returns the element, or NULL when
 * the slot no longer holds the element we searched (same heap TID).
 */
static HnswElementTuple
HnswOpenNeighbor(HnswIndexState *state, Buffer buf, Page page, ItemPointer tid,
				 ItemPointer heaptid, int lc)
{
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	ItemId		itemid;
	HnswElementTuple etup;

	if (offno > PageGetMaxOffsetNumber(page))
		return NULL;
	itemid = PageGetItemId(page, offno);
	if (!ItemIdIsNormal(itemid))
		return NULL;
	etup = (HnswElementTuple) PageGetItem(page, itemid);
	if (etup->level < lc || !ItemPointerEquals(&etup->heaptid, heaptid))
		return NULL;
	return etup;
}

/*
 * Adds newtid (at distance dist) to the layer-lc list of the element at
 * `tid`.  A list with a free slot just takes it.  A full list is re-chosen
 * with the selection heuristic over its members and the new element, which
 * needs the members' vectors: they are read with no other lock held, and the
 * result is written only if the list has not changed meanwhile (else we try
 * again, and after a few tries keep the nearest, dropping the farthest).
 * With `force`, a full list drops its farthest link for the new element
 * whatever the heuristic says.  Returns whether the link was made.
 */
static bool
HnswAddConnection(HnswIndexState *state, HnswVectorCache *cache, ItemPointer tid,
				  ItemPointer heaptid, int lc, ItemPointer newtid, const float4 *newvec,
				  float dist, bool force)
{
	int			first = HnswLevelFirstSlot(state->m, lc);
	int			nslots = HnswLevelSlots(state->m, lc);
	ItemPointerData oldtids[2 * HNSW_MAX_M];
	float4		olddists[2 * HNSW_MAX_M];
	ItemPointerData newtids[2 * HNSW_MAX_M];
	float4		newdists[2 * HNSW_MAX_M];
	bool		haveNew = false;

	for (int attempt = 0; attempt < 4; attempt++)
	{
		Buffer		buf = ReadBuffer(state->index, ItemPointerGetBlockNumber(tid));
		GenericXLogState *xlog;
		Page		page;
		HnswElementTuple etup;
		ItemPointerData *tids;
		float4	   *dists;
		int			target = -1;
		bool		full = true;
		float4	   *selfvec;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(state->index);
		page = GenericXLogRegisterBuffer(xlog, buf, 0);
		etup = HnswOpenNeighbor(state, buf, page, tid, heaptid, lc);
		if (etup == NULL)
			goto skip;
		tids = HnswElementTids(etup, state->dims, state->m) + first;
		dists = HnswElementDists(etup, state->dims) + first;
		for (int i = 0; i < nslots; i++)
		{
			if (!ItemPointerIsValid(&tids[i]))
			{
				target = i;
				full = false;
				break;
			}
			if (ItemPointerEquals(&tids[i], newtid))
				goto skip;
		}
		if (!full)
		{
			tids[target] = *newtid;
			dists[target] = dist;
			GenericXLogFinish(xlog);
			UnlockReleaseBuffer(buf);
			return true;
		}
		if (haveNew && memcmp(oldtids, tids, sizeof(ItemPointerData) * nslots) == 0)
		{
			/* Unchanged since we chose: write the chosen list. */
			memcpy(tids, newtids, sizeof(ItemPointerData) * nslots);
			memcpy(dists, newdists, sizeof(float4) * nslots);
			GenericXLogFinish(xlog);
			UnlockReleaseBuffer(buf);
			return true;
		}
		if (attempt == 3 || force)
		{
			/* Contended (keep the nearest), or forced (drop the farthest). */
			for (int i = 0; i < nslots; i++)
				if ((force || dists[i] > dist) && (target < 0 || dists[i] > dists[target]))
					target = i;
			if (target < 0)
				goto skip;
			tids[target] = *newtid;
			dists[target] = dist;
			GenericXLogFinish(xlog);
			UnlockReleaseBuffer(buf);
			return true;
		}

		/* Full: copy the list and the element's vector, then choose unlocked. */
		memcpy(oldtids, tids, sizeof(ItemPointerData) * nslots);
		memcpy(olddists, dists, sizeof(float4) * nslots);
		selfvec = palloc(sizeof(float4) * state->dims);
		memcpy(selfvec, HnswElementVector(etup), sizeof(float4) * state->dims);
		GenericXLogAbort(xlog);
		UnlockReleaseBuffer(buf);

		{
			HnswCandidate cands[2 * HNSW_MAX_M + 1];
			int			selected[2 * HNSW_MAX_M];
			int			ncands = 0;
			int			nselected;
			bool		newKept = false;

			for (int i = 0; i < nslots; i++)
			{
				float4	   *v = HnswVectorCacheGet(cache, &oldtids[i]);

				if (v == NULL)
					v = HnswLoadVector(state, &oldtids[i]);
				if (v == NULL)
					continue;	/* freed by vacuum: drop the link */
				cands[ncands].tid = oldtids[i];
				cands[ncands].dist = olddists[i];
				cands[ncands].vector = v;
				ncands++;
			}
			cands[ncands].tid = *newtid;
			cands[ncands].dist = dist;
			cands[ncands].vector = (float4 *) newvec;
			ncands++;
			/* insertion sort by distance: at most 2m + 1 entries */
			for (int i = 1; i < ncands; i++)
			{
				HnswCandidate c = cands[i];
				int			j = i - 1;

				while (j >= 0 && cands[j].dist > c.dist)
				{
					cands[j + 1] = cands[j];
					j--;
				}
				cands[j + 1] = c;
			}
			nselected = HnswSelectNeighbors(state, cands, ncands, nslots, selected);
			for (int i = 0; i < nslots; i++)
			{
				if (i < nselected)
				{
					newtids[i] = cands[selected[i]].tid;
					newdists[i] = cands[selected[i]].dist;
					newKept |= ItemPointerEquals(&newtids[i], newtid);
				}
				else
				{
					ItemPointerSetInvalid(&newtids[i]);
					newdists[i] = 0;
				}
			}
			pfree(selfvec);
			if (!newKept)
				return false;	/* the list stays as it is */
			haveNew = true;
		}
		continue;

skip:
		GenericXLogAbort(xlog);
		UnlockReleaseBuffer(buf);
		return false;
	}
	return false;
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
	HnswVectorCache cache;

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

	/*
	 * Link only to elements that vacuum is not deleting.  Vacuum moves the
	 * entry point off its dead batch (with no insert in flight) before it
	 * repairs links, so a deleted entry point means this insert started
	 * before that: it may then link to anything, as vacuum waits for it and
	 * repairs its links afterwards (and a deleted-only search could walk
	 * the whole index).  Starting elements are kept even if deleted, so no
	 * layer's search comes back empty; with a live entry point they are live
	 * unless vacuum marks them meanwhile, and then it waits for this insert
	 * and repairs its links too.
	 */
	search.skipDeleted = !search.pool[search.npool - 1].deleted;

	/* Greedy descent through the layers above the new element's. */
	for (int lc = entryLevel; lc > level; lc--)
	{
		int			best;
		ItemPointerData next;

		HnswSearchLayer(&search, lc, 1, 0);
		if (HnswSearchResults(&search, &best) != 1)
			elog(ERROR, "crossmodal_hnsw index \"%s\" lost its path on layer %d",
				 RelationGetRelationName(state->index), lc);
		next = search.pool[best].tid;
		HnswSearchBeginLayer(&search, lc - 1);
		HnswSearchAddEntry(&search, &next, lc - 1);
	}

	/* On each of the element's layers: find efConstruction candidates, pick links. */
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
	{
		int			maxn = HnswLevelSlots(state->m, lc);
		int		   *order;
		int			nfound;
		HnswCandidate *found;
		int		   *selected = palloc(sizeof(int) * maxn);
		int			nselected;

		HnswSearchLayer(&search, lc, state->efConstruction, 0);
		order = palloc(sizeof(int) * (search.results.count + 1));
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
	HnswVectorCacheInit(&cache, &search);
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
	{
		bool		linked = false;

		for (int i = 0; i < nneighbors[lc]; i++)
			linked |= HnswAddConnection(state, &cache, &neighbors[lc][i].tid,
										&neighbors[lc][i].heaptid, lc, &tid, vector,
										neighbors[lc][i].dist, false);

		/*
		 * If no neighbour wanted the new element, it would be unreachable:
		 * make its nearest neighbour link to it anyway.
		 */
		if (!linked && lc == 0 && nneighbors[0] > 0)
			HnswAddConnection(state, &cache, &neighbors[0][0].tid, &neighbors[0][0].heaptid,
							  0, &tid, vector, neighbors[0][0].dist, true);
	}

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

	/*
	 * One context per statement, reset after each row: its large first block
	 * is kept, so a multi-row insert does not map fresh memory for every row.
	 */
	if (indexInfo->ii_AmCache == NULL)
		indexInfo->ii_AmCache = AllocSetContextCreate(indexInfo->ii_Context,
													  "crossmodal_hnsw insert",
													  4 * 1024 * 1024, 4 * 1024 * 1024,
													  ALLOCSET_DEFAULT_MAXSIZE);
	cxt = (MemoryContext) indexInfo->ii_AmCache;
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
	MemoryContextReset(cxt);
	return false;
}
