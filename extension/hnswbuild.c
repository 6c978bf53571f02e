/*
 * hnswbuild.c
 *	  CREATE INDEX for crossmodal_hnsw: the graph is built in memory, then written out page by page.
 *
 * While the graph fits in maintenance_work_mem it lives in local memory:
 * elements are numbered in heap order, neighbour lists hold element numbers,
 * and pruning uses the paper's heuristic with exact vectors at hand.  When
 * the budget is reached, the graph built so far is written to disk (with a
 * NOTICE) and the remaining rows are inserted one by one as ordinary inserts
 * would be: slower, but the build completes.  Pages are written through
 * Generic WAL as full images.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "optimizer/optimizer.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

typedef struct HnswBuildElement
{
	ItemPointerData heaptid;
	uint8		level;
	OffsetNumber offno;			/* position on disk, assigned when written */
	BlockNumber blkno;
	float4	   *vector;
	int32	   *nbr;			/* neighbour element numbers, slots as on disk */
	float4	   *dist;			/* their distances */
	uint8	   *count;			/* used slots per layer */
} HnswBuildElement;

typedef struct HnswPair
{
	float		dist;
	int32		idx;
} HnswPair;

/* Binary heap of (dist, idx) pairs; a min-heap or a max-heap. */
typedef struct HnswPairHeap
{
	HnswPair   *items;
	int			count;
	int			capacity;
	bool		maxHeap;
} HnswPairHeap;

/*
 * Parallel build: the graph lives in one dynamic shared memory segment that
 * every participant inserts into.  Elements are numbered by an atomic
 * counter and carved from an arena by an atomic offset; each element's
 * neighbour lists are guarded by its own LWLock (a participant holds at most
 * one of them at a time), the entry point by entryLock.  An element becomes
 * visible only when a neighbour links to it, after it is complete.
 */
typedef struct HnswSharedElement
{
	LWLock		lock;			/* guards nbr, dist and count */
	ItemPointerData heaptid;
	uint8		level;
	Size		vectorOff;		/* offsets into the arena */
	Size		nbrOff;
	Size		distOff;
	Size		countOff;
} HnswSharedElement;

typedef struct HnswBuildShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	int			trancheId;
	int			capacity;		/* elements */
	Size		arenaSize;
	pg_atomic_uint32 nelements;	/* may run past capacity when full */
	pg_atomic_uint64 arenaUsed;
	pg_atomic_uint32 full;		/* an allocation failed: rows were left out */
	LWLock		entryLock;
	int32		entry;
	int			entryLevel;
	slock_t		mutex;			/* guards the counts below */
	double		heapTuples;
	double		indexTuples;
	int			nparticipants;
} HnswBuildShared;

#define HNSW_SHARED_KEY				UINT64CONST(0xC7055A0D41000001)
#define HNSW_SCAN_KEY				UINT64CONST(0xC7055A0D41000002)

static inline HnswSharedElement *
HnswSharedElements(HnswBuildShared *sh)
{
	return (HnswSharedElement *) ((char *) sh + MAXALIGN(sizeof(HnswBuildShared)));
}

static inline char *
HnswSharedArena(HnswBuildShared *sh)
{
	return (char *) HnswSharedElements(sh) + MAXALIGN(sizeof(HnswSharedElement) * (Size) sh->capacity);
}

typedef struct HnswBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	HnswIndexState state;
	MemoryContext graphCxt;		/* elements, vectors, lists */
	MemoryContext tmpCxt;		/* per tuple */
	Size		memoryLimit;
	bool		onDisk;			/* the graph no longer fits: insert on disk */
	pg_prng_state prng;
	int			maxLevel;

	HnswBuildElement *elements;
	int			nelements;
	int			capacity;
	int			entry;			/* -1 when empty */
	int			entryLevel;

	uint32	   *visitMark;		/* per element: epoch of the last visit */
	uint32		epoch;
	HnswPairHeap candidates;
	HnswPairHeap results;

	double		heapTuples;
	double		indexTuples;

	HnswBuildShared *shared;	/* parallel build, else NULL */
	bool		isLeader;
	HnswKeySet *skip;			/* heap TIDs already in the graph (second pass) */
} HnswBuildState;

/*
 * The element numbered idx.  In a parallel build, this participant's local
 * view of it (pointers into the shared arena) is filled the first time it
 * is needed: an element number is only ever learnt from a list read under a
 * lock the element's creator released after filling it in.
 */
static inline HnswBuildElement *
HnswElem(HnswBuildState *bs, int32 idx)
{
	HnswBuildElement *e = &bs->elements[idx];

	if (bs->shared != NULL && e->vector == NULL)
	{
		HnswSharedElement *se = &HnswSharedElements(bs->shared)[idx];
		char	   *arena = HnswSharedArena(bs->shared);

		e->heaptid = se->heaptid;
		e->level = se->level;
		e->blkno = InvalidBlockNumber;
		e->offno = InvalidOffsetNumber;
		e->nbr = (int32 *) (arena + se->nbrOff);
		e->dist = (float4 *) (arena + se->distOff);
		e->count = (uint8 *) (arena + se->countOff);
		pg_read_barrier();
		e->vector = (float4 *) (arena + se->vectorOff);
	}
	return e;
}

static inline LWLock *
HnswElemLock(HnswBuildState *bs, int32 idx)
{
	return &HnswSharedElements(bs->shared)[idx].lock;
}

/* ---------- pair heaps ---------- */

static void
HnswPairHeapInit(HnswPairHeap *h, int capacity, bool maxHeap)
{
	h->capacity = Max(capacity, 16);
	h->items = palloc(sizeof(HnswPair) * h->capacity);
	h->count = 0;
	h->maxHeap = maxHeap;
}

static inline bool
HnswPairBefore(const HnswPairHeap *h, float a, float b)
{
	return h->maxHeap ? a > b : a < b;
}

static void
HnswPairPush(HnswPairHeap *h, float dist, int32 idx)
{
	int			i;

	if (h->count == h->capacity)
	{
		h->capacity *= 2;
		h->items = repalloc(h->items, sizeof(HnswPair) * h->capacity);
	}
	i = h->count++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!HnswPairBefore(h, dist, h->items[parent].dist))
			break;
		h->items[i] = h->items[parent];
		i = parent;
	}
	h->items[i].dist = dist;
	h->items[i].idx = idx;
}

static HnswPair
HnswPairPop(HnswPairHeap *h)
{
	HnswPair	top = h->items[0];
	HnswPair	last = h->items[--h->count];
	int			i = 0;

	while (true)
	{
		int			child = 2 * i + 1;

		if (child >= h->count)
			break;
		if (child + 1 < h->count &&
			HnswPairBefore(h, h->items[child + 1].dist, h->items[child].dist))
			child++;
		if (!HnswPairBefore(h, h->items[child].dist, last.dist))
			break;
		h->items[i] = h->items[child];
		i = child;
	}
	if (h->count > 0)
		h->items[i] = last;
	return top;
}

/* ---------- the in-memory graph ---------- */

static inline float
HnswBuildDistance(HnswBuildState *bs, const float4 *a, const float4 *b)
{
	return HnswDistance(&bs->state, a, b);
}

/*
 * Layer search over the in-memory graph (Algorithm 2).  Leaves the ef
 * nearest found in `out`, sorted nearest first; returns how many.
 */
static int
HnswBuildSearchLayer(HnswBuildState *bs, const float4 *q, const HnswPair *entries, int nentries,
					 int ef, int lc, HnswPair *out)
{
	HnswPairHeap *C = &bs->candidates;
	HnswPairHeap *W = &bs->results;
	int			m = bs->state.m;
	int			n;

	if (++bs->epoch == 0)
	{
		memset(bs->visitMark, 0, sizeof(uint32) * bs->capacity);	/* wrapped */
		bs->epoch = 1;
	}
	C->count = 0;
	W->count = 0;
	for (int i = 0; i < nentries; i++)
	{
		bs->visitMark[entries[i].idx] = bs->epoch;
		HnswPairPush(C, entries[i].dist, entries[i].idx);
		HnswPairPush(W, entries[i].dist, entries[i].idx);
		if (W->count > ef)
			HnswPairPop(W);
	}
	while (C->count > 0)
	{
		HnswPair	c = HnswPairPop(C);
		HnswBuildElement *ce = HnswElem(bs, c.idx);
		int			first = HnswLevelFirstSlot(m, lc);
		int			cnt;
		int32		list[2 * HNSW_MAX_M];
		int32		todo[2 * HNSW_MAX_M];
		int			ntodo = 0;

		if (W->count >= ef && c.dist > W->items[0].dist)
			break;
		if (bs->shared)
			LWLockAcquire(HnswElemLock(bs, c.idx), LW_SHARED);
		cnt = ce->count[lc];
		memcpy(list, ce->nbr + first, sizeof(int32) * cnt);
		if (bs->shared)
			LWLockRelease(HnswElemLock(bs, c.idx));
		for (int i = 0; i < cnt; i++)
		{
			int32		e = list[i];

			if (bs->visitMark[e] == bs->epoch)
				continue;
			bs->visitMark[e] = bs->epoch;
			todo[ntodo++] = e;
			__builtin_prefetch(HnswElem(bs, e)->vector);
		}
		for (int i = 0; i < ntodo; i++)
		{
			int32		e = todo[i];
			float		d;

			if (i + 1 < ntodo)
			{
				/* the whole next vector: its misses overlap this distance */
				const char *next = (const char *) bs->elements[todo[i + 1]].vector;

				for (int off = 64; off < (int) sizeof(float4) * bs->state.dims; off += 64)
					__builtin_prefetch(next + off);
			}
			d = HnswBuildDistance(bs, q, bs->elements[e].vector);
			if (W->count < ef || d < W->items[0].dist)
			{
				HnswPairPush(C, d, e);
				HnswPairPush(W, d, e);
				if (W->count > ef)
					HnswPairPop(W);
			}
		}
	}
	n = W->count;
	for (int i = n - 1; i >= 0; i--)
		out[i] = HnswPairPop(W);
	return n;
}

/*
 * The selection heuristic (Algorithm 4) on sorted candidates.  Slots it
 * leaves free stay free: a list that is not full takes later links without
 * a new selection, which keeps builds fast and searches short.  Returns the
 * count written to `out` (sorted by distance, like the input).
 */
static int
HnswBuildSelect(HnswBuildState *bs, const HnswPair *cands, int ncands, int maxn, HnswPair *out)
{
	int			n = 0;
	bool	   *kept = palloc0(sizeof(bool) * Max(ncands, 1));

	for (int i = 0; i < ncands && n < maxn; i++)
	{
		const float4 *v = HnswElem(bs, cands[i].idx)->vector;
		bool		keep = true;

		for (int j = 0; j < n; j++)
		{
			if (HnswBuildDistance(bs, v, HnswElem(bs, out[j].idx)->vector) < cands[i].dist)
			{
				keep = false;
				break;
			}
		}
		if (keep)
		{
			out[n++] = cands[i];
			kept[i] = true;
		}
	}
	pfree(kept);
	return n;
}

/*
 * Adds element q (at distance d) to element n's list on layer lc, pruning
 * with the heuristic if full; with `force`, a full list drops its farthest
 * link instead.  Returns whether q is now linked from n.
 */
/*
 * Puts q at distance d into ne's sorted list starting at slot `first`, whose
 * entries 0 .. last - 1 are kept: entry `last` is overwritten (a free slot, or
 * the farthest neighbour being dropped).
 */
static void
HnswBuildListInsert(HnswBuildElement *ne, int first, int last, int32 q, float d)
{
	int			i = last;

	while (i > 0 && ne->dist[first + i - 1] > d)
	{
		ne->nbr[first + i] = ne->nbr[first + i - 1];
		ne->dist[first + i] = ne->dist[first + i - 1];
		i--;
	}
	ne->nbr[first + i] = q;
	ne->dist[first + i] = d;
}

static bool
HnswBuildConnectLocked(HnswBuildState *bs, int32 n, int32 q, float d, int lc, bool force)
{
	HnswBuildElement *ne = &bs->elements[n];
	int			m = bs->state.m;
	int			first = HnswLevelFirstSlot(m, lc);
	int			maxn = HnswLevelSlots(m, lc);
	int			cnt = ne->count[lc];
	HnswPair	cands[2 * HNSW_MAX_M + 1];
	HnswPair	keep[2 * HNSW_MAX_M];
	int			nkeep;
	bool		kept = false;

	if (cnt < maxn)
	{
		HnswBuildListInsert(ne, first, cnt, q, d);
		ne->count[lc] = cnt + 1;
		return true;
	}
	if (force)
	{
		/* drop the farthest (the last), insert in order */
		HnswBuildListInsert(ne, first, cnt - 1, q, d);
		return true;
	}
	/* Lists are kept sorted by distance: merge the new element in. */
	{
		int			j = 0;
		bool		placed = false;

		for (int i = 0; i < cnt; i++)
		{
			if (!placed && d < ne->dist[first + i])
			{
				cands[j].idx = q;
				cands[j++].dist = d;
				placed = true;
			}
			cands[j].idx = ne->nbr[first + i];
			cands[j++].dist = ne->dist[first + i];
		}
		if (!placed)
		{
			cands[j].idx = q;
			cands[j].dist = d;
		}
	}
	nkeep = HnswBuildSelect(bs, cands, cnt + 1, maxn, keep);
	for (int i = 0; i < nkeep; i++)
	{
		ne->nbr[first + i] = keep[i].idx;
		ne->dist[first + i] = keep[i].dist;
		kept |= keep[i].idx == q;
	}
	ne->count[lc] = nkeep;
	return kept;
}

static bool
HnswBuildConnect(HnswBuildState *bs, int32 n, int32 q, float d, int lc, bool force)
{
	bool		linked;

	if (bs->shared == NULL)
		return HnswBuildConnectLocked(bs, n, q, d, lc, force);
	LWLockAcquire(HnswElemLock(bs, n), LW_EXCLUSIVE);
	linked = HnswBuildConnectLocked(bs, n, q, d, lc, force);
	LWLockRelease(HnswElemLock(bs, n));
	return linked;
}

/*
 * Inserts one vector into the in-memory graph (Algorithm 1).  Returns false,
 * inserting nothing, when a parallel build's shared memory is full.
 */
static bool
HnswBuildInsert(HnswBuildState *bs, const float4 *vector, ItemPointer heaptid)
{
	int			m = bs->state.m;
	int			dims = bs->state.dims;
	int			efc = bs->state.efConstruction;
	int			level = HnswRandomLevel(m, bs->maxLevel, &bs->prng);
	int			nslots = HnswElementSlots(m, level);
	MemoryContext old = MemoryContextSwitchTo(bs->graphCxt);
	HnswBuildElement *e;
	int32		q;
	HnswPair   *W;
	HnswPair	ep;
	int			nW;
	int32		entry;
	int			entryLevel;

	if (bs->shared != NULL)
	{
		HnswBuildShared *sh = bs->shared;
		Size		vsize = MAXALIGN(sizeof(float4) * dims);
		Size		nsize = MAXALIGN(sizeof(int32) * nslots);
		Size		dsize = MAXALIGN(sizeof(float4) * nslots);
		Size		csize = MAXALIGN(level + 1);
		uint64		off;
		HnswSharedElement *se;
		char	   *arena = HnswSharedArena(sh);

		/* Space first, then a number: every number handed out is filled in. */
		if (pg_atomic_read_u32(&sh->full))
		{
			MemoryContextSwitchTo(old);
			return false;
		}
		off = pg_atomic_fetch_add_u64(&sh->arenaUsed, vsize + nsize + dsize + csize);
		if (off + vsize + nsize + dsize + csize > sh->arenaSize)
		{
			pg_atomic_write_u32(&sh->full, 1);
			MemoryContextSwitchTo(old);
			return false;
		}
		q = (int32) pg_atomic_fetch_add_u32(&sh->nelements, 1);
		if (q >= sh->capacity)
		{
			pg_atomic_write_u32(&sh->full, 1);
			MemoryContextSwitchTo(old);
			return false;
		}
		se = &HnswSharedElements(sh)[q];
		LWLockInitialize(&se->lock, sh->trancheId);
		se->heaptid = *heaptid;
		se->level = level;
		se->vectorOff = off;
		se->nbrOff = off + vsize;
		se->distOff = off + vsize + nsize;
		se->countOff = off + vsize + nsize + dsize;
		memcpy(arena + se->vectorOff, vector, sizeof(float4) * dims);
		memset(arena + se->countOff, 0, level + 1);
		pg_write_barrier();
		e = HnswElem(bs, q);
		MemoryContextSwitchTo(old);

		/* The first element becomes the entry point. */
		LWLockAcquire(&sh->entryLock, LW_EXCLUSIVE);
		if (sh->entry < 0)
		{
			sh->entry = q;
			sh->entryLevel = level;
			LWLockRelease(&sh->entryLock);
			return true;
		}
		entry = sh->entry;
		entryLevel = sh->entryLevel;
		LWLockRelease(&sh->entryLock);
		goto search;
	}

	if (bs->nelements == bs->capacity)
	{
		int			newcap = bs->capacity * 2;

		bs->elements = repalloc_huge(bs->elements, sizeof(HnswBuildElement) * newcap);
		bs->visitMark = repalloc_huge(bs->visitMark, sizeof(uint32) * newcap);
		memset(bs->visitMark + bs->capacity, 0, sizeof(uint32) * (newcap - bs->capacity));
		bs->capacity = newcap;
	}
	q = bs->nelements++;
	e = &bs->elements[q];
	e->heaptid = *heaptid;
	e->level = level;
	e->blkno = InvalidBlockNumber;
	e->offno = InvalidOffsetNumber;
	e->vector = palloc(sizeof(float4) * dims);
	memcpy(e->vector, vector, sizeof(float4) * dims);
	e->nbr = palloc(sizeof(int32) * nslots);
	e->dist = palloc(sizeof(float4) * nslots);
	e->count = palloc0(level + 1);
	bs->visitMark[q] = 0;
	MemoryContextSwitchTo(old);

	if (bs->entry < 0)
	{
		bs->entry = q;
		bs->entryLevel = level;
		return true;
	}
	entry = bs->entry;
	entryLevel = bs->entryLevel;

search:
	W = palloc(sizeof(HnswPair) * (efc + 1));
	ep.idx = entry;
	ep.dist = HnswBuildDistance(bs, vector, HnswElem(bs, entry)->vector);
	for (int lc = entryLevel; lc > level; lc--)
	{
		nW = HnswBuildSearchLayer(bs, vector, &ep, 1, 1, lc, W);
		ep = W[0];
	}
	nW = 1;
	W[0] = ep;
	for (int lc = Min(level, entryLevel); lc >= 0; lc--)
	{
		HnswPair   *entries = palloc(sizeof(HnswPair) * nW);
		HnswPair	chosen[2 * HNSW_MAX_M];
		int			nchosen;
		int			first = HnswLevelFirstSlot(m, lc);

		memcpy(entries, W, sizeof(HnswPair) * nW);
		nW = HnswBuildSearchLayer(bs, vector, entries, nW, efc, lc, W);
		pfree(entries);
		nchosen = HnswBuildSelect(bs, W, nW, HnswLevelSlots(m, lc), chosen);
		e = HnswElem(bs, q);
		if (bs->shared)
			LWLockAcquire(HnswElemLock(bs, q), LW_EXCLUSIVE);
		for (int i = 0; i < nchosen; i++)
		{
			e->nbr[first + i] = chosen[i].idx;
			e->dist[first + i] = chosen[i].dist;
		}
		e->count[lc] = nchosen;
		if (bs->shared)
			LWLockRelease(HnswElemLock(bs, q));
		{
			bool		linked = false;

			for (int i = 0; i < nchosen; i++)
				linked |= HnswBuildConnect(bs, chosen[i].idx, q, chosen[i].dist, lc, false);
			/* Never leave the new element without a way in. */
			if (!linked && lc == 0 && nchosen > 0)
				HnswBuildConnect(bs, chosen[0].idx, q, chosen[0].dist, lc, true);
		}
	}
	pfree(W);
	if (bs->shared != NULL && level > entryLevel)
	{
		LWLockAcquire(&bs->shared->entryLock, LW_EXCLUSIVE);
		if (level > bs->shared->entryLevel)
		{
			bs->shared->entry = q;
			bs->shared->entryLevel = level;
		}
		LWLockRelease(&bs->shared->entryLock);
	}
	else if (bs->shared == NULL && level > bs->entryLevel)
	{
		bs->entry = q;
		bs->entryLevel = level;
	}
	return true;
}

/* ---------- writing the graph ---------- */

/* Element tuples are packed in element order; returns the blocks needed. */
static BlockNumber
HnswAssignPositions(HnswBuildState *bs, BlockNumber firstBlock)
{
	Size		pageSpace = BLCKSZ - MAXALIGN(sizeof(HnswPageOpaqueData)) - SizeOfPageHeaderData;
	Size		used = 0;
	BlockNumber blkno = firstBlock;
	OffsetNumber offno = FirstOffsetNumber;

	for (int i = 0; i < bs->nelements; i++)
	{
		HnswBuildElement *e = &bs->elements[i];
		Size		need = MAXALIGN(HnswElementTupleSize(bs->state.dims, bs->state.m, e->level))
			+ sizeof(ItemIdData);

		if (used + need > pageSpace)
		{
			blkno++;
			offno = FirstOffsetNumber;
			used = 0;
		}
		e->blkno = blkno;
		e->offno = offno++;
		used += need;
	}
	return bs->nelements > 0 ? blkno + 1 - firstBlock : 0;
}

static HnswElementTuple
HnswBuildFormTuple(HnswBuildState *bs, HnswBuildElement *e, Size *size)
{
	int			m = bs->state.m;
	int			dims = bs->state.dims;
	HnswElementTuple etup;
	ItemPointerData *tids;
	float4	   *dists;

	*size = HnswElementTupleSize(dims, m, e->level);
	etup = palloc0(*size);
	etup->level = e->level;
	etup->heaptid = e->heaptid;
	memcpy(HnswElementVector(etup), e->vector, sizeof(float4) * dims);
	tids = HnswElementTids(etup, dims, m);
	dists = HnswElementDists(etup, dims);
	for (int lc = 0; lc <= e->level; lc++)
	{
		int			first = HnswLevelFirstSlot(m, lc);
		int			nslots = HnswLevelSlots(m, lc);

		for (int i = 0; i < nslots; i++)
		{
			if (i < e->count[lc])
			{
				HnswBuildElement *n = &bs->elements[e->nbr[first + i]];

				ItemPointerSet(&tids[first + i], n->blkno, n->offno);
				dists[first + i] = e->dist[first + i];
			}
			else
			{
				ItemPointerSetInvalid(&tids[first + i]);
				dists[first + i] = 0;
			}
		}
	}
	return etup;
}

/* Writes the in-memory graph after the metapage and points the metapage at its entry. */
static void
HnswFlushGraph(HnswBuildState *bs)
{
	BlockNumber firstBlock = RelationGetNumberOfBlocks(bs->index);
	BlockNumber npages;
	int			i = 0;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_WRITE);
	npages = HnswAssignPositions(bs, firstBlock);
	for (BlockNumber p = 0; p < npages; p++)
	{
		Buffer		buf;
		Page		page;
		GenericXLogState *xlog;
		MemoryContext old = MemoryContextSwitchTo(bs->tmpCxt);

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(bs->index, MAIN_FORKNUM, P_NEW, RBM_NORMAL, NULL);
		if (BufferGetBlockNumber(buf) != firstBlock + p)
			elog(ERROR, "unexpected block %u while writing crossmodal_hnsw index \"%s\"",
				 BufferGetBlockNumber(buf), RelationGetRelationName(bs->index));
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(bs->index);
		page = GenericXLogRegisterBuffer(xlog, buf, GENERIC_XLOG_FULL_IMAGE);
		HnswInitPage(page, HNSW_PAGE_ELEMENTS);
		for (; i < bs->nelements && bs->elements[i].blkno == firstBlock + p; i++)
		{
			Size		size;
			HnswElementTuple etup = HnswBuildFormTuple(bs, &bs->elements[i], &size);

			if (PageAddItem(page, (Item) etup, size, InvalidOffsetNumber, false, false)
				!= bs->elements[i].offno)
				elog(ERROR, "failed to add element tuple to index \"%s\"",
					 RelationGetRelationName(bs->index));
		}
		GenericXLogFinish(xlog);
		UnlockReleaseBuffer(buf);
		MemoryContextSwitchTo(old);
		MemoryContextReset(bs->tmpCxt);
	}

	/* The metapage: dimensions and entry point. */
	{
		Buffer		buf = ReadBuffer(bs->index, HNSW_METAPAGE_BLKNO);
		GenericXLogState *xlog;
		HnswMetaPage meta;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(bs->index);
		meta = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, buf, 0));
		meta->dims = bs->state.dims;
		if (bs->entry >= 0)
		{
			ItemPointerSet(&meta->entry, bs->elements[bs->entry].blkno,
						   bs->elements[bs->entry].offno);
			meta->entryLevel = bs->entryLevel;
		}
		GenericXLogFinish(xlog);
		UnlockReleaseBuffer(buf);
	}
}

/* ---------- the heap scan ---------- */

static void
HnswBuildCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
				  bool tupleIsAlive, void *state)
{
	HnswBuildState *bs = (HnswBuildState *) state;
	MemoryContext old;
	float4	   *vector;
	bool		indexable;

	bs->heapTuples += 1;
	if (isnull[0])
		return;
	if (bs->skip != NULL && HnswKeySetContains(bs->skip, HnswTidKey(tid)))
		return;

	old = MemoryContextSwitchTo(bs->tmpCxt);
	if (bs->state.dims == 0)
	{
		int			dims;

		(void) HnswDatumGetFloats(values[0], &dims);
		HnswCheckDims(&bs->state, dims);
		bs->state.dims = dims;
		bs->maxLevel = HnswMaxLevel(dims, bs->state.m);
	}
	vector = HnswPrepareVector(&bs->state, values[0], &indexable);
	if (indexable)
	{
		if (bs->shared != NULL)
		{
			/* A row that finds the shared graph full is left for the leader. */
			if (HnswBuildInsert(bs, vector, tid))
				bs->indexTuples += 1;
			if (bs->isLeader)
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
											 pg_atomic_read_u32(&bs->shared->nelements));
			MemoryContextSwitchTo(old);
			MemoryContextReset(bs->tmpCxt);
			return;
		}
		if (!bs->onDisk && MemoryContextMemAllocated(bs->graphCxt, true) > bs->memoryLimit)
		{
			ereport(NOTICE,
					(errmsg("crossmodal_hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
							bs->indexTuples),
					 errdetail("Building will take significantly longer."),
					 errhint("Increase maintenance_work_mem to speed up builds.")));
			HnswFlushGraph(bs);
			MemoryContextReset(bs->graphCxt);
			bs->elements = NULL;
			bs->visitMark = NULL;
			bs->onDisk = true;
			pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
		}
		if (bs->onDisk)
			HnswInsertVector(&bs->state, vector, tid, &bs->prng);
		else
			HnswBuildInsert(bs, vector, tid);
		bs->indexTuples += 1;
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->indexTuples);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCxt);
}

static void
HnswWriteMetaPage(Relation index, ForkNumber fork, int dims, int m, int efConstruction)
{
	Buffer		buf;
	GenericXLogState *xlog;
	Page		page;

	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	Assert(BufferGetBlockNumber(buf) == HNSW_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(xlog, buf, GENERIC_XLOG_FULL_IMAGE);
	HnswInitMetaPage(page, dims, m, efConstruction);
	GenericXLogFinish(xlog);
	UnlockReleaseBuffer(buf);
}

/* ---------- parallel build ---------- */

PGDLLEXPORT void HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc);

/* One participant's share: scan its part of the heap, insert into the shared graph. */
static void
HnswParallelParticipate(HnswBuildShared *sh, ParallelTableScanDesc pscan, Relation heap,
						Relation index, IndexInfo *indexInfo, bool isLeader)
{
	HnswBuildState bs;
	HnswMetaPageData meta;
	TableScanDesc scan;
	int			efc;

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	bs.shared = sh;
	bs.isLeader = isLeader;
	HnswReadMeta(index, &meta);
	HnswInitState(&bs.state, index, &meta);
	bs.maxLevel = HnswMaxLevel(bs.state.dims, bs.state.m);
	pg_prng_seed(&bs.prng, UINT64CONST(0x5eed0f4e5a1c0de) ^ (uint64) MyProcPid);
	bs.graphCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build graph",
										ALLOCSET_DEFAULT_SIZES);
	bs.tmpCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build tuple",
									  ALLOCSET_DEFAULT_SIZES);
	bs.capacity = sh->capacity;
	bs.elements = MemoryContextAllocExtended(bs.graphCxt, sizeof(HnswBuildElement) * (Size) sh->capacity,
											 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	bs.visitMark = MemoryContextAllocExtended(bs.graphCxt, sizeof(uint32) * (Size) sh->capacity,
											  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	efc = bs.state.efConstruction;
	{
		MemoryContext old = MemoryContextSwitchTo(bs.graphCxt);

		HnswPairHeapInit(&bs.candidates, efc * 4, false);
		HnswPairHeapInit(&bs.results, efc + 2, true);
		MemoryContextSwitchTo(old);
	}

	scan = table_beginscan_parallel(heap, pscan);
	table_index_build_scan(heap, index, indexInfo, true, isLeader, HnswBuildCallback, &bs, scan);

	ereport(DEBUG1,
			(errmsg_internal("crossmodal_hnsw parallel build: %s inserted %.0f tuples",
							 isLeader ? "leader" : "worker", bs.indexTuples)));
	SpinLockAcquire(&sh->mutex);
	sh->heapTuples += bs.heapTuples;
	sh->indexTuples += bs.indexTuples;
	sh->nparticipants++;
	SpinLockRelease(&sh->mutex);

	MemoryContextDelete(bs.graphCxt);
	MemoryContextDelete(bs.tmpCxt);
}

/* Entry point of a parallel build worker. */
void
HnswParallelBuildMain(dsm_segment *seg, shm_toc *toc)
{
	HnswBuildShared *sh = shm_toc_lookup(toc, HNSW_SHARED_KEY, false);
	ParallelTableScanDesc pscan = shm_toc_lookup(toc, HNSW_SCAN_KEY, false);
	LOCKMODE	heapLock = sh->isconcurrent ? ShareUpdateExclusiveLock : ShareLock;
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;

	LWLockRegisterTranche(sh->trancheId, "crossmodal_hnsw_build");
	heap = table_open(sh->heaprelid, heapLock);
	index = index_open(sh->indexrelid, RowExclusiveLock);
	indexInfo = BuildIndexInfo(index);
	indexInfo->ii_Concurrent = sh->isconcurrent;
	HnswParallelParticipate(sh, pscan, heap, index, indexInfo, false);
	index_close(index, RowExclusiveLock);
	table_close(heap, heapLock);
}

/*
 * Builds the graph with parallel workers into shared memory and writes it.
 * Returns false (nothing done) when a parallel build is not possible: the
 * estimated graph does not fit maintenance_work_mem, or no shared memory.
 */
static bool
HnswBuildParallel(HnswBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo,
				  int nworkers)
{
	int			dims = bs->state.dims;
	int			m = bs->state.m;
	double		reltuples = heap->rd_rel->reltuples;
	double		capacity;
	Size		perElement;
	Size		arenaSize;
	Size		sharedSize;
	Size		scanSize;
	ParallelContext *pcxt;
	Snapshot	snapshot;
	HnswBuildShared *sh;
	ParallelTableScanDesc pscan;
	int			n;
	bool		full;
	HnswKeySet	inGraph;

	if (reltuples < 0)			/* never vacuumed or analyzed: guess from the size */
		reltuples = (double) RelationGetNumberOfBlocks(heap) *
			(BLCKSZ / (double) (sizeof(float4) * dims + 40));
	capacity = reltuples * 1.2 + 1024;
	perElement = MAXALIGN(sizeof(float4) * dims) + 2 * MAXALIGN(sizeof(int32) * 3 * m) + MAXALIGN(4);
	if (capacity > INT_MAX / 2 ||
		capacity * (perElement + sizeof(HnswSharedElement)) > (double) bs->memoryLimit)
		return false;
	arenaSize = (Size) capacity * perElement;
	sharedSize = MAXALIGN(sizeof(HnswBuildShared)) +
		MAXALIGN(sizeof(HnswSharedElement) * (Size) capacity) + arenaSize;

	EnterParallelMode();
	pcxt = CreateParallelContext("crossmodal", "HnswParallelBuildMain", nworkers);
	snapshot = indexInfo->ii_Concurrent ? RegisterSnapshot(GetTransactionSnapshot()) : SnapshotAny;
	scanSize = table_parallelscan_estimate(heap, snapshot);
	shm_toc_estimate_chunk(&pcxt->estimator, sharedSize);
	shm_toc_estimate_chunk(&pcxt->estimator, scanSize);
	shm_toc_estimate_keys(&pcxt->estimator, 2);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		if (IsMVCCSnapshot(snapshot))
			UnregisterSnapshot(snapshot);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}

	sh = shm_toc_allocate(pcxt->toc, sharedSize);
	memset(sh, 0, MAXALIGN(sizeof(HnswBuildShared)));
	sh->heaprelid = RelationGetRelid(heap);
	sh->indexrelid = RelationGetRelid(index);
	sh->isconcurrent = indexInfo->ii_Concurrent;
	sh->trancheId = LWLockNewTrancheId();
	sh->capacity = (int) capacity;
	sh->arenaSize = arenaSize;
	pg_atomic_init_u32(&sh->nelements, 0);
	pg_atomic_init_u64(&sh->arenaUsed, 0);
	pg_atomic_init_u32(&sh->full, 0);
	LWLockRegisterTranche(sh->trancheId, "crossmodal_hnsw_build");
	LWLockInitialize(&sh->entryLock, sh->trancheId);
	sh->entry = -1;
	sh->entryLevel = -1;
	SpinLockInit(&sh->mutex);
	pscan = shm_toc_allocate(pcxt->toc, scanSize);
	table_parallelscan_initialize(heap, pscan, snapshot);
	shm_toc_insert(pcxt->toc, HNSW_SHARED_KEY, sh);
	shm_toc_insert(pcxt->toc, HNSW_SCAN_KEY, pscan);

	LaunchParallelWorkers(pcxt);
	ereport(DEBUG1,
			(errmsg_internal("crossmodal_hnsw parallel build: %d of %d workers launched",
							 pcxt->nworkers_launched, nworkers)));
	HnswParallelParticipate(sh, pscan, heap, index, indexInfo, true);
	WaitForParallelWorkersToFinish(pcxt);

	/* Write the shared graph from the leader's view of it. */
	n = (int) Min(pg_atomic_read_u32(&sh->nelements), (uint32) sh->capacity);
	bs->shared = sh;
	bs->capacity = sh->capacity;
	bs->elements = MemoryContextAllocExtended(bs->graphCxt, sizeof(HnswBuildElement) * (Size) sh->capacity,
											  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int i = 0; i < n; i++)
		(void) HnswElem(bs, i);
	bs->nelements = n;
	bs->entry = sh->entry;
	bs->entryLevel = sh->entryLevel;
	HnswFlushGraph(bs);
	bs->heapTuples = sh->heapTuples;
	bs->indexTuples = sh->indexTuples;
	bs->shared = NULL;

	full = pg_atomic_read_u32(&sh->full) != 0;
	if (full)
	{
		HnswKeySetInit(&inGraph, (uint32) n);
		for (int i = 0; i < n; i++)
			HnswKeySetAdd(&inGraph, HnswTidKey(&bs->elements[i].heaptid));
	}
	bs->elements = NULL;

	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();

	/*
	 * The table held more rows than its statistics promised: insert the
	 * rows that were left out one by one, on disk, in a second (serial) pass
	 * that skips every row already in the graph.
	 */
	if (full)
	{
		ereport(NOTICE,
				(errmsg("crossmodal_hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
						bs->indexTuples),
				 errdetail("Building will take significantly longer."),
				 errhint("Increase maintenance_work_mem to speed up builds.")));
		bs->skip = &inGraph;
		bs->onDisk = true;
		bs->heapTuples = 0;
		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
		table_index_build_scan(heap, index, indexInfo, true, true, HnswBuildCallback, bs, NULL);
		bs->skip = NULL;
	}
	return true;
}

IndexBuildResult *
hnswbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	HnswBuildState bs;
	HnswMetaPageData meta;
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	int			m = HnswGetM(index);
	int			efc = HnswGetEfConstruction(index);

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	HnswWriteMetaPage(index, MAIN_FORKNUM, typmod > 0 ? typmod : 0, m, efc);
	HnswReadMeta(index, &meta);
	HnswInitState(&bs.state, index, &meta);
	if (bs.state.dims > 0)
	{
		HnswCheckDims(&bs.state, bs.state.dims);
		bs.maxLevel = HnswMaxLevel(bs.state.dims, m);
	}

	/* A fixed seed: the same table gives the same graph. */
	pg_prng_seed(&bs.prng, UINT64CONST(0x5eed0f4e5a1c0de));
	bs.memoryLimit = (Size) maintenance_work_mem * 1024;
	bs.graphCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build graph",
										ALLOCSET_DEFAULT_SIZES);
	bs.tmpCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build tuple",
									  ALLOCSET_DEFAULT_SIZES);
	bs.capacity = 1024;
	bs.elements = MemoryContextAlloc(bs.graphCxt, sizeof(HnswBuildElement) * bs.capacity);
	bs.visitMark = MemoryContextAllocZero(bs.graphCxt, sizeof(uint32) * bs.capacity);
	bs.entry = -1;
	bs.entryLevel = -1;
	{
		MemoryContext old = MemoryContextSwitchTo(bs.graphCxt);

		HnswPairHeapInit(&bs.candidates, efc * 4, false);
		HnswPairHeapInit(&bs.results, efc + 2, true);
		MemoryContextSwitchTo(old);
	}

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
	if (heap->rd_rel->reltuples > 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
									 (int64) heap->rd_rel->reltuples);
	{
		/* Parallel when the dimensions are known up front and workers are allowed. */
		int			nworkers = 0;
		bool		done = false;

		if (bs.state.dims > 0 && IsNormalProcessingMode() && !IsParallelWorker())
			nworkers = plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));
		if (nworkers > 0)
			done = HnswBuildParallel(&bs, heap, index, indexInfo, nworkers);
		if (!done)
		{
			table_index_build_scan(heap, index, indexInfo, true, true, HnswBuildCallback, &bs, NULL);
			if (!bs.onDisk)
				HnswFlushGraph(&bs);
		}
	}

	MemoryContextDelete(bs.graphCxt);
	MemoryContextDelete(bs.tmpCxt);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = bs.heapTuples;
	result->index_tuples = bs.indexTuples;
	return result;
}

/* An unlogged index's init fork: just the metapage. */
void
hnswbuildempty(Relation index)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	HnswWriteMetaPage(index, INIT_FORKNUM, typmod > 0 ? typmod : 0, HnswGetM(index),
					  HnswGetEfConstruction(index));
}

char *
hnswbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case HNSW_PHASE_LOAD:
			return "building graph";
		case HNSW_PHASE_WRITE:
			return "writing graph";
		default:
			return NULL;
	}
}
