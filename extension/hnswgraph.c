/*
 * hnswgraph.c
 *	  The HNSW algorithms of crossmodal_hnsw, written once for the build's graph in memory and the graph on disk.
 *
 * Layer search (the paper's Algorithm 2), neighbour selection (Algorithm 4),
 * the update of a neighbour's list when a new element links to it, and the
 * insertion of one element (Algorithm 1) serve the build, inserts, VACUUM
 * and scans alike.  They reach elements through accessors that have two
 * cases each: the graph a build keeps in memory (HnswMemGraph, local or in
 * dynamic shared memory for a parallel build) names elements by number, the
 * graph on disk by index TID.
 *
 * Locking on disk: callers hold the index's HNSW_SCAN_LOCK in share mode (or
 * exclusively, VACUUM; or they are the only backend, a build), so no element
 * a search reaches is freed under it.  Buffer locks are taken one at a time,
 * except that the metapage may be held while the first element's page is
 * written (metapage first, never the other way round).  Each neighbour list
 * is rewritten under its page's exclusive lock from what is on the page at
 * that moment, so concurrent inserts never lose each other's links.  In a
 * parallel build each element's lists are guarded by its LWLock, held one at
 * a time.
 */
#include "postgres.h"

#include <math.h>

#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* ---------- the graph in memory ---------- */

#define HNSW_MEM_BLOCK_MIN			(32 * 1024)
#define HNSW_MEM_BLOCK_MAX			(4 * 1024 * 1024)

/*
 * The element numbered idx.  In a parallel build, this participant's view
 * of it (pointers into the shared arena) is filled the first time it is
 * needed: an element's number is only ever learnt from a list or the entry
 * point, both written under a lock after the element was complete.
 */
HnswMemElement *
HnswMemGet(HnswMemGraph *mem, int32 idx)
{
	HnswMemElement *e = &mem->elements[idx];

	if (mem->shared != NULL && e->code == NULL)
	{
		HnswSharedElement *se = &HnswSharedElements(mem->shared)[idx];
		char	   *arena = HnswSharedArena(mem->shared);

		e->heaptid = se->heaptid;
		e->level = se->level;
		e->blkno = InvalidBlockNumber;
		e->offno = InvalidOffsetNumber;
		e->nbr = (int32 *) (arena + se->nbrOff);
		e->dist = (float4 *) (arena + se->distOff);
		e->count = (uint8 *) (arena + se->countOff);
		e->store = mem->storeState != NULL ? arena + se->storeOff : NULL;
		e->code = arena + se->codeOff;
	}
	return e;
}

static inline void
HnswMemLock(HnswMemGraph *mem, int32 idx, LWLockMode mode)
{
	if (mem->shared != NULL)
		LWLockAcquire(&HnswSharedElements(mem->shared)[idx].lock, mode);
}

static inline void
HnswMemUnlock(HnswMemGraph *mem, int32 idx)
{
	if (mem->shared != NULL)
		LWLockRelease(&HnswSharedElements(mem->shared)[idx].lock);
}

/* Writes the index's form of a prepared vector at dest (graphs with a storeState). */
static void
HnswMemEncodeStore(HnswMemGraph *mem, const float4 *vector, char *dest)
{
	HnswQuery	q;

	HnswMakeQuery(mem->storeState, vector, &q);
	HnswEncode(mem->storeState, &q, vector, dest);
}

/*
 * Adds an element with empty lists and returns its number, or -1 when a
 * parallel build's shared memory is full.  vector is the prepared vector
 * whose code is code (for the index's own form, when the graph keeps one).
 */
static int32
HnswMemAdd(HnswIndexState *state, HnswMemGraph *mem, const char *code, const float4 *vector,
		   ItemPointer heaptid, int level)
{
	int			nslots = HnswElementSlots(state->m, level);
	Size		codeSize = MAXALIGN(state->codeSize);
	Size		nbrSize = MAXALIGN(sizeof(int32) * nslots);
	Size		distSize = MAXALIGN(sizeof(float4) * nslots);
	Size		countSize = MAXALIGN(level + 1);
	/* last: a search reads the code and lists, the write alone this */
	Size		storeSize = mem->storeState != NULL ? MAXALIGN(mem->storeState->codeSize) : 0;
	int32		idx;
	HnswMemElement *e;

	if (mem->shared != NULL)
	{
		HnswBuildShared *sh = mem->shared;
		Size		total = codeSize + nbrSize + distSize + countSize + storeSize;
		uint64		off;
		HnswSharedElement *se;
		char	   *arena = HnswSharedArena(sh);

		/* Space first, then a number: every number handed out is filled in. */
		if (pg_atomic_read_u32(&sh->full))
			return -1;
		off = pg_atomic_fetch_add_u64(&sh->arenaUsed, total);
		if (off + total > sh->arenaSize)
		{
			pg_atomic_write_u32(&sh->full, 1);
			return -1;
		}
		idx = (int32) pg_atomic_fetch_add_u32(&sh->nelements, 1);
		if (idx >= sh->capacity)
		{
			pg_atomic_write_u32(&sh->full, 1);
			return -1;
		}
		se = &HnswSharedElements(sh)[idx];
		LWLockInitialize(&se->lock, sh->trancheId);
		se->heaptid = *heaptid;
		se->level = level;
		se->codeOff = off;
		se->nbrOff = off + codeSize;
		se->distOff = off + codeSize + nbrSize;
		se->countOff = off + codeSize + nbrSize + distSize;
		se->storeOff = se->countOff + countSize;
		memcpy(arena + se->codeOff, code, state->codeSize);
		memset(arena + se->countOff, 0, level + 1);
		if (storeSize > 0)
			HnswMemEncodeStore(mem, vector, arena + se->storeOff);
		return idx;
	}

	if (mem->nelements == mem->capacity)
	{
		int			newcap = mem->capacity * 2;

		mem->elements = repalloc_huge(mem->elements, sizeof(HnswMemElement) * newcap);
		mem->visitMark = repalloc_huge(mem->visitMark, sizeof(uint32) * newcap);
		memset(mem->visitMark + mem->capacity, 0, sizeof(uint32) * (newcap - mem->capacity));
		mem->capacity = newcap;
	}
	idx = mem->nelements++;
	e = &mem->elements[idx];
	e->heaptid = *heaptid;
	e->level = level;
	e->blkno = InvalidBlockNumber;
	e->offno = InvalidOffsetNumber;
	/*
	 * Code and lists together, carved from large blocks: an allocation of
	 * its own would be rounded up to a power of two.
	 */
	{
		Size		total = codeSize + nbrSize + distSize + countSize + storeSize;

		if (total > mem->chunkLeft)
		{
			Size		block;

			mem->chunkNext = Min(Max(mem->chunkNext * 2, HNSW_MEM_BLOCK_MIN), HNSW_MEM_BLOCK_MAX);
			block = Max(total, mem->chunkNext);

			mem->chunk = MemoryContextAllocHuge(mem->cxt, block);
			mem->chunkLeft = block;
		}
		e->code = mem->chunk;
		mem->chunk += total;
		mem->chunkLeft -= total;
	}
	e->nbr = (int32 *) (e->code + codeSize);
	e->dist = (float4 *) (e->code + codeSize + nbrSize);
	e->count = (uint8 *) (e->code + codeSize + nbrSize + distSize);
	e->store = storeSize > 0 ? e->code + codeSize + nbrSize + distSize + countSize : NULL;
	memcpy(e->code, code, state->codeSize);
	memset(e->count, 0, level + 1);
	if (storeSize > 0)
		HnswMemEncodeStore(mem, vector, e->store);
	return idx;
}

/* ---------- binary heaps of pool entries ---------- */

static void
HnswHeapInit(HnswHeap *heap, int capacity, bool maxHeap)
{
	heap->capacity = Max(capacity, 16);
	heap->items = palloc(sizeof(HnswHeapItem) * heap->capacity);
	heap->count = 0;
	heap->maxHeap = maxHeap;
}

static inline bool
HnswHeapBefore(const HnswHeap *heap, float a, float b)
{
	return heap->maxHeap ? a > b : a < b;
}

static inline void
HnswHeapPush(HnswHeap *heap, int idx, float dist)
{
	int			i;

	if (heap->count == heap->capacity)
	{
		heap->capacity *= 2;
		heap->items = repalloc_huge(heap->items, sizeof(HnswHeapItem) * heap->capacity);
	}
	i = heap->count++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!HnswHeapBefore(heap, dist, heap->items[parent].dist))
			break;
		heap->items[i] = heap->items[parent];
		i = parent;
	}
	heap->items[i].dist = dist;
	heap->items[i].idx = idx;
}

static inline int
HnswHeapPop(HnswHeap *heap)
{
	int			top = heap->items[0].idx;
	HnswHeapItem last = heap->items[--heap->count];
	int			i = 0;

	while (true)
	{
		int			child = 2 * i + 1;

		if (child >= heap->count)
			break;
		if (child + 1 < heap->count &&
			HnswHeapBefore(heap, heap->items[child + 1].dist, heap->items[child].dist))
			child++;
		if (!HnswHeapBefore(heap, heap->items[child].dist, last.dist))
			break;
		heap->items[i] = heap->items[child];
		i = child;
	}
	if (heap->count > 0)
		heap->items[i] = last;
	return top;
}

/* Queues a pool entry for expansion (once). */
static inline void
HnswSearchQueue(HnswSearch *search, int idx)
{
	search->pool[idx].flags |= HNSW_CAND_QUEUED;
	HnswHeapPush(&search->candidates, idx, search->pool[idx].dist);
}

static inline void
HnswSearchKeep(HnswSearch *search, int idx)
{
	HnswHeapPush(&search->results, idx, search->pool[idx].dist);
}

/* ---------- searching one layer ---------- */

void
HnswSearchInit(HnswSearch *search, HnswIndexState *state, HnswMemGraph *mem,
			   const HnswQuery *query, int ef, bool keepCodes)
{
	memset(search, 0, sizeof(HnswSearch));
	search->state = state;
	search->mem = mem;
	search->query = *query;
	search->ef = ef;
	search->keepCodes = keepCodes;
	search->poolCapacity = Max(ef * 4, 64);
	search->pool = palloc(sizeof(HnswCandidate) * search->poolCapacity);
	HnswHeapInit(&search->candidates, ef * 2, false);
	HnswHeapInit(&search->results, ef + 1, true);
	search->discardedCapacity = 64;
	search->discarded = palloc(sizeof(int) * search->discardedCapacity);
	if (mem == NULL)
		HnswKeySetInit(&search->visited, ef * 8);
	search->level = -1;
}

/* Forgets everything of the previous layer and starts searching `level`. */
void
HnswSearchBeginLayer(HnswSearch *search, int level)
{
	search->npool = 0;
	search->candidates.count = 0;
	search->results.count = 0;
	search->ndiscarded = 0;
	if (search->mem != NULL)
	{
		HnswMemGraph *mem = search->mem;

		if (++mem->epoch == 0)
		{
			memset(mem->visitMark, 0, sizeof(uint32) * mem->capacity);	/* wrapped */
			mem->epoch = 1;
		}
	}
	else
		HnswKeySetClear(&search->visited);
	search->level = level;
}

/* Marks an element visited on this layer; false if it was already. */
static inline bool
HnswSearchVisit(HnswSearch *search, HnswId id)
{
	if (search->mem != NULL)
	{
		uint32	   *mark = &search->mem->visitMark[id];

		if (*mark == search->mem->epoch)
			return false;
		*mark = search->mem->epoch;
		return true;
	}
	return HnswKeySetAdd(&search->visited, id);
}

bool
HnswSearchVisited(HnswSearch *search, HnswId id)
{
	if (search->mem != NULL)
		return search->mem->visitMark[id] == search->mem->epoch;
	return HnswKeySetContains(&search->visited, id);
}

static inline int
HnswPoolAdd(HnswSearch *search)
{
	if (search->npool == search->poolCapacity)
	{
		search->poolCapacity *= 2;
		search->pool = repalloc_huge(search->pool, sizeof(HnswCandidate) * search->poolCapacity);
	}
	return search->npool++;
}

static void
HnswSearchDiscard(HnswSearch *search, int idx)
{
	if (search->ndiscarded == search->discardedCapacity)
	{
		search->discardedCapacity *= 2;
		search->discarded = repalloc_huge(search->discarded,
										  sizeof(int) * search->discardedCapacity);
	}
	search->discarded[search->ndiscarded++] = idx;
}

/* Whether an element at `dist` enters the current batch. */
static inline bool
HnswSearchIsNear(HnswSearch *search, float dist, int ef)
{
	return search->results.count < ef ||
		dist < search->results.items[0].dist;
}

/* Whether a freshly visited element needs a pool entry at all. */
static inline bool
HnswSearchWants(HnswSearch *search, bool near, bool deleted)
{
	if (search->skipDeleted && deleted)
		return near;
	return near || search->resumable;
}

/*
 * Admits a freshly visited element (pool entry idx) into the batch, or sets
 * it aside.  An element that vacuum is deleting may still lead to live ones:
 * an insert expands it like any other but keeps it out of the batch.  Only
 * inserts skip such elements, and nothing continues an insert's search, so
 * it is not set aside either.
 */
static void
HnswSearchAdmit(HnswSearch *search, int idx, bool near, int ef)
{
	HnswCandidate *pool = search->pool;

	if (search->skipDeleted && (pool[idx].flags & HNSW_CAND_DELETED))
	{
		if (near)
			HnswSearchQueue(search, idx);
		return;
	}
	if (near)
	{
		HnswSearchQueue(search, idx);
		HnswSearchKeep(search, idx);
		if (search->results.count > ef)
		{
			int			out = HnswHeapPop(&search->results);

			if (search->resumable)
				HnswSearchDiscard(search, out);
		}
	}
	else if (search->resumable)
		HnswSearchDiscard(search, idx);
}

/* Visits elements of the graph in memory (numbers not visited before). */
static void
HnswVisitMem(HnswSearch *search, const int32 *ids, int n, int ef)
{
	HnswMemGraph *mem = search->mem;
	HnswIndexState *state = search->state;

	for (int i = 0; i < n; i++)
		__builtin_prefetch(HnswMemGet(mem, ids[i])->code);
	for (int i = 0; i < n; i++)
	{
		HnswMemElement *e = &mem->elements[ids[i]];
		float		dist;
		bool		near;
		int			idx;

		if (i + 1 < n)
		{
			/* the whole next code: its misses overlap this distance */
			const char *next = mem->elements[ids[i + 1]].code;

			for (Size off = 64; off < state->codeSize; off += 64)
				__builtin_prefetch(next + off);
		}
		dist = HnswDistance(state, &search->query, e->code);
		search->nvisited++;
		near = HnswSearchIsNear(search, dist, ef);
		if (!HnswSearchWants(search, near, false))
			continue;
		idx = HnswPoolAdd(search);
		search->pool[idx].id = ids[i];
		search->pool[idx].dist = dist;
		search->pool[idx].bound = dist;
		search->pool[idx].flags = 0;
		search->pool[idx].level = e->level;
		search->pool[idx].heaptid = e->heaptid;
		search->pool[idx].code = e->code;
		HnswSearchAdmit(search, idx, near, ef);
	}
}

/*
 * Fills a pool entry from an element tuple on a locked page: its distance to
 * the query, and a copy of its code when the search keeps codes and the
 * element is near.
 */
static void
HnswFillFromTuple(HnswSearch *search, HnswCandidate *c, ItemPointer tid, HnswElementTuple etup,
				  float dist, bool near)
{
	c->id = HnswTidKey(tid);
	c->dist = dist;
	c->bound = search->bounds ?
		HnswLowerBound(search->state, HnswElementCode(etup), dist, sqrtf(search->query.norm2)) : dist;
	c->flags = (etup->flags & HNSW_ELEMENT_DELETED) ? HNSW_CAND_DELETED : 0;
	c->level = etup->level;
	c->heaptid = etup->heaptid;
	c->code = NULL;
	if (search->keepCodes && near)
	{
		char	   *copy = palloc(search->state->codeSize);

		memcpy(copy, HnswElementCode(etup), search->state->codeSize);
		c->code = copy;
	}
}

/* Visits elements on disk (TIDs not visited before, none on the metapage). */
static void
HnswVisitDisk(HnswSearch *search, const ItemPointerData *tids, int n, int ef)
{
	HnswIndexState *state = search->state;
	Buffer		bufs[2 * HNSW_MAX_M];

	/*
	 * Pin the pages of all the elements first and prefetch their headers and
	 * line pointers, so the cache misses of one element overlap the others';
	 * then, the line pointers having arrived, the start of each tuple (the
	 * hardware prefetcher streams the rest once it sees sequential misses).
	 */
	for (int i = 0; i < n; i++)
	{
		Page		page;

		bufs[i] = HnswReadBuffer(state, ItemPointerGetBlockNumber(&tids[i]));
		page = BufferGetPage(bufs[i]);
		__builtin_prefetch(page);
		__builtin_prefetch((char *) page + SizeOfPageHeaderData +
						   sizeof(ItemIdData) * (ItemPointerGetOffsetNumber(&tids[i]) - 1));
	}
	for (int i = 0; i < n; i++)
	{
		Page		page = BufferGetPage(bufs[i]);
		OffsetNumber off = ItemPointerGetOffsetNumber(&tids[i]);

		if (off <= PageGetMaxOffsetNumber(page))
		{
			ItemId		itemid = PageGetItemId(page, off);
			char	   *tup = (char *) page + ItemIdGetOffset(itemid);

			if (ItemIdGetOffset(itemid) + 256 <= BLCKSZ)
			{
				__builtin_prefetch(tup);
				__builtin_prefetch(tup + 64);
				__builtin_prefetch(tup + 128);
				__builtin_prefetch(tup + 192);
			}
		}
	}
	for (int i = 0; i < n; i++)
	{
		HnswElementTuple etup;
		int			idx = -1;
		bool		near = false;

		LockBuffer(bufs[i], BUFFER_LOCK_SHARE);
		etup = HnswPageGetElement(BufferGetPage(bufs[i]), (ItemPointer) &tids[i], search->level,
								  NULL);
		if (etup != NULL)
		{
			float		dist = HnswDistance(state, &search->query, HnswElementCode(etup));

			search->nvisited++;
			near = HnswSearchIsNear(search, dist, ef);
			if (HnswSearchWants(search, near, (etup->flags & HNSW_ELEMENT_DELETED) != 0))
			{
				idx = HnswPoolAdd(search);
				HnswFillFromTuple(search, &search->pool[idx], (ItemPointer) &tids[i], etup, dist,
								  near);
			}
		}
		UnlockReleaseBuffer(bufs[i]);
		if (idx >= 0)
			HnswSearchAdmit(search, idx, near, ef);
	}
}

/*
 * Reads one element into *c (for a starting element); false when it is not
 * on the current layer (on disk: a slot freed by vacuum, or reused by an
 * element on fewer layers).
 */
static bool
HnswLoadCandidate(HnswSearch *search, HnswId id, HnswCandidate *c)
{
	HnswIndexState *state = search->state;
	ItemPointerData tid;
	Buffer		buf;
	HnswElementTuple etup;

	if (search->mem != NULL)
	{
		HnswMemElement *e = HnswMemGet(search->mem, (int32) id);

		c->id = id;
		c->dist = HnswDistance(state, &search->query, e->code);
		c->bound = c->dist;
		c->flags = 0;
		c->level = e->level;
		c->heaptid = e->heaptid;
		c->code = e->code;
		return e->level >= search->level;
	}
	HnswIdGetTid(id, &tid);
	if (ItemPointerGetBlockNumber(&tid) == HNSW_METAPAGE_BLKNO)
		return false;
	buf = HnswReadBuffer(state, ItemPointerGetBlockNumber(&tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	etup = HnswPageGetElement(BufferGetPage(buf), &tid, search->level, NULL);
	if (etup != NULL)
		HnswFillFromTuple(search, c, &tid, etup,
						  HnswDistance(state, &search->query, HnswElementCode(etup)), true);
	UnlockReleaseBuffer(buf);
	return etup != NULL;
}

/*
 * Adds a starting element on the current layer, already read (its distance
 * to the same query known): every element found on a layer starts the
 * search of the next one down.  A starting element enters the batch even if
 * deleted: a batch is never empty.
 */
void
HnswSearchAddCandidate(HnswSearch *search, const HnswCandidate *c)
{
	int			idx;

	if (!HnswSearchVisit(search, c->id))
		return;
	search->nvisited++;
	idx = HnswPoolAdd(search);
	search->pool[idx] = *c;
	search->pool[idx].flags &= HNSW_CAND_DELETED;
	HnswSearchQueue(search, idx);
	HnswSearchKeep(search, idx);
}

/* Adds a starting element on the current layer; false if it is not there. */
bool
HnswSearchAddEntry(HnswSearch *search, HnswId id)
{
	HnswCandidate c;

	if (HnswSearchVisited(search, id))
		return true;
	if (!HnswLoadCandidate(search, id, &c))
		return false;
	HnswSearchAddCandidate(search, &c);
	return true;
}

/*
 * Greedy descent (ef = 1) from the search's current layer down to `level`,
 * whose search it then starts from the nearest element found above.  False
 * if a layer's search found nothing (only an insert that skips deleted
 * elements can meet that).
 */
bool
HnswSearchDescend(HnswSearch *search, int level)
{
	for (int lc = search->level; lc > level; lc--)
	{
		int			best;
		HnswCandidate c;

		HnswSearchLayer(search, 1, 0);
		if (HnswSearchResults(search, &best) != 1)
			return false;
		c = search->pool[best];
		HnswSearchBeginLayer(search, lc - 1);
		HnswSearchAddCandidate(search, &c);
	}
	return true;
}

/* The neighbours of in-memory element idx on the current layer. */
static int
HnswNeighborsMem(HnswSearch *search, int32 idx, int32 *out)
{
	HnswMemElement *e = HnswMemGet(search->mem, idx);
	int			first = HnswLevelFirstSlot(search->state->m, search->level);
	int			n;

	HnswMemLock(search->mem, idx, LW_SHARED);
	n = e->count[search->level];
	memcpy(out, e->nbr + first, sizeof(int32) * n);
	HnswMemUnlock(search->mem, idx);
	return n;
}

/* The neighbours on the current layer of the element on disk that c names. */
static int
HnswNeighborsDisk(HnswSearch *search, const HnswCandidate *c, ItemPointerData *out)
{
	HnswIndexState *state = search->state;
	int			first = HnswLevelFirstSlot(state->m, search->level);
	int			nslots = HnswLevelSlots(state->m, search->level);
	ItemPointerData tid;
	Buffer		buf;
	HnswElementTuple etup;
	int			n = 0;

	HnswIdGetTid(c->id, &tid);
	buf = HnswReadBuffer(state, ItemPointerGetBlockNumber(&tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	etup = HnswPageGetElement(BufferGetPage(buf), &tid, search->level, (ItemPointer) &c->heaptid);
	if (etup != NULL)
	{
		ItemPointerData *tids = HnswElementTids(etup, state->codeSize, state->m) + first;

		while (n < nslots && ItemPointerIsValid(&tids[n]))
		{
			out[n] = tids[n];
			n++;
		}
	}
	UnlockReleaseBuffer(buf);
	return n;
}

/*
 * The layer search of the HNSW paper (Algorithm 2): expand the nearest
 * unexpanded candidate until it is farther than the ef-th best element
 * found.  Stops early once maxVisited elements have been read (0: no bound).
 */
void
HnswSearchLayer(HnswSearch *search, int ef, int64 maxVisited)
{
	while (search->candidates.count > 0)
	{
		int			cidx = search->candidates.items[0].idx;
		HnswCandidate c;

		if (search->results.count >= ef &&
			search->candidates.items[0].dist > search->results.items[0].dist)
			break;
		if (maxVisited > 0 && search->nvisited >= maxVisited)
			break;
		HnswHeapPop(&search->candidates);
		search->pool[cidx].flags &= ~HNSW_CAND_QUEUED;
		search->pool[cidx].flags |= HNSW_CAND_EXPANDED;
		c = search->pool[cidx];	/* the pool may move while we visit */

		CHECK_FOR_INTERRUPTS();

		if (search->mem != NULL)
		{
			int32		nbr[2 * HNSW_MAX_M];
			int			n = HnswNeighborsMem(search, (int32) c.id, nbr);
			int			ntodo = 0;

			for (int i = 0; i < n; i++)
				if (HnswSearchVisit(search, nbr[i]))
					nbr[ntodo++] = nbr[i];
			HnswVisitMem(search, nbr, ntodo, ef);
		}
		else
		{
			ItemPointerData nbr[2 * HNSW_MAX_M];
			int			n = HnswNeighborsDisk(search, &c, nbr);
			int			ntodo = 0;

			for (int i = 0; i < n; i++)
				if (ItemPointerGetBlockNumber(&nbr[i]) != HNSW_METAPAGE_BLKNO &&
					HnswSearchVisit(search, HnswTidKey(&nbr[i])))
					nbr[ntodo++] = nbr[i];
			HnswVisitDisk(search, nbr, ntodo, ef);
		}
	}
}

/*
 * Moves the current batch out of the results heap into `out`, nearest
 * first, marking each as emitted.  Returns how many.
 */
int
HnswSearchResults(HnswSearch *search, int *out)
{
	int			n = search->results.count;

	for (int i = n - 1; i >= 0; i--)
	{
		out[i] = HnswHeapPop(&search->results);
		search->pool[out[i]].flags |= HNSW_CAND_EMITTED;
	}
	return n;
}

/*
 * Prepares the next batch of a scan that has emitted everything so far:
 * elements visited but set aside become the batch's starting results, and
 * those never expanded become candidates again.  False when nothing is left.
 */
bool
HnswSearchContinue(HnswSearch *search)
{
	int			n = search->ndiscarded;
	int		   *old;

	Assert(search->resumable);
	if (n == 0 && search->candidates.count == 0)
		return false;
	old = palloc(sizeof(int) * Max(n, 1));
	memcpy(old, search->discarded, sizeof(int) * n);
	search->ndiscarded = 0;
	for (int i = 0; i < n; i++)
	{
		int			idx = old[i];

		if (search->pool[idx].flags & HNSW_CAND_EMITTED)
			continue;
		/* one in the candidates heap already (displaced from a batch) stays once */
		if (!(search->pool[idx].flags & (HNSW_CAND_EXPANDED | HNSW_CAND_QUEUED)))
			HnswSearchQueue(search, idx);
		HnswSearchKeep(search, idx);
		if (search->results.count > search->ef)
			HnswSearchDiscard(search, HnswHeapPop(&search->results));
	}
	pfree(old);
	return true;
}

/* ---------- choosing neighbours ---------- */

/*
 * Exact copies (equal codes: the same image stored many times) need rules
 * of their own.  The distance test alone keeps every copy of the owner (at
 * distance zero from each other, no nearer to each other than to the owner)
 * and they came first, nearest: a group of copies filled its lists with one
 * another, a trap that searches entered and could not leave (see
 * test/sql/hnsw_copies.sql).  So a copy of the owner is set aside: it
 * covers nothing (its distances to the others are the owner's but for
 * rounding or a compact form's estimates) and only takes a slot the
 * heuristic's own choices leave free, before the candidates it passed over;
 * a full list gives up a copy of its owner before any neighbour the
 * heuristic keeps.  Keeping those copies keeps the group connected, so that
 * a query finds all of them.  A copy of a kept neighbour adds nothing: it is
 * passed over and never fills a slot.
 */
typedef enum HnswVerdict
{
	HNSW_KEEP,
	HNSW_PASS,					/* a kept neighbour is nearer to it than the owner */
	HNSW_DUPLICATE,				/* its code equals a kept neighbour's */
	HNSW_OWNER_COPY				/* its code equals the owner's */
} HnswVerdict;

/*
 * Whether two codes are equal.  Called for most pairs of candidates, nearly
 * all of them distinct: their first eight bytes almost always differ, and
 * comparing those inline costs far less than a call to memcmp.
 */
static inline bool
HnswCodesEqual(const char *a, const char *b, Size size)
{
	if (size >= sizeof(uint64))
	{
		uint64		x,
					y;

		memcpy(&x, a, sizeof(uint64));
		memcpy(&y, b, sizeof(uint64));
		if (x != y)
			return false;
	}
	return memcmp(a, b, size) == 0;
}

/*
 * The neighbour-selection heuristic of the HNSW paper (its Algorithm 4) on
 * candidate i: kept only if it is closer to the owner than to every
 * neighbour kept so far (`kept`, indexes into cands), which spreads the
 * links over directions instead of spending them all inside one cluster.
 */
static HnswVerdict
HnswVerdictOf(HnswIndexState *state, const char *ownerCode, const HnswCandidate *cands, int i,
			  const int *kept, int nkept, float4 *scratch)
{
	HnswQuery	qi;

	if (ownerCode != NULL && HnswCodesEqual(cands[i].code, ownerCode, state->codeSize))
		return HNSW_OWNER_COPY;
	HnswCodeQuery(state, cands[i].code, &qi, scratch);
	for (int j = 0; j < nkept; j++)
	{
		const char *code = cands[kept[j]].code;

		if (HnswCodesEqual(code, cands[i].code, state->codeSize))
			return HNSW_DUPLICATE;
		if (HnswDistance(state, &qi, code) < cands[i].dist)
			return HNSW_PASS;
	}
	return HNSW_KEEP;
}

static float4 *
HnswVerdictScratch(HnswIndexState *state)
{
	return state->storage != HNSW_STORAGE_FLOAT4 ? palloc(sizeof(float4) * state->codeDims) : NULL;
}

static void
HnswSortInts(int *v, int n)
{
	for (int i = 1; i < n; i++)
	{
		int			x = v[i],
					j = i - 1;

		while (j >= 0 && v[j] > x)
		{
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
}

/*
 * Chooses up to maxNeighbors of `cands` (sorted by distance to the owner,
 * with codes) for the owner's list: those the heuristic keeps, then copies
 * of the owner and the nearest candidates it passed over in the slots left
 * free (the paper's keepPrunedConnections, as pgvector does: a new
 * element's own lists, and VACUUM's repairs).  On clustered data the
 * heuristic alone leaves many slots empty, and at a million rows that
 * capped recall@10 near 0.89 whatever ef_search was (bench/README.md).
 * ownerCode may be NULL (not known: no copy is recognised).  Returns the
 * number selected into `selected`, in candidate order (nearest first).
 */
int
HnswSelectNeighbors(HnswIndexState *state, const char *ownerCode, const HnswCandidate *cands,
					int ncands, int maxNeighbors, int *selected)
{
	int			nselected = 0;
	int		   *copies = palloc(sizeof(int) * Max(ncands, 1));
	int		   *passed = palloc(sizeof(int) * Max(ncands, 1));
	int			ncopies = 0;
	int			npassed = 0;
	float4	   *scratch = HnswVerdictScratch(state);

	for (int i = 0; i < ncands && nselected < maxNeighbors; i++)
	{
		switch (HnswVerdictOf(state, ownerCode, cands, i, selected, nselected, scratch))
		{
			case HNSW_KEEP:
				selected[nselected++] = i;
				break;
			case HNSW_OWNER_COPY:
				copies[ncopies++] = i;
				break;
			case HNSW_PASS:
				passed[npassed++] = i;
				break;
			case HNSW_DUPLICATE:
				break;
		}
	}
	if (nselected < maxNeighbors && ncopies + npassed > 0)
	{
		for (int i = 0; i < ncopies && nselected < maxNeighbors; i++)
			selected[nselected++] = copies[i];
		for (int i = 0; i < npassed && nselected < maxNeighbors; i++)
			selected[nselected++] = passed[i];
		/* back to candidate order, so that a list stays sorted by distance */
		HnswSortInts(selected, nselected);
	}
	pfree(copies);
	pfree(passed);
	if (scratch != NULL)
		pfree(scratch);
	return nselected;
}

/*
 * Which of a full list's members and a newcomer (`cands`, n of them, sorted
 * by distance to the owner) leaves: the nearest that the heuristic passes
 * over, i.e. the most redundant (a kept member is nearer to it than the
 * owner is); else the farthest copy of the owner; else the farthest.  The
 * walk stops at the first candidate passed over, so a back-link costs
 * little.
 */
static int
HnswChooseEvicted(HnswIndexState *state, const char *ownerCode, const HnswCandidate *cands, int n)
{
	int			kept[2 * HNSW_MAX_M + 1];
	int			nkept = 0;
	int			lastCopy = -1;
	int			evict = -1;
	float4	   *scratch = HnswVerdictScratch(state);

	for (int i = 0; i < n && evict < 0; i++)
	{
		switch (HnswVerdictOf(state, ownerCode, cands, i, kept, nkept, scratch))
		{
			case HNSW_KEEP:
				kept[nkept++] = i;
				break;
			case HNSW_OWNER_COPY:
				lastCopy = i;
				break;
			case HNSW_PASS:
			case HNSW_DUPLICATE:
				evict = i;
				break;
		}
	}
	if (scratch != NULL)
		pfree(scratch);
	if (evict < 0)
		evict = lastCopy >= 0 ? lastCopy : n - 1;
	return evict;
}

static void
HnswSortCandidates(HnswCandidate *cands, int n)
{
	/* insertion sort: lists hold at most 2m + 1 entries */
	for (int i = 1; i < n; i++)
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
}

/*
 * A full list after a newcomer asks to join it: the members and the
 * newcomer (all n of them in `cands`, with their distances to the list's
 * owner and their codes).  One of them leaves (HnswChooseEvicted): the
 * most redundant.  Re-choosing the whole list instead, keeping only what
 * the heuristic keeps, emptied lists at every newcomer; the links between
 * clusters, which the heuristic keeps or drops almost by chance, wore away
 * until whole clusters could not be reached (TAP 060 with filled lists).
 * Writes the rest, nearest first, to `out`; returns their count and whether
 * the newcomer is among them.
 */
static int
HnswChooseList(HnswIndexState *state, const char *ownerCode, HnswCandidate *cands, int n, int maxn,
			   HnswId newcomer, HnswCandidate *out, bool *kept)
{
	int			evict = -1;
	int			nout = 0;

	HnswSortCandidates(cands, n);
	if (n > maxn)
		evict = HnswChooseEvicted(state, ownerCode, cands, n);
	*kept = false;
	for (int i = 0; i < n; i++)
	{
		if (i == evict)
			continue;
		out[nout++] = cands[i];
		*kept |= cands[i].id == newcomer;
	}
	return nout;
}

/* ---------- linking a new element into its neighbours' lists ---------- */

/*
 * Codes an insert has read, by element: pruning a full list needs the codes
 * of its members, which are mostly elements the insert's search visited.
 */
typedef struct HnswCodeMap
{
	uint64	   *keys;			/* id + 1; 0 is empty */
	const char **codes;
	uint32		mask;
} HnswCodeMap;

static inline uint32
HnswCodeMapSlot(const HnswCodeMap *map, HnswId id)
{
	return (uint32) ((id + 1) * UINT64CONST(0x9E3779B97F4A7C15) >> 32) & map->mask;
}

static void
HnswCodeMapInit(HnswCodeMap *map, const HnswSearch *search)
{
	uint32		size = 64;

	while (size < (uint32) search->npool * 2)
		size *= 2;
	map->keys = palloc0(sizeof(uint64) * size);
	map->codes = palloc0(sizeof(char *) * size);
	map->mask = size - 1;
	for (int i = 0; i < search->npool; i++)
	{
		const HnswCandidate *c = &search->pool[i];
		uint32		pos = HnswCodeMapSlot(map, c->id);

		if (c->code == NULL)
			continue;
		while (map->keys[pos] != 0 && map->keys[pos] != c->id + 1)
			pos = (pos + 1) & map->mask;
		map->keys[pos] = c->id + 1;
		map->codes[pos] = c->code;
	}
}

static const char *
HnswCodeMapGet(const HnswCodeMap *map, HnswId id)
{
	uint32		pos = HnswCodeMapSlot(map, id);

	while (map->keys[pos] != 0)
	{
		if (map->keys[pos] == id + 1)
			return map->codes[pos];
		pos = (pos + 1) & map->mask;
	}
	return NULL;
}

/* Inserts (id, dist) into a sorted list of n entries, dropping entry `last` (n - 1 or n). */
static void
HnswMemListInsert(HnswMemElement *e, int first, int last, int32 id, float dist)
{
	int			i = last;

	while (i > 0 && e->dist[first + i - 1] > dist)
	{
		e->nbr[first + i] = e->nbr[first + i - 1];
		e->dist[first + i] = e->dist[first + i - 1];
		i--;
	}
	e->nbr[first + i] = id;
	e->dist[first + i] = dist;
}

/* HnswAddLink for the graph in memory, under the owner's lock. */
static bool
HnswAddLinkMem(HnswIndexState *state, HnswMemGraph *mem, int32 owner, int lc,
			   const HnswCandidate *newc, bool force)
{
	HnswMemElement *e = HnswMemGet(mem, owner);
	int			first = HnswLevelFirstSlot(state->m, lc);
	int			maxn = HnswLevelSlots(state->m, lc);
	int			cnt;
	bool		linked = true;

	HnswMemLock(mem, owner, LW_EXCLUSIVE);
	cnt = e->count[lc];
	if (cnt < maxn)
	{
		HnswMemListInsert(e, first, cnt, (int32) newc->id, newc->dist);
		e->count[lc] = cnt + 1;
	}
	else if (force)
		HnswMemListInsert(e, first, cnt - 1, (int32) newc->id, newc->dist);
	else
	{
		HnswCandidate cands[2 * HNSW_MAX_M + 1];
		HnswCandidate chosen[2 * HNSW_MAX_M + 1];
		int			nchosen;

		for (int i = 0; i < cnt; i++)
		{
			cands[i].id = e->nbr[first + i];
			cands[i].dist = e->dist[first + i];
			cands[i].code = HnswMemGet(mem, e->nbr[first + i])->code;
		}
		cands[cnt] = *newc;
		nchosen = HnswChooseList(state, e->code, cands, cnt + 1, maxn, newc->id, chosen,
								 &linked);
		for (int i = 0; i < nchosen; i++)
		{
			e->nbr[first + i] = (int32) chosen[i].id;
			e->dist[first + i] = chosen[i].dist;
		}
		e->count[lc] = nchosen;
	}
	HnswMemUnlock(mem, owner);
	return linked;
}

/*
 * Sorts a layer's n used links by distance, nearest first (the order the
 * format promises), stable for equal distances.  n is at most 2m.
 */
void
HnswSortLinks(ItemPointerData *tids, float4 *dists, int n)
{
	for (int i = 1; i < n; i++)
	{
		ItemPointerData t = tids[i];
		float4		d = dists[i];
		int			j = i;

		while (j > 0 && dists[j - 1] > d)
		{
			tids[j] = tids[j - 1];
			dists[j] = dists[j - 1];
			j--;
		}
		tids[j] = t;
		dists[j] = d;
	}
}

/*
 * HnswAddLink for the graph on disk.  A list with a free slot just takes the
 * newcomer.  A full list chooses which of its members and the newcomer
 * leaves (HnswChooseList), which needs the members' codes: they are read
 * with no page locked, and the choice is written only if the list has not
 * changed meanwhile (else we try again, and after a few tries keep the
 * nearest, dropping the farthest).
 */
static bool
HnswAddLinkDisk(HnswIndexState *state, const HnswCodeMap *codes, const HnswCandidate *owner,
				int lc, const HnswCandidate *newc, bool force)
{
	int			first = HnswLevelFirstSlot(state->m, lc);
	int			nslots = HnswLevelSlots(state->m, lc);
	ItemPointerData ownerTid;
	ItemPointerData newTid;
	ItemPointerData seenTids[2 * HNSW_MAX_M];
	float4		seenDists[2 * HNSW_MAX_M];
	ItemPointerData choiceTids[2 * HNSW_MAX_M];
	float4		choiceDists[2 * HNSW_MAX_M];
	bool		haveChoice = false;

	HnswIdGetTid(owner->id, &ownerTid);
	HnswIdGetTid(newc->id, &newTid);
	for (int attempt = 0;; attempt++)
	{
		Buffer		buf = ReadBuffer(state->index, ItemPointerGetBlockNumber(&ownerTid));
		GenericXLogState *xlog;
		HnswElementTuple etup;
		ItemPointerData *tids = NULL;
		float4	   *dists = NULL;
		int			cnt = 0;
		bool		present = false;
		bool		write = false;
		bool		choose = false;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(state->index);
		etup = HnswPageGetElement(GenericXLogRegisterBuffer(xlog, buf, 0), &ownerTid, lc,
								  (ItemPointer) &owner->heaptid);
		if (etup != NULL)
		{
			tids = HnswElementTids(etup, state->codeSize, state->m) + first;
			dists = HnswElementDists(etup, state->codeSize) + first;
			while (cnt < nslots && ItemPointerIsValid(&tids[cnt]))
				present |= ItemPointerEquals(&tids[cnt++], &newTid);
		}
		if (etup == NULL || present)
			;					/* gone, or linked already */
		else if (cnt < nslots)
		{
			int			i = cnt;

			/* keep the list sorted: shift the farther ones up */
			while (i > 0 && dists[i - 1] > newc->dist)
			{
				tids[i] = tids[i - 1];
				dists[i] = dists[i - 1];
				i--;
			}
			tids[i] = newTid;
			dists[i] = newc->dist;
			write = true;
		}
		else if (haveChoice && memcmp(seenTids, tids, sizeof(ItemPointerData) * nslots) == 0)
		{
			/* unchanged since we chose: write the choice */
			memcpy(tids, choiceTids, sizeof(ItemPointerData) * nslots);
			memcpy(dists, choiceDists, sizeof(float4) * nslots);
			write = true;
		}
		else if (force || attempt >= 3)
		{
			/* forced (drop the farthest), or contended (keep the nearest) */
			int			target = -1;

			for (int i = 0; i < nslots; i++)
				if ((force || dists[i] > newc->dist) && (target < 0 || dists[i] > dists[target]))
					target = i;
			if (target >= 0)
			{
				tids[target] = newTid;
				dists[target] = newc->dist;
				HnswSortLinks(tids, dists, nslots);
				write = true;
			}
		}
		else
		{
			memcpy(seenTids, tids, sizeof(ItemPointerData) * nslots);
			memcpy(seenDists, dists, sizeof(float4) * nslots);
			choose = true;
		}
		if (write)
			GenericXLogFinish(xlog);
		else
			GenericXLogAbort(xlog);
		UnlockReleaseBuffer(buf);
		if (!choose)
			return write;

		/* Full: choose among the members and the newcomer, no page locked. */
		{
			HnswCandidate cands[2 * HNSW_MAX_M + 1];
			HnswCandidate chosen[2 * HNSW_MAX_M + 1];
			int			ncands = 0;
			int			nchosen;
			bool		kept;

			for (int i = 0; i < nslots; i++)
			{
				HnswId		id = HnswTidKey(&seenTids[i]);
				const char *code = codes != NULL ? HnswCodeMapGet(codes, id) : NULL;

				if (code == NULL)
				{
					HnswElementTuple copy = HnswReadElementCopy(state->index, NULL, &seenTids[i]);

					if (copy == NULL)
						continue;	/* freed by vacuum: drop the link */
					code = HnswElementCode(copy);
				}
				cands[ncands].id = id;
				cands[ncands].dist = seenDists[i];
				cands[ncands].code = code;
				ncands++;
			}
			cands[ncands++] = *newc;
			nchosen = HnswChooseList(state, owner->code, cands, ncands, nslots, newc->id, chosen,
									 &kept);
			if (!kept)
				return false;	/* the list stays as it is */
			for (int i = 0; i < nslots; i++)
			{
				if (i < nchosen)
				{
					HnswIdGetTid(chosen[i].id, &choiceTids[i]);
					choiceDists[i] = chosen[i].dist;
				}
				else
				{
					ItemPointerSetInvalid(&choiceTids[i]);
					choiceDists[i] = 0;
				}
			}
			haveChoice = true;
		}
	}
}

/*
 * Adds the newcomer (newc, its dist being to the owner) to the owner's list
 * on layer lc: a list with room takes it; a full one drops its most
 * redundant member, which may be the newcomer (HnswChooseList); with
 * `force`, a full list drops its farthest link for the newcomer whatever
 * the heuristic says.  Returns whether the newcomer is now linked from the
 * owner.
 */
static bool
HnswAddLink(HnswIndexState *state, HnswMemGraph *mem, const HnswCodeMap *codes,
			const HnswCandidate *owner, int lc, const HnswCandidate *newc, bool force)
{
	if (mem != NULL)
		return HnswAddLinkMem(state, mem, (int32) owner->id, lc, newc, force);
	return HnswAddLinkDisk(state, codes, owner, lc, newc, force);
}

/*
 * Links `newc` (an element with its code) back from its `n` neighbours on
 * layer lc (nearest first, each with its distance to newc), each list
 * taking it or not as HnswAddLink decides.  If no list on layer 0 takes it,
 * nothing would lead to it: the nearest neighbour links to it anyway.
 * Returns whether one of them links to it now.
 */
static bool
HnswLinkBack(HnswIndexState *state, HnswMemGraph *mem, const HnswCodeMap *codes,
			 HnswCandidate *newc, const HnswCandidate *neighbors, int n, int lc)
{
	bool		linked = false;

	for (int i = 0; i < n; i++)
	{
		newc->dist = neighbors[i].dist;
		linked |= HnswAddLink(state, mem, codes, &neighbors[i], lc, newc, false);
	}
	if (!linked && lc == 0 && n > 0)
	{
		newc->dist = neighbors[0].dist;
		linked = HnswAddLink(state, mem, codes, &neighbors[0], 0, newc, true);
	}
	return linked;
}

/*
 * Links element `id` (in memory, or on disk when mem is NULL) back from its
 * own neighbours on layer 0, those not marked deleted, as an insert links a
 * new element (HnswLinkBack): for an element that no list links to any
 * more.  False if none takes it, or it is itself deleted or gone.
 */
bool
HnswRelink(HnswIndexState *state, HnswMemGraph *mem, HnswId id)
{
	int			nslots = HnswLevelSlots(state->m, 0);
	HnswCandidate element;
	HnswCandidate neighbors[2 * HNSW_MAX_M];
	int			n = 0;

	memset(&element, 0, sizeof(element));
	memset(neighbors, 0, sizeof(neighbors));
	element.id = id;
	if (mem != NULL)
	{
		HnswMemElement *e = HnswMemGet(mem, (int32) id);
		int32		nbr[2 * HNSW_MAX_M];
		float4		dist[2 * HNSW_MAX_M];

		HnswMemLock(mem, (int32) id, LW_SHARED);
		n = e->count[0];
		memcpy(nbr, e->nbr, sizeof(int32) * n);
		memcpy(dist, e->dist, sizeof(float4) * n);
		HnswMemUnlock(mem, (int32) id);
		element.level = e->level;
		element.heaptid = e->heaptid;
		element.code = e->code;
		for (int i = 0; i < n; i++)
		{
			HnswMemElement *ne = HnswMemGet(mem, nbr[i]);

			neighbors[i].id = nbr[i];
			neighbors[i].dist = dist[i];
			neighbors[i].level = ne->level;
			neighbors[i].heaptid = ne->heaptid;
			neighbors[i].code = ne->code;
		}
	}
	else
	{
		ItemPointerData tid;
		HnswElementTuple etup;
		ItemPointerData *tids;
		float4	   *dists;

		HnswIdGetTid(id, &tid);
		etup = HnswReadElementCopy(state->index, NULL, &tid);
		if (etup == NULL || (etup->flags & HNSW_ELEMENT_DELETED))
			return false;
		element.level = etup->level;
		element.heaptid = etup->heaptid;
		element.code = HnswElementCode(etup);
		tids = HnswElementTids(etup, state->codeSize, state->m);
		dists = HnswElementDists(etup, state->codeSize);
		for (int i = 0; i < nslots && ItemPointerIsValid(&tids[i]); i++)
		{
			HnswElementTuple ntup = HnswReadElementCopy(state->index, NULL, &tids[i]);

			if (ntup == NULL || (ntup->flags & HNSW_ELEMENT_DELETED))
				continue;
			neighbors[n].id = HnswTidKey(&tids[i]);
			neighbors[n].dist = dists[i];
			neighbors[n].level = ntup->level;
			neighbors[n].heaptid = ntup->heaptid;
			neighbors[n].code = HnswElementCode(ntup);
			n++;
		}
	}
	return HnswLinkBack(state, mem, NULL, &element, neighbors, n, 0);
}

/*
 * After a build in memory, before it is written: links back every element
 * but the entry point that no list links to on layer 0, which no search
 * could reach.  A full list that gave up its only link to an element for a
 * nearer newcomer leaves such elements behind, most of all among copies of
 * one embedding, which other lists link to only once per group
 * (test/sql/hnsw_copies.sql).  Returns how many it linked back.
 */
int
HnswRelinkOrphansMem(HnswIndexState *state, HnswMemGraph *mem)
{
	int			n = mem->nelements;
	bool	   *linked = palloc0(sizeof(bool) * Max(n, 1));
	int			relinked = 0;

	for (int i = 0; i < n; i++)
	{
		HnswMemElement *e = HnswMemGet(mem, i);

		for (int j = 0; j < e->count[0]; j++)
			if (e->nbr[j] >= 0 && e->nbr[j] < n)
				linked[e->nbr[j]] = true;
	}
	for (int i = 0; i < n; i++)
	{
		if (linked[i] || i == mem->entry)
			continue;
		CHECK_FOR_INTERRUPTS();
		if (HnswRelink(state, mem, i))
			relinked++;
	}
	pfree(linked);
	return relinked;
}

/* ---------- the entry point and storing elements ---------- */

/* The graph's entry point; false when the graph is empty. */
static bool
HnswGetEntry(HnswIndexState *state, HnswMemGraph *mem, HnswId *entry, int *entryLevel)
{
	if (mem != NULL && mem->shared != NULL)
	{
		HnswBuildShared *sh = mem->shared;

		int32		idx;

		LWLockAcquire(&sh->entryLock, LW_SHARED);
		idx = sh->entry;
		*entryLevel = sh->entryLevel;
		LWLockRelease(&sh->entryLock);
		*entry = (HnswId) idx;
		return idx >= 0;
	}
	if (mem != NULL)
	{
		*entry = mem->entry;
		*entryLevel = mem->entryLevel;
		return mem->entry >= 0;
	}
	{
		HnswMetaPageData meta;

		HnswReadMeta(state->index, &meta);
		*entry = HnswTidKey(&meta.entry);
		*entryLevel = meta.entryLevel;
		return ItemPointerIsValid(&meta.entry);
	}
}

typedef enum HnswStoreResult
{
	HNSW_STORED,				/* the element is the graph's first */
	HNSW_TAKEN,					/* another insert made the graph non-empty first */
	HNSW_FULL					/* a parallel build's shared memory is full */
} HnswStoreResult;

/* Stores the first element of an empty graph as its entry point. */
static HnswStoreResult
HnswStoreFirst(HnswIndexState *state, HnswMemGraph *mem, const char *code, const float4 *vector,
			   ItemPointer heaptid, int level)
{
	HnswStoreResult result = HNSW_TAKEN;

	if (mem != NULL && mem->shared != NULL)
	{
		HnswBuildShared *sh = mem->shared;

		LWLockAcquire(&sh->entryLock, LW_EXCLUSIVE);
		if (sh->entry < 0)
		{
			int32		idx = HnswMemAdd(state, mem, code, vector, heaptid, level);

			if (idx < 0)
				result = HNSW_FULL;
			else
			{
				sh->entry = idx;
				sh->entryLevel = level;
				result = HNSW_STORED;
			}
		}
		LWLockRelease(&sh->entryLock);
	}
	else if (mem != NULL)
	{
		mem->entry = HnswMemAdd(state, mem, code, vector, heaptid, level);
		mem->entryLevel = level;
		result = HNSW_STORED;
	}
	else
	{
		Buffer		buf = ReadBuffer(state->index, HNSW_METAPAGE_BLKNO);

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		if (!ItemPointerIsValid(&HnswPageGetMeta(BufferGetPage(buf))->entry))
		{
			Size		size;
			HnswElementTuple etup = HnswFormElementTuple(state, code, heaptid, level, &size);
			ItemPointerData tid;

			HnswPlaceTuple(state->index, etup, size, &tid);
			HnswApplyMeta(state->index, buf, 0, &tid, level);
			result = HNSW_STORED;
		}
		UnlockReleaseBuffer(buf);
	}
	return result;
}

/*
 * Stores a new element with its lists (neighbors[lc], nneighbors[lc] for
 * each of its layers) and returns its id, or HNSW_INVALID_ID when a
 * parallel build's shared memory is full.
 */
static HnswId
HnswStoreElement(HnswIndexState *state, HnswMemGraph *mem, const char *code, const float4 *vector,
				 ItemPointer heaptid, int level, HnswCandidate **neighbors, const int *nneighbors)
{
	int			m = state->m;

	if (mem != NULL)
	{
		int32		idx = HnswMemAdd(state, mem, code, vector, heaptid, level);
		HnswMemElement *e;

		if (idx < 0)
			return HNSW_INVALID_ID;
		e = HnswMemGet(mem, idx);
		/* nobody knows its number yet: no lock needed */
		for (int lc = 0; lc <= level; lc++)
		{
			int			first = HnswLevelFirstSlot(m, lc);

			for (int i = 0; i < nneighbors[lc]; i++)
			{
				e->nbr[first + i] = (int32) neighbors[lc][i].id;
				e->dist[first + i] = neighbors[lc][i].dist;
			}
			e->count[lc] = nneighbors[lc];
		}
		return idx;
	}
	else
	{
		Size		size;
		HnswElementTuple etup = HnswFormElementTuple(state, code, heaptid, level, &size);
		ItemPointerData *tids = HnswElementTids(etup, state->codeSize, m);
		float4	   *dists = HnswElementDists(etup, state->codeSize);
		ItemPointerData tid;

		for (int lc = 0; lc <= level; lc++)
		{
			int			first = HnswLevelFirstSlot(m, lc);

			for (int i = 0; i < nneighbors[lc]; i++)
			{
				HnswIdGetTid(neighbors[lc][i].id, &tids[first + i]);
				dists[first + i] = neighbors[lc][i].dist;
			}
		}
		HnswPlaceTuple(state->index, etup, size, &tid);
		return HnswTidKey(&tid);
	}
}

/* Makes the new element the entry point if it reaches a higher layer. */
static void
HnswRaiseEntry(HnswIndexState *state, HnswMemGraph *mem, HnswId id, int level)
{
	if (mem != NULL && mem->shared != NULL)
	{
		HnswBuildShared *sh = mem->shared;

		LWLockAcquire(&sh->entryLock, LW_EXCLUSIVE);
		if (level > sh->entryLevel)
		{
			sh->entry = (int32) id;
			sh->entryLevel = level;
		}
		LWLockRelease(&sh->entryLock);
	}
	else if (mem != NULL)
	{
		if (level > mem->entryLevel)
		{
			mem->entry = (int32) id;
			mem->entryLevel = level;
		}
	}
	else
	{
		ItemPointerData tid;

		HnswIdGetTid(id, &tid);
		HnswUpdateMeta(state->index, 0, HNSW_ENTRY_IF_HIGHER, &tid, level, NULL, NULL);
	}
}

/* ---------- inserting an element ---------- */

/*
 * Starts a search at the graph's entry point.  On disk the entry point may
 * have moved since it was read (vacuum): then the current one is used.
 */
static void
HnswSearchFromEntry(HnswSearch *search, HnswId entry, int *entryLevel)
{
	HnswSearchBeginLayer(search, *entryLevel);
	if (!HnswSearchAddEntry(search, entry))
	{
		HnswMetaPageData meta;

		Assert(search->mem == NULL);
		HnswReadMeta(search->state->index, &meta);
		*entryLevel = meta.entryLevel;
		HnswSearchBeginLayer(search, *entryLevel);
		if (!ItemPointerIsValid(&meta.entry) ||
			!HnswSearchAddEntry(search, HnswTidKey(&meta.entry)))
			elog(ERROR, "crossmodal_hnsw index \"%s\" has no usable entry point",
				 RelationGetRelationName(search->state->index));
	}
}

/*
 * Inserts one prepared vector into the graph (in memory when mem is set,
 * else on disk) as an element on layers 0 .. level: the insertion algorithm
 * of the HNSW paper (Algorithm 1).  Returns false, inserting nothing, when a
 * parallel build's shared memory is full.
 */
bool
HnswInsertElement(HnswIndexState *state, HnswMemGraph *mem, const float4 *vector,
				  ItemPointer heaptid, int level)
{
	int			efc = state->efConstruction;
	char	   *code = palloc(state->codeSize);
	HnswQuery	query;
	HnswId		entry;
	int			entryLevel;
	HnswSearch	search;
	HnswCandidate *neighbors[HNSW_MAX_LEVEL + 1];
	int			nneighbors[HNSW_MAX_LEVEL + 1] = {0};
	HnswCandidate newc;
	HnswCodeMap codes;

	HnswMakeQuery(state, vector, &query);
	HnswEncode(state, &query, vector, code);
	if (!HnswGetEntry(state, mem, &entry, &entryLevel))
	{
		switch (HnswStoreFirst(state, mem, code, vector, heaptid, level))
		{
			case HNSW_STORED:
				return true;
			case HNSW_FULL:
				return false;
			case HNSW_TAKEN:
				if (!HnswGetEntry(state, mem, &entry, &entryLevel))
					elog(ERROR, "crossmodal_hnsw graph lost its entry point");
				break;
		}
	}

	HnswSearchInit(&search, state, mem, &query, efc, true);
	HnswSearchFromEntry(&search, entry, &entryLevel);

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
	search.skipDeleted = !(search.pool[0].flags & HNSW_CAND_DELETED);

	/* Greedy descent through the layers above the new element's. */
	if (!HnswSearchDescend(&search, level))
		elog(ERROR, "crossmodal_hnsw index \"%s\" lost its path above layer %d",
			 RelationGetRelationName(state->index), level);

	/* On each of the element's layers: find efConstruction candidates, pick links. */
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
	{
		int			maxn = HnswLevelSlots(state->m, lc);
		int		   *order = palloc(sizeof(int) * (efc + 1));
		int			nfound;
		HnswCandidate *found;
		int		   *selected = palloc(sizeof(int) * maxn);

		HnswSearchLayer(&search, efc, 0);
		nfound = HnswSearchResults(&search, order);
		found = palloc(sizeof(HnswCandidate) * Max(nfound, 1));
		for (int i = 0; i < nfound; i++)
			found[i] = search.pool[order[i]];
		nneighbors[lc] = HnswSelectNeighbors(state, code, found, nfound, maxn, selected);
		neighbors[lc] = palloc(sizeof(HnswCandidate) * Max(nneighbors[lc], 1));
		for (int i = 0; i < nneighbors[lc]; i++)
			neighbors[lc][i] = found[selected[i]];
		if (lc > 0)
		{
			HnswSearchBeginLayer(&search, lc - 1);
			for (int i = 0; i < nfound; i++)
				HnswSearchAddCandidate(&search, &found[i]);
		}
	}

	newc.id = HnswStoreElement(state, mem, code, vector, heaptid, level, neighbors, nneighbors);
	if (newc.id == HNSW_INVALID_ID)
		return false;
	newc.flags = 0;
	newc.level = level;
	newc.heaptid = *heaptid;
	newc.code = code;

	/* Link back from every chosen neighbour. */
	if (mem == NULL)
		HnswCodeMapInit(&codes, &search);
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
		HnswLinkBack(state, mem, &codes, &newc, neighbors[lc], nneighbors[lc], lc);

	if (level > entryLevel)
		HnswRaiseEntry(state, mem, newc.id, level);
	return true;
}
