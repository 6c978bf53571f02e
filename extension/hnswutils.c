/*
 * hnswutils.c
 *	  Graph search, neighbour selection, page and tuple helpers of crossmodal_hnsw.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "commands/vacuum.h"
#include "embedding.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/rel.h"

/* ---------- pages ---------- */

void
HnswInitPage(Page page, uint16 flags)
{
	HnswPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(HnswPageOpaqueData));
	opaque = HnswPageGetOpaque(page);
	opaque->flags = flags;
	opaque->page_id = HNSW_PAGE_ID;
}

void
HnswInitMetaPage(Page page, int dims, int m, int efConstruction)
{
	HnswMetaPage meta;

	HnswInitPage(page, HNSW_PAGE_META);
	meta = HnswPageGetMeta(page);
	memset(meta, 0, sizeof(HnswMetaPageData));
	meta->magic = HNSW_MAGIC;
	meta->version = HNSW_VERSION;
	meta->dims = dims;
	meta->m = m;
	meta->efConstruction = efConstruction;
	ItemPointerSetInvalid(&meta->entry);
	meta->entryLevel = -1;
	((PageHeader) page)->pd_lower = ((char *) meta + sizeof(HnswMetaPageData)) - (char *) page;
}

/* Copies the metapage's contents; errors out on a page that is not ours. */
void
HnswReadMeta(Relation index, HnswMetaPageData *out)
{
	Buffer		buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	Page		page;
	HnswMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	meta = HnswPageGetMeta(page);
	if (PageIsNew(page) || meta->magic != HNSW_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a crossmodal_hnsw index",
						RelationGetRelationName(index))));
	if (meta->version != HNSW_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has version %u, expected %u",
						RelationGetRelationName(index), meta->version, HNSW_VERSION),
				 errhint("REINDEX the index.")));
	memcpy(out, meta, sizeof(HnswMetaPageData));
	UnlockReleaseBuffer(buf);
}

/* ---------- the embedding type ---------- */

const DistanceKernels *hnsw_kernels = NULL;

/* The SQL distance functions of the embedding type (distance.c). */
extern Datum cosine_distance(PG_FUNCTION_ARGS);
extern Datum l2_distance(PG_FUNCTION_ARGS);
extern Datum embedding_negative_inner_product(PG_FUNCTION_ARGS);

/*
 * Recognises the embedding type's own distance functions so the graph can
 * call the vectorised kernels directly; anything else (an opclass a user
 * wrote) goes through fmgr.
 */
HnswMetric
HnswIdentifyMetric(PGFunction fn, bool normalize)
{
	if (fn == cosine_distance && normalize)
		return HNSW_METRIC_COSINE;
	if (fn == l2_distance && !normalize)
		return HNSW_METRIC_L2;
	if (fn == embedding_negative_inner_product && !normalize)
		return HNSW_METRIC_IP;
	return HNSW_METRIC_OTHER;
}

float
HnswKernelViaProc(FmgrInfo *proc, Oid collation, const float4 *a, const float4 *b, int dims)
{
	Embedding  *ea = EmbeddingNew(dims);
	Embedding  *eb = EmbeddingNew(dims);
	double		d;

	memcpy(ea->x, a, sizeof(float4) * dims);
	memcpy(eb->x, b, sizeof(float4) * dims);
	d = DatumGetFloat8(FunctionCall2Coll(proc, collation, PointerGetDatum(ea),
										 PointerGetDatum(eb)));
	pfree(ea);
	pfree(eb);
	return (float) d;
}

/* The elements of an embedding datum (detoasted if needed). */
const float4 *
HnswDatumGetFloats(Datum value, int *dims)
{
	Embedding  *e = DatumGetEmbeddingP(value);

	*dims = e->dim;
	return e->x;
}

/* ---------- index state and distances ---------- */

void
HnswInitState(HnswIndexState *state, Relation index, const HnswMetaPageData *meta)
{
	FmgrInfo   *proc;

	memset(state, 0, sizeof(HnswIndexState));
	state->index = index;
	state->dims = meta->dims;
	state->m = meta->m;
	state->efConstruction = meta->efConstruction;
	state->collation = index->rd_indcollation[0];
	proc = index_getprocinfo(index, 1, HNSW_DISTANCE_PROC);
	state->distanceProc = proc;
	state->normalize = OidIsValid(index_getprocid(index, 1, HNSW_NORM_PROC));
	state->metric = HnswIdentifyMetric(proc->fn_addr, state->normalize);

	/* The per-backend buffer cache, grown to the index's current size. */
	{
		HnswBufferCache *cache = (HnswBufferCache *) index->rd_amcache;
		BlockNumber nblocks = Min(RelationGetNumberOfBlocks(index), HNSW_BUFFER_CACHE_MAX_BLOCKS);

		if (cache == NULL || cache->nblocks < nblocks)
		{
			BlockNumber size = Max(nblocks + nblocks / 4, 64);

			size = Min(size, HNSW_BUFFER_CACHE_MAX_BLOCKS);
			if (cache != NULL)
				pfree(cache);
			cache = MemoryContextAllocZero(index->rd_indexcxt,
										   offsetof(HnswBufferCache, buffers) + sizeof(Buffer) * size);
			cache->nblocks = size;
			index->rd_amcache = cache;
		}
	}
}

/* ReadBuffer for graph searches, through the recent-buffer cache. */
Buffer
HnswReadBuffer(HnswIndexState *state, BlockNumber blkno)
{
	/*
	 * Looked up on every call: a relcache flush frees rd_amcache, so a
	 * pointer kept across calls could dangle.
	 */
	HnswBufferCache *cache = (HnswBufferCache *) state->index->rd_amcache;
	Buffer		buf;

	if (cache == NULL || blkno >= cache->nblocks)
		return ReadBuffer(state->index, blkno);
	buf = cache->buffers[blkno];
	if (BufferIsValid(buf) &&
		ReadRecentBuffer(state->index->rd_node, MAIN_FORKNUM, blkno, buf))
		return buf;
	buf = ReadBuffer(state->index, blkno);
	cache->buffers[blkno] = buf;
	return buf;
}

/*
 * The distance the graph is ordered by.  It is monotonic in the opclass's
 * ordering operator: squared L2 for L2, 1 - dot for unit vectors (cosine),
 * -dot for inner product.  A NULL vector (a NULL query) is at distance 0 from
 * everything.
 */
float
HnswDistance(HnswIndexState *state, const float4 *a, const float4 *b)
{
	if (a == NULL || b == NULL)
		return 0.0f;
	switch (state->metric)
	{
		case HNSW_METRIC_L2:
			return HnswKernelL2Squared(a, b, state->dims);
		case HNSW_METRIC_IP:
			return -HnswKernelDot(a, b, state->dims);
		case HNSW_METRIC_COSINE:
			return 1.0f - HnswKernelDot(a, b, state->dims);
		case HNSW_METRIC_OTHER:
			return HnswKernelViaProc(state->distanceProc, state->collation, a, b, state->dims);
	}
	return 0.0f;				/* keep compiler quiet */
}

void
HnswNormalize(float4 *v, int dims, bool *zero)
{
	double		norm = 0.0;

	for (int i = 0; i < dims; i++)
		norm += (double) v[i] * v[i];
	norm = sqrt(norm);
	*zero = !(norm > 0.0);
	if (*zero)
		return;
	for (int i = 0; i < dims; i++)
		v[i] = (float4) (v[i] / norm);
}

/*
 * Largest layer an element may live on: its tuple must fit on a page, and a
 * few layers above log_m(N) are plenty.
 */
int
HnswMaxLevel(int dims, int m)
{
	int			level = 0;

	while (level < HNSW_MAX_LEVEL &&
		   MAXALIGN(HnswElementTupleSize(dims, m, level + 1)) <= HNSW_PAGE_CAPACITY)
		level++;
	return level;
}

/* Checks that a vector of `dims` dimensions can be indexed with this m. */
void
HnswCheckDims(HnswIndexState *state, int dims)
{
	Size		need = MAXALIGN(HnswElementTupleSize(dims, state->m, 0));

	if (need > HNSW_PAGE_CAPACITY)
	{
		int			maxdims = (int) ((HNSW_PAGE_CAPACITY - HNSW_ELEMENT_HEADER_SIZE
									  - 8 - (sizeof(float4) + sizeof(ItemPointerData))
									  * (Size) HnswElementSlots(state->m, 0)) / sizeof(float4));

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding of %d dimensions is too large for a crossmodal_hnsw index with m = %d",
						dims, state->m),
				 errdetail("An index page holds at most %d dimensions with m = %d.",
						   maxdims, state->m),
				 errhint("Use a smaller m or fewer dimensions.")));
	}
}

/* Draws an element's top layer: floor(-ln(U) / ln(m)), capped. */
int
HnswRandomLevel(int m, int maxLevel, pg_prng_state *prng)
{
	double		u = pg_prng_double(prng);	/* [0, 1) */
	int			level;

	level = (int) floor(-log(1.0 - u) / log((double) m));
	return Min(level, maxLevel);
}

/*
 * Turns an input datum into the vector the index stores: detoasted, checked
 * against the index's dimensions, unit-normalised for cosine.  *indexable is
 * false for a zero vector under cosine (it has no direction).
 */
float4 *
HnswPrepareVector(HnswIndexState *state, Datum value, bool *indexable)
{
	int			dims;
	const float4 *src = HnswDatumGetFloats(value, &dims);
	float4	   *v;

	*indexable = true;
	if (state->dims > 0 && dims != state->dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", state->dims, dims),
				 errdetail("Index \"%s\" holds embeddings of %d dimensions.",
						   RelationGetRelationName(state->index), state->dims)));
	v = palloc(sizeof(float4) * dims);
	memcpy(v, src, sizeof(float4) * dims);
	if (state->normalize)
	{
		bool		zero;

		HnswNormalize(v, dims, &zero);
		if (zero)
			*indexable = false;
	}
	return v;
}

/*
 * The neighbour-selection heuristic of the HNSW paper (its Algorithm 4):
 * walking candidates nearest first, keep one only if it is closer to the new
 * element than to every neighbour kept so far, which spreads the links over
 * directions instead of spending them all inside one cluster.  Slots left
 * free are then filled with the nearest candidates that were passed over, so
 * that sparse regions keep as many links as possible.  `cands` are sorted by
 * distance and carry vectors.  Returns the number selected into `selected`.
 */
int
HnswSelectNeighbors(HnswIndexState *state, HnswCandidate *cands, int ncands,
					int maxNeighbors, int *selected)
{
	int			nselected = 0;
	int		   *passed = palloc(sizeof(int) * Max(ncands, 1));
	int			npassed = 0;

	for (int i = 0; i < ncands && nselected < maxNeighbors; i++)
	{
		bool		keep = true;

		for (int j = 0; j < nselected; j++)
		{
			HnswCandidate *s = &cands[selected[j]];

			if (HnswDistance(state, cands[i].vector, s->vector) < cands[i].dist)
			{
				keep = false;
				break;
			}
		}
		if (keep)
			selected[nselected++] = i;
		else
			passed[npassed++] = i;
	}
	for (int i = 0; i < npassed && nselected < maxNeighbors; i++)
		selected[nselected++] = passed[i];
	pfree(passed);
	return nselected;
}

/* ---------- binary heap of candidate indexes ---------- */

void
HnswHeapInit(HnswHeap *heap, int capacity, bool maxHeap)
{
	heap->capacity = Max(capacity, 16);
	heap->items = palloc(sizeof(int) * heap->capacity);
	heap->count = 0;
	heap->maxHeap = maxHeap;
}

static inline bool
HnswHeapBefore(const HnswHeap *heap, const HnswCandidate *pool, int a, int b)
{
	return heap->maxHeap ? pool[a].dist > pool[b].dist : pool[a].dist < pool[b].dist;
}

void
HnswHeapPush(HnswHeap *heap, int item, const HnswCandidate *pool)
{
	int			i;

	if (heap->count == heap->capacity)
	{
		heap->capacity *= 2;
		heap->items = repalloc(heap->items, sizeof(int) * heap->capacity);
	}
	i = heap->count++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!HnswHeapBefore(heap, pool, item, heap->items[parent]))
			break;
		heap->items[i] = heap->items[parent];
		i = parent;
	}
	heap->items[i] = item;
}

int
HnswHeapPop(HnswHeap *heap, const HnswCandidate *pool)
{
	int			top = heap->items[0];
	int			last = heap->items[--heap->count];
	int			i = 0;

	while (true)
	{
		int			child = 2 * i + 1;

		if (child >= heap->count)
			break;
		if (child + 1 < heap->count &&
			HnswHeapBefore(heap, pool, heap->items[child + 1], heap->items[child]))
			child++;
		if (!HnswHeapBefore(heap, pool, heap->items[child], last))
			break;
		heap->items[i] = heap->items[child];
		i = child;
	}
	if (heap->count > 0)
		heap->items[i] = last;
	return top;
}

int
HnswHeapTop(const HnswHeap *heap)
{
	return heap->items[0];
}

/* ---------- set of 64-bit keys ---------- */

static inline uint32
HnswKeyHash(uint64 key)
{
	key ^= key >> 33;
	key *= UINT64CONST(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return (uint32) key;
}

void
HnswKeySetInit(HnswKeySet *set, uint32 expected)
{
	uint32		size = 64;

	while (size < expected * 2)
		size *= 2;
	set->keys = palloc0(sizeof(uint64) * size);
	set->mask = size - 1;
	set->count = 0;
}

static void
HnswKeySetGrow(HnswKeySet *set)
{
	uint64	   *old = set->keys;
	uint32		oldsize = set->mask + 1;
	uint32		newsize = oldsize * 2;

	set->keys = palloc0(sizeof(uint64) * newsize);
	set->mask = newsize - 1;
	for (uint32 i = 0; i < oldsize; i++)
	{
		if (old[i] != 0)
		{
			uint32		pos = HnswKeyHash(old[i] - 1) & set->mask;

			while (set->keys[pos] != 0)
				pos = (pos + 1) & set->mask;
			set->keys[pos] = old[i];
		}
	}
	pfree(old);
}

/* Adds key; returns false when it was already there. */
bool
HnswKeySetAdd(HnswKeySet *set, uint64 key)
{
	uint32		pos;

	if ((set->count + 1) * 2 > set->mask + 1)
		HnswKeySetGrow(set);
	pos = HnswKeyHash(key) & set->mask;
	while (set->keys[pos] != 0)
	{
		if (set->keys[pos] == key + 1)
			return false;
		pos = (pos + 1) & set->mask;
	}
	set->keys[pos] = key + 1;
	set->count++;
	return true;
}

bool
HnswKeySetContains(const HnswKeySet *set, uint64 key)
{
	uint32		pos = HnswKeyHash(key) & set->mask;

	while (set->keys[pos] != 0)
	{
		if (set->keys[pos] == key + 1)
			return true;
		pos = (pos + 1) & set->mask;
	}
	return false;
}

/* ---------- walking the element pages ---------- */


void
HnswPageWalkBegin(HnswPageWalk *walk, Relation index, BufferAccessStrategy strategy,
				  int lockmode, BlockNumber start, BlockNumber end)
{
	walk->index = index;
	walk->strategy = strategy;
	walk->lockmode = lockmode;
	walk->next = Max(start, HNSW_METAPAGE_BLKNO + 1);
	walk->end = end;
	walk->buf = InvalidBuffer;
}

/* Unlocks and unpins the current page, if any. */
void
HnswPageWalkRelease(HnswPageWalk *walk)
{
	if (BufferIsValid(walk->buf))
		UnlockReleaseBuffer(walk->buf);
	walk->buf = InvalidBuffer;
}

/* Moves to the next element page and returns its buffer; InvalidBuffer at the end. */
Buffer
HnswPageWalkNext(HnswPageWalk *walk)
{
	HnswPageWalkRelease(walk);
	while (walk->next < walk->end)
	{
		Buffer		buf;
		Page		page;

		vacuum_delay_point();	/* also checks for interrupts */
		buf = ReadBufferExtended(walk->index, MAIN_FORKNUM, walk->next++, RBM_NORMAL,
								 walk->strategy);
		LockBuffer(buf, walk->lockmode);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
		{
			walk->buf = buf;
			return buf;
		}
		UnlockReleaseBuffer(buf);
	}
	return InvalidBuffer;
}

/* ---------- graph search on disk ---------- */

void
HnswSearchInit(HnswSearch *search, HnswIndexState *state, const float4 *query,
			   int ef, bool keepVectors)
{
	memset(search, 0, sizeof(HnswSearch));
	search->state = state;
	search->query = query;
	search->ef = ef;
	search->keepVectors = keepVectors;
	search->poolCapacity = Max(ef * 4, 64);
	search->pool = palloc(sizeof(HnswCandidate) * search->poolCapacity);
	HnswHeapInit(&search->candidates, ef * 2, false);
	HnswHeapInit(&search->results, ef + 1, true);
	search->discardedCapacity = 64;
	search->discarded = palloc(sizeof(int) * search->discardedCapacity);
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
	memset(search->visited.keys, 0, sizeof(uint64) * (search->visited.mask + 1));
	search->visited.count = 0;
	search->level = level;
}

/*
 * Reads the element at `tid` into a new pool entry: its distance to the
 * query, heap TID, its neighbour list on the search's layer and, if asked, a
 * copy of its vector.  Returns -1 when the TID holds no element on that
 * layer (a slot freed by vacuum, or reused by an element on fewer layers).
 */
static int
HnswSearchLoadPinned(HnswSearch *search, ItemPointer tid, Buffer buf)
{
	HnswIndexState *state = search->state;
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	Page		page;
	ItemId		itemid;
	HnswElementTuple etup;
	HnswCandidate *c;
	int			idx = -1;

	/*
	 * Links only ever point at element pages (block 0, the metapage, is
	 * never linked and pages never change kind), so the page's special
	 * space, a cache line of its own, is not looked at here.
	 */
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (PageIsNew(page) || offno > PageGetMaxOffsetNumber(page))
		goto done;
	itemid = PageGetItemId(page, offno);
	if (!ItemIdIsNormal(itemid))
		goto done;
	etup = (HnswElementTuple) PageGetItem(page, itemid);
	if (etup->level < search->level)
		goto done;

	if (search->npool == search->poolCapacity)
	{
		search->poolCapacity *= 2;
		search->pool = repalloc(search->pool, sizeof(HnswCandidate) * search->poolCapacity);
	}
	idx = search->npool++;
	c = &search->pool[idx];
	c->dist = HnswDistance(state, search->query, HnswElementVector(etup));
	c->expanded = false;
	c->emitted = false;
	c->deleted = (etup->flags & HNSW_ELEMENT_DELETED) != 0;
	c->level = etup->level;
	c->tid = *tid;
	c->heaptid = etup->heaptid;
	{
		int			first = HnswLevelFirstSlot(state->m, search->level);
		int			nslots = HnswLevelSlots(state->m, search->level);
		ItemPointerData *tids = HnswElementTids(etup, state->dims, state->m) + first;
		int			n = 0;

		while (n < nslots && ItemPointerIsValid(&tids[n]))
			n++;
		c->nneighbors = n;
		c->neighbors = n > 0 ? palloc(sizeof(ItemPointerData) * n) : NULL;
		if (n > 0)
			memcpy(c->neighbors, tids, sizeof(ItemPointerData) * n);
	}
	/*
	 * Keep a copy of the vector only for an element that enters the current
	 * batch: only those can become neighbours (the heuristic needs their
	 * vectors); copying every visited vector would cost more than the search.
	 */
	if (search->keepVectors &&
		(search->results.count < search->ef || search->level > 0 ||
		 c->dist < search->pool[HnswHeapTop(&search->results)].dist))
	{
		c->vector = palloc(sizeof(float4) * state->dims);
		memcpy(c->vector, HnswElementVector(etup), sizeof(float4) * state->dims);
	}
	else
		c->vector = NULL;
done:
	UnlockReleaseBuffer(buf);
	return idx;
}

static int
HnswSearchLoad(HnswSearch *search, ItemPointer tid)
{
	if (ItemPointerGetBlockNumber(tid) == HNSW_METAPAGE_BLKNO)
		return -1;
	return HnswSearchLoadPinned(search, tid,
								HnswReadBuffer(search->state, ItemPointerGetBlockNumber(tid)));
}

static void
HnswSearchDiscard(HnswSearch *search, int idx)
{
	if (search->ndiscarded == search->discardedCapacity)
	{
		search->discardedCapacity *= 2;
		search->discarded = repalloc(search->discarded,
									 sizeof(int) * search->discardedCapacity);
	}
	search->discarded[search->ndiscarded++] = idx;
}

/* Adds a starting element on the current layer; false if it is not there. */
bool
HnswSearchAddEntry(HnswSearch *search, ItemPointer tid, int level)
{
	int			idx;

	(void) level;
	if (!HnswKeySetAdd(&search->visited, HnswTidKey(tid)))
		return true;
	idx = HnswSearchLoad(search, tid);
	if (idx < 0)
		return false;
	search->nvisited++;
	HnswHeapPush(&search->candidates, idx, search->pool);
	/* a starting element enters the batch even if deleted: a batch is never empty */
	HnswHeapPush(&search->results, idx, search->pool);
	return true;
}

/* Admits a freshly visited element into the batch or sets it aside. */
static void
HnswSearchConsider(HnswSearch *search, int idx, int ef)
{
	HnswCandidate *pool = search->pool;
	bool		near = search->results.count < ef ||
		pool[idx].dist < pool[HnswHeapTop(&search->results)].dist;

	/*
	 * An element that vacuum is deleting may still lead to live ones: expand
	 * it like any other, but keep it out of the batch.  Only inserts skip
	 * such elements, and nothing continues an insert's search, so it is not
	 * set aside either.
	 */
	if (search->skipDeleted && pool[idx].deleted)
	{
		if (near)
			HnswHeapPush(&search->candidates, idx, pool);
		return;
	}
	if (near)
	{
		HnswHeapPush(&search->candidates, idx, pool);
		HnswHeapPush(&search->results, idx, pool);
		if (search->results.count > ef)
			HnswSearchDiscard(search, HnswHeapPop(&search->results, pool));
	}
	else
		HnswSearchDiscard(search, idx);
}

/*
 * The layer search of the HNSW paper (Algorithm 2): expand the nearest
 * unexpanded candidate until it is farther than the ef-th best element
 * found.  Stops early once maxVisited elements have been read (0: no bound).
 */
void
HnswSearchLayer(HnswSearch *search, int level, int ef, int64 maxVisited)
{
	Assert(level == search->level);
	(void) level;
	while (search->candidates.count > 0)
	{
		int			cidx = HnswHeapTop(&search->candidates);
		HnswCandidate *c = &search->pool[cidx];
		int			nneighbors;
		ItemPointerData *neighbors;

		if (search->results.count >= ef &&
			c->dist > search->pool[HnswHeapTop(&search->results)].dist)
			break;
		if (maxVisited > 0 && search->nvisited >= maxVisited)
			break;
		HnswHeapPop(&search->candidates, search->pool);
		c->expanded = true;
		nneighbors = c->nneighbors;
		neighbors = c->neighbors;

		CHECK_FOR_INTERRUPTS();

		/*
		 * Pin the pages of all unvisited neighbours first and prefetch their
		 * headers, so the cache misses of one element overlap the others'.
		 */
		{
			Buffer		bufs[2 * HNSW_MAX_M];
			ItemPointerData tids[2 * HNSW_MAX_M];
			int			ntodo = 0;

			for (int i = 0; i < nneighbors; i++)
			{
				Page		page;

				if (!HnswKeySetAdd(&search->visited, HnswTidKey(&neighbors[i])) ||
					ItemPointerGetBlockNumber(&neighbors[i]) == HNSW_METAPAGE_BLKNO)
					continue;
				tids[ntodo] = neighbors[i];
				bufs[ntodo] = HnswReadBuffer(search->state,
										 ItemPointerGetBlockNumber(&neighbors[i]));
				page = BufferGetPage(bufs[ntodo]);
				__builtin_prefetch(page);
				__builtin_prefetch((char *) page + SizeOfPageHeaderData +
								   sizeof(ItemIdData) * (ItemPointerGetOffsetNumber(&neighbors[i]) - 1));
				ntodo++;
			}
			/*
			 * Second stage: the line pointers have arrived; prefetch the
			 * start of each element's vector (the hardware prefetcher
			 * streams the rest once it sees the sequential misses).
			 */
			for (int i = 0; i < ntodo; i++)
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
			for (int i = 0; i < ntodo; i++)
			{
				int			eidx = HnswSearchLoadPinned(search, &tids[i], bufs[i]);	/* may move pool */

				if (eidx < 0)
					continue;
				search->nvisited++;
				HnswSearchConsider(search, eidx, ef);
			}
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
		out[i] = HnswHeapPop(&search->results, search->pool);
		search->pool[out[i]].emitted = true;
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

	if (n == 0 && search->candidates.count == 0)
		return false;
	old = palloc(sizeof(int) * Max(n, 1));
	memcpy(old, search->discarded, sizeof(int) * n);
	search->ndiscarded = 0;
	for (int i = 0; i < n; i++)
	{
		int			idx = old[i];

		if (search->pool[idx].emitted)
			continue;
		if (!search->pool[idx].expanded)
			HnswHeapPush(&search->candidates, idx, search->pool);
		HnswHeapPush(&search->results, idx, search->pool);
		if (search->results.count > search->ef)
			HnswSearchDiscard(search, HnswHeapPop(&search->results, search->pool));
	}
	pfree(old);
	return true;
}
