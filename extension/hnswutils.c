/*
 * hnswutils.c
 *	  Pages, the metapage, element tuples, stored vectors and the small data structures of crossmodal_hnsw.
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

/* ---------- pages and the metapage ---------- */

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
HnswInitMetaPage(Page page, int dims, int m, int efConstruction, HnswStorage storage,
				 int centroidBlocks)
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
	meta->storage = storage;
	meta->centroidBlocks = centroidBlocks;
	meta->seed = HNSW_ROTATION_SEED;
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
	if (meta->version != HNSW_VERSION && meta->version != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has on-disk version %u, which this version of crossmodal does not read",
						RelationGetRelationName(index), meta->version),
				 errdetail("This version reads crossmodal_hnsw indexes of versions 1 to %u.",
						   HNSW_VERSION),
				 errhint("REINDEX the index.")));
	memcpy(out, meta, sizeof(HnswMetaPageData));
	if (meta->version == 1)
	{
		/* version 1 had no storage forms: its elements are version 2's float4 */
		out->storage = HNSW_STORAGE_FLOAT4;
		out->centroidBlocks = 0;
		out->seed = 0;
	}
	if (out->storage > HNSW_STORAGE_RABITQ)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has an unknown storage form %u",
						RelationGetRelationName(index), out->storage),
				 errhint("REINDEX the index.")));
	UnlockReleaseBuffer(buf);
}

/*
 * Writes the dimensions (when dims > 0) and the entry point (when entry is
 * given; an invalid TID empties the graph) to the metapage, whose buffer the
 * caller holds locked exclusively.
 */
void
HnswApplyMeta(Relation index, Buffer metabuf, int dims, ItemPointer entry, int entryLevel)
{
	GenericXLogState *xlog = GenericXLogStart(index);
	HnswMetaPage meta = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, metabuf, 0));

	if (dims > 0)
		meta->dims = dims;
	if (entry != NULL)
	{
		meta->entry = *entry;
		meta->entryLevel = ItemPointerIsValid(entry) ? entryLevel : -1;
	}
	GenericXLogFinish(xlog);
}

/*
 * The one way the metapage changes after the build wrote it: fixes the
 * dimensions if they are not fixed yet (dims > 0), and moves the entry point
 * as `change` says (IF_CURRENT: only if it is still `expected`).  Returns
 * whether the entry point moved; *after (if given) receives the metapage as
 * it is afterwards.
 */
bool
HnswUpdateMeta(Relation index, int dims, HnswEntryChange change, ItemPointer entry,
			   int entryLevel, ItemPointer expected, HnswMetaPageData *after)
{
	Buffer		buf = ReadBuffer(index, HNSW_METAPAGE_BLKNO);
	HnswMetaPage meta;
	bool		setDims;
	bool		setEntry = false;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = HnswPageGetMeta(BufferGetPage(buf));
	setDims = dims > 0 && meta->dims == 0;
	switch (change)
	{
		case HNSW_ENTRY_KEEP:
			break;
		case HNSW_ENTRY_SET:
			setEntry = true;
			break;
		case HNSW_ENTRY_IF_HIGHER:
			setEntry = !ItemPointerIsValid(&meta->entry) || meta->entryLevel < entryLevel;
			break;
		case HNSW_ENTRY_IF_CURRENT:
			setEntry = ItemPointerEquals(&meta->entry, expected);
			break;
	}
	if (setDims || setEntry)
		HnswApplyMeta(index, buf, setDims ? dims : 0, setEntry ? entry : NULL, entryLevel);
	if (after != NULL)
		memcpy(after, HnswPageGetMeta(BufferGetPage(buf)), sizeof(HnswMetaPageData));
	UnlockReleaseBuffer(buf);
	return setEntry;
}

/* ---------- element tuples ---------- */

/*
 * The element tuple at `tid` on its page (pinned and locked by the caller),
 * or NULL when the slot holds none: a TID on the metapage or past the
 * page's items, a slot VACUUM freed, an element below layer minLevel, or
 * (with heaptid) an element of another heap row.  Links only ever point at
 * element pages, so the page's special space, a cache line of its own, is
 * not looked at.
 */
HnswElementTuple
HnswPageGetElement(Page page, ItemPointer tid, int minLevel, ItemPointer heaptid)
{
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	ItemId		itemid;
	HnswElementTuple etup;

	if (ItemPointerGetBlockNumber(tid) == HNSW_METAPAGE_BLKNO || PageIsNew(page) ||
		offno < FirstOffsetNumber || offno > PageGetMaxOffsetNumber(page))
		return NULL;
	itemid = PageGetItemId(page, offno);
	if (!ItemIdIsNormal(itemid))
		return NULL;
	etup = (HnswElementTuple) PageGetItem(page, itemid);
	if (etup->level < minLevel ||
		(heaptid != NULL && !ItemPointerEquals(&etup->heaptid, heaptid)))
		return NULL;
	return etup;
}

/* A palloc'd copy of the element tuple at tid, or NULL if there is none. */
HnswElementTuple
HnswReadElementCopy(Relation index, BufferAccessStrategy strategy, ItemPointer tid)
{
	Buffer		buf;
	Page		page;
	HnswElementTuple etup;
	HnswElementTuple copy = NULL;

	if (ItemPointerGetBlockNumber(tid) == HNSW_METAPAGE_BLKNO)
		return NULL;
	buf = ReadBufferExtended(index, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid), RBM_NORMAL,
							 strategy);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	etup = HnswPageGetElement(page, tid, 0, NULL);
	if (etup != NULL)
	{
		Size		len = ItemIdGetLength(PageGetItemId(page, ItemPointerGetOffsetNumber(tid)));

		copy = palloc(len);
		memcpy(copy, etup, len);
	}
	UnlockReleaseBuffer(buf);
	return copy;
}

/* A new element tuple with every neighbour slot empty. */
HnswElementTuple
HnswFormElementTuple(HnswIndexState *state, const char *code, ItemPointer heaptid, int level,
					 Size *size)
{
	HnswElementTuple etup;
	ItemPointerData *tids;

	*size = HnswElementTupleSize(state->codeSize, state->m, level);
	etup = palloc0(*size);
	etup->level = level;
	etup->heaptid = *heaptid;
	memcpy(HnswElementCode(etup), code, state->codeSize);
	tids = HnswElementTids(etup, state->codeSize, state->m);
	for (int i = 0; i < HnswElementSlots(state->m, level); i++)
		ItemPointerSetInvalid(&tids[i]);
	return etup;
}

/* ---------- the embedding type ---------- */

const DistanceKernels *hnsw_kernels = NULL;

/*
 * Recognises the embedding type's own distance functions so the graph can
 * call the vectorised kernels directly; anything else (an opclass a user
 * wrote) goes through fmgr.
 */
static HnswMetric
HnswIdentifyMetric(PGFunction fn, bool normalize)
{
	if (fn == crossmodal_cosine_distance && normalize)
		return HNSW_METRIC_COSINE;
	if (fn == crossmodal_l2_distance && !normalize)
		return HNSW_METRIC_L2;
	if (fn == crossmodal_embedding_negative_inner_product && !normalize)
		return HNSW_METRIC_IP;
	if (fn == crossmodal_l1_distance && !normalize)
		return HNSW_METRIC_L1;
	return HNSW_METRIC_OTHER;
}

/* The distance between two vectors through the operator class's support function. */
float
HnswDistanceViaProc(HnswIndexState *state, const float4 *a, const float4 *b)
{
	int			dims = state->dims;
	Embedding  *ea = EmbeddingNew(dims);
	Embedding  *eb = EmbeddingNew(dims);
	double		d;

	memcpy(ea->x, a, sizeof(float4) * dims);
	memcpy(eb->x, b, sizeof(float4) * dims);
	d = DatumGetFloat8(FunctionCall2Coll(state->distanceProc, state->collation,
										 PointerGetDatum(ea), PointerGetDatum(eb)));
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

/* ---------- index state ---------- */

void
HnswInitState(HnswIndexState *state, Relation index, const HnswMetaPageData *meta)
{
	FmgrInfo   *proc;

	memset(state, 0, sizeof(HnswIndexState));
	state->index = index;
	state->m = meta->m;
	state->efConstruction = meta->efConstruction;
	state->storage = (HnswStorage) meta->storage;
	state->seed = meta->seed;
	state->collation = index->rd_indcollation[0];
	proc = index_getprocinfo(index, 1, HNSW_DISTANCE_PROC);
	state->distanceProc = proc;
	state->normalize = OidIsValid(index_getprocid(index, 1, HNSW_NORM_PROC));
	state->metric = HnswIdentifyMetric(proc->fn_addr, state->normalize);
	HnswSetDims(state, meta->dims);
	if (meta->centroidBlocks > 0 && state->storage == HNSW_STORAGE_RABITQ && state->dims > 0)
		HnswReadCentroid(state, meta->centroidBlocks);

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

/* ---------- vectors ---------- */

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
HnswMaxLevel(HnswIndexState *state)
{
	int			level = 0;

	while (level < HNSW_MAX_LEVEL &&
		   MAXALIGN(HnswElementTupleSize(state->codeSize, state->m, level + 1)) <= HNSW_PAGE_CAPACITY)
		level++;
	return level;
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
 * Turns an input datum into the vector the index works with: detoasted,
 * checked against the index's dimensions, unit-normalised for cosine.
 * *indexable is false for a zero vector under cosine (it has no direction).
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

/* Empties the set, keeping its size. */
void
HnswKeySetClear(HnswKeySet *set)
{
	memset(set->keys, 0, sizeof(uint64) * (set->mask + 1));
	set->count = 0;
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
