/*
 * hnswvacuum.c
 *	  VACUUM for crossmodal_hnsw: drop dead elements, repair the links that pointed at them.
 *
 * Three passes over the index:
 *  1. find the elements whose heap tuples are dead;
 *  2. rewrite the neighbour lists of live elements that link to a dead one:
 *     the dead links go, and the freed slots are refilled with the nearest
 *     live elements among the remaining neighbours' and the dead neighbours'
 *     own neighbours (so paths that ran through a dead element survive);
 *     move the entry point off a dead element;
 *  3. wait for in-flight scans and inserts (HNSW_SCAN_LOCK), then free the
 *     dead elements' space and tell the free space map, so later inserts
 *     reuse it instead of growing the index.
 */
#include "postgres.h"

#include "access/genam.h"
#include "commands/defrem.h"
#include "commands/vacuum.h"
#include "funcapi.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

typedef struct HnswVacuumState
{
	Relation	index;
	HnswIndexState state;
	BufferAccessStrategy bstrategy;
	HnswKeySet	dead;			/* index TIDs of dead elements */
	ItemPointerData bestLive;	/* highest-layer live element */
	int			bestLiveLevel;
	double		live;
	MemoryContext tmpCxt;
} HnswVacuumState;

/* Pass 1: collect dead elements. */
static void
HnswCollectDead(HnswVacuumState *vs, IndexBulkDeleteCallback callback, void *callback_state,
				IndexBulkDeleteResult *stats)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	ItemPointerSetInvalid(&vs->bestLive);
	vs->bestLiveLevel = -1;
	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL, vs->bstrategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
		{
			OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		itemid = PageGetItemId(page, off);
				HnswElementTuple etup;
				ItemPointerData tid;

				if (!ItemIdIsNormal(itemid))
					continue;
				etup = (HnswElementTuple) PageGetItem(page, itemid);
				ItemPointerSet(&tid, blkno, off);
				if (callback(&etup->heaptid, callback_state))
				{
					HnswKeySetAdd(&vs->dead, HnswTidKey(&tid));
					stats->tuples_removed += 1;
				}
				else
				{
					vs->live += 1;
					if (etup->level > vs->bestLiveLevel)
					{
						vs->bestLiveLevel = etup->level;
						vs->bestLive = tid;
					}
				}
			}
		}
		UnlockReleaseBuffer(buf);
	}
}

static inline bool
HnswIsDead(HnswVacuumState *vs, ItemPointer tid)
{
	return HnswKeySetContains(&vs->dead, HnswTidKey(tid));
}

/* Reads a copy of the element tuple at tid, or NULL if there is none. */
static HnswElementTuple
HnswReadElement(HnswVacuumState *vs, ItemPointer tid)
{
	Buffer		buf;
	Page		page;
	ItemId		itemid;
	HnswElementTuple copy = NULL;
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);

	if (ItemPointerGetBlockNumber(tid) == HNSW_METAPAGE_BLKNO)
		return NULL;
	buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid),
							 RBM_NORMAL, vs->bstrategy);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS) &&
		offno <= PageGetMaxOffsetNumber(page))
	{
		itemid = PageGetItemId(page, offno);
		if (ItemIdIsNormal(itemid))
		{
			copy = palloc(ItemIdGetLength(itemid));
			memcpy(copy, PageGetItem(page, itemid), ItemIdGetLength(itemid));
		}
	}
	UnlockReleaseBuffer(buf);
	return copy;
}

/* Copies the vector of the element at tid, or NULL (no element, or dead). */
static float4 *
HnswRepairVector(HnswVacuumState *vs, ItemPointer tid, int lc)
{
	HnswElementTuple etup;
	float4	   *v;

	if (HnswIsDead(vs, tid))
		return NULL;
	etup = HnswReadElement(vs, tid);
	if (etup == NULL || etup->level < lc)
		return NULL;
	v = palloc(sizeof(float4) * vs->state.dims);
	memcpy(v, HnswElementVector(etup), sizeof(float4) * vs->state.dims);
	pfree(etup);
	return v;
}

static int
HnswCandidateCmp(const void *a, const void *b)
{
	float		da = ((const HnswCandidate *) a)->dist;
	float		db = ((const HnswCandidate *) b)->dist;

	return (da > db) - (da < db);
}

/*
 * Repairs one live element (a copy in `etup`, living at `tid`) that links to
 * dead elements.  On each affected layer the new list is chosen with the
 * same selection heuristic as inserts, over the live neighbours and the live
 * neighbours of the dead ones: the heuristic keeps the long links between
 * clusters that a nearest-only refill would lose.  The list is written under
 * the page's lock, keeping links that concurrent inserts added meanwhile.
 */
static void
HnswRepairElement(HnswVacuumState *vs, ItemPointer tid, HnswElementTuple etup)
{
	HnswIndexState *state = &vs->state;
	int			m = state->m;
	int			dims = state->dims;
	ItemPointerData *chosenTids[HNSW_MAX_LEVEL + 1];
	float4	   *chosenDists[HNSW_MAX_LEVEL + 1];
	int			nchosen[HNSW_MAX_LEVEL + 1];
	ItemPointerData *origTids[HNSW_MAX_LEVEL + 1];
	Buffer		buf;
	GenericXLogState *xlog;
	Page		page;
	ItemId		itemid;
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	const float4 *self = HnswElementVector(etup);

	for (int lc = 0; lc <= etup->level; lc++)
	{
		int			first = HnswLevelFirstSlot(m, lc);
		int			nslots = HnswLevelSlots(m, lc);
		ItemPointerData *tids = HnswElementTids(etup, dims, m) + first;
		HnswKeySet	seen;
		int			cap = nslots * 4;
		int			ncands = 0;
		HnswCandidate *cands;
		int		   *selected;
		int			nsel;
		bool		anyDead = false;

		nchosen[lc] = -1;		/* layer untouched */
		origTids[lc] = tids;
		for (int i = 0; i < nslots && ItemPointerIsValid(&tids[i]); i++)
			anyDead |= HnswIsDead(vs, &tids[i]);
		if (!anyDead)
			continue;

		HnswKeySetInit(&seen, nslots * 8);
		HnswKeySetAdd(&seen, HnswTidKey(tid));
		cands = palloc(sizeof(HnswCandidate) * cap);
		for (int pass = 0; pass < 2; pass++)
		{
			for (int i = 0; i < nslots && ItemPointerIsValid(&tids[i]); i++)
			{
				ItemPointerData *list = &tids[i];
				int			nlist = 1;
				HnswElementTuple dead = NULL;

				/* pass 0: live neighbours; pass 1: neighbours of dead ones */
				if (HnswIsDead(vs, &tids[i]) != (pass == 1))
					continue;
				if (pass == 1)
				{
					dead = HnswReadElement(vs, &tids[i]);
					if (dead == NULL || dead->level < lc)
						continue;
					list = HnswElementTids(dead, dims, m) + first;
					for (nlist = 0; nlist < nslots && ItemPointerIsValid(&list[nlist]); nlist++)
						;
				}
				for (int j = 0; j < nlist; j++)
				{
					float4	   *v;

					if (!HnswKeySetAdd(&seen, HnswTidKey(&list[j])))
						continue;
					v = HnswRepairVector(vs, &list[j], lc);
					if (v == NULL)
						continue;
					if (ncands == cap)
					{
						cap *= 2;
						cands = repalloc(cands, sizeof(HnswCandidate) * cap);
					}
					memset(&cands[ncands], 0, sizeof(HnswCandidate));
					cands[ncands].tid = list[j];
					cands[ncands].vector = v;
					cands[ncands].dist = HnswDistance(state, self, v);
					ncands++;
				}
				if (dead != NULL)
					pfree(dead);
			}
		}
		qsort(cands, ncands, sizeof(HnswCandidate), HnswCandidateCmp);
		selected = palloc(sizeof(int) * nslots);
		nsel = HnswSelectNeighbors(state, cands, ncands, nslots, selected);
		chosenTids[lc] = palloc(sizeof(ItemPointerData) * Max(nsel, 1));
		chosenDists[lc] = palloc(sizeof(float4) * Max(nsel, 1));
		for (int i = 0; i < nsel; i++)
		{
			chosenTids[lc][i] = cands[selected[i]].tid;
			chosenDists[lc][i] = cands[selected[i]].dist;
		}
		nchosen[lc] = nsel;
	}

	buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid),
							 RBM_NORMAL, vs->bstrategy);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(vs->index);
	page = GenericXLogRegisterBuffer(xlog, buf, 0);
	itemid = offno <= PageGetMaxOffsetNumber(page) ? PageGetItemId(page, offno) : NULL;
	if (itemid != NULL && ItemIdIsNormal(itemid) &&
		ItemPointerEquals(&((HnswElementTuple) PageGetItem(page, itemid))->heaptid,
						  &etup->heaptid))
	{
		HnswElementTuple cur = (HnswElementTuple) PageGetItem(page, itemid);

		for (int lc = 0; lc <= cur->level && lc <= etup->level; lc++)
		{
			int			first = HnswLevelFirstSlot(m, lc);
			int			nslots = HnswLevelSlots(m, lc);
			ItemPointerData *tids = HnswElementTids(cur, dims, m) + first;
			float4	   *dists = HnswElementDists(cur, dims) + first;
			ItemPointerData added[2 * HNSW_MAX_M];
			float4		addedDists[2 * HNSW_MAX_M];
			int			nadded = 0;
			int			n;

			if (nchosen[lc] < 0)
				continue;
			/* Links that concurrent inserts made since our copy. */
			for (int i = 0; i < nslots && ItemPointerIsValid(&tids[i]); i++)
			{
				bool		known = false;

				for (int j = 0; j < nslots && ItemPointerIsValid(&origTids[lc][j]); j++)
					known |= ItemPointerEquals(&origTids[lc][j], &tids[i]);
				if (!known && !HnswIsDead(vs, &tids[i]))
				{
					added[nadded] = tids[i];
					addedDists[nadded++] = dists[i];
				}
			}
			n = 0;
			for (int i = 0; i < nchosen[lc] && n < nslots; i++)
			{
				tids[n] = chosenTids[lc][i];
				dists[n++] = chosenDists[lc][i];
			}
			for (int i = 0; i < nadded && n < nslots; i++)
			{
				tids[n] = added[i];
				dists[n++] = addedDists[i];
			}
			for (int i = n; i < nslots; i++)
				ItemPointerSetInvalid(&tids[i]);
		}
		GenericXLogFinish(xlog);
	}
	else
		GenericXLogAbort(xlog);
	UnlockReleaseBuffer(buf);
}

/* Pass 2: repair links of live elements; move the entry point off the dead. */
static void
HnswRepairGraph(HnswVacuumState *vs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);
	int			m = vs->state.m;
	int			dims = vs->state.dims;

	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		List	   *todo = NIL;
		List	   *todoTids = NIL;
		ListCell   *lc1,
				   *lc2;
		MemoryContext old;

		vacuum_delay_point();
		old = MemoryContextSwitchTo(vs->tmpCxt);
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL, vs->bstrategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
		{
			OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		itemid = PageGetItemId(page, off);
				HnswElementTuple etup;
				ItemPointerData tid;
				ItemPointerData *tids;
				bool		needs = false;

				if (!ItemIdIsNormal(itemid))
					continue;
				ItemPointerSet(&tid, blkno, off);
				if (HnswIsDead(vs, &tid))
					continue;
				etup = (HnswElementTuple) PageGetItem(page, itemid);
				tids = HnswElementTids(etup, dims, m);
				for (int i = 0; i < HnswElementSlots(m, etup->level) && !needs; i++)
					needs = ItemPointerIsValid(&tids[i]) && HnswIsDead(vs, &tids[i]);
				if (needs)
				{
					HnswElementTuple copy = palloc(ItemIdGetLength(itemid));
					ItemPointer tidcopy = palloc(sizeof(ItemPointerData));

					memcpy(copy, etup, ItemIdGetLength(itemid));
					*tidcopy = tid;
					todo = lappend(todo, copy);
					todoTids = lappend(todoTids, tidcopy);
				}
			}
		}
		UnlockReleaseBuffer(buf);

		forboth(lc1, todo, lc2, todoTids)
		{
			CHECK_FOR_INTERRUPTS();
			HnswRepairElement(vs, (ItemPointer) lfirst(lc2), (HnswElementTuple) lfirst(lc1));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(vs->tmpCxt);
	}

	/* Entry point. */
	{
		Buffer		buf = ReadBuffer(vs->index, HNSW_METAPAGE_BLKNO);
		GenericXLogState *xlog;
		HnswMetaPage meta;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(vs->index);
		meta = HnswPageGetMeta(GenericXLogRegisterBuffer(xlog, buf, 0));
		if (ItemPointerIsValid(&meta->entry) && HnswIsDead(vs, &meta->entry))
		{
			meta->entry = vs->bestLive;
			meta->entryLevel = vs->bestLiveLevel;
			GenericXLogFinish(xlog);
		}
		else
			GenericXLogAbort(xlog);
		UnlockReleaseBuffer(buf);
	}
}

/* Pass 3: free the dead elements' space. */
static void
HnswFreeDead(HnswVacuumState *vs, IndexBulkDeleteResult *stats)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	/* Wait until no scan or insert that might still follow a dead link runs. */
	LockPage(vs->index, HNSW_SCAN_LOCK, ExclusiveLock);
	UnlockPage(vs->index, HNSW_SCAN_LOCK, ExclusiveLock);

	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		GenericXLogState *xlog;
		bool		changed = false;
		Size		freespace;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blkno, RBM_NORMAL, vs->bstrategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		xlog = GenericXLogStart(vs->index);
		page = GenericXLogRegisterBuffer(xlog, buf, 0);
		if (PageIsNew(page) || !(HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
		{
			GenericXLogAbort(xlog);
			UnlockReleaseBuffer(buf);
			continue;
		}
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			ItemPointerData tid;

			if (!ItemIdIsNormal(itemid))
				continue;
			ItemPointerSet(&tid, blkno, off);
			if (HnswIsDead(vs, &tid))
			{
				ItemIdSetUnused(itemid);
				changed = true;
			}
		}
		if (changed)
		{
			PageRepairFragmentation(page);
			freespace = PageGetFreeSpace(page);
			GenericXLogFinish(xlog);
		}
		else
		{
			freespace = PageGetFreeSpace(page);
			GenericXLogAbort(xlog);
		}
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(vs->index, blkno, freespace);
	}
	FreeSpaceMapVacuum(vs->index);
	stats->pages_free = 0;
}

IndexBulkDeleteResult *
hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	HnswVacuumState vs;
	HnswMetaPageData meta;
	MemoryContext cxt;
	MemoryContext old;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw vacuum",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&vs, 0, sizeof(vs));
	vs.index = info->index;
	vs.bstrategy = info->strategy;
	HnswReadMeta(info->index, &meta);
	HnswInitState(&vs.state, info->index, &meta);
	HnswKeySetInit(&vs.dead, 1024);
	vs.tmpCxt = AllocSetContextCreate(cxt, "crossmodal_hnsw vacuum element",
									  ALLOCSET_DEFAULT_SIZES);

	HnswCollectDead(&vs, callback, callback_state, stats);
	if (vs.dead.count > 0)
	{
		HnswRepairGraph(&vs);
		HnswFreeDead(&vs, stats);
	}
	stats->num_index_tuples = vs.live;
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	stats->estimated_count = false;

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return stats;
}

IndexBulkDeleteResult *
hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		/* No bulkdelete pass ran: count what is there. */
		BlockNumber nblocks = RelationGetNumberOfBlocks(info->index);

		stats = palloc0(sizeof(IndexBulkDeleteResult));
		for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
		{
			Buffer		buf;
			Page		page;

			vacuum_delay_point();
			buf = ReadBufferExtended(info->index, MAIN_FORKNUM, blkno, RBM_NORMAL,
									 info->strategy);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
			{
				for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
					if (ItemIdIsNormal(PageGetItemId(page, off)))
						stats->num_index_tuples += 1;
			}
			UnlockReleaseBuffer(buf);
		}
		stats->num_pages = nblocks;
		stats->estimated_count = false;
		FreeSpaceMapVacuum(info->index);
	}
	return stats;
}

/*
 * crossmodal_hnsw_heap_tids(index regclass) RETURNS SETOF tid: the heap TIDs
 * of every element stored in the index, read page by page (not through the
 * graph).  For tests and diagnosis: together with a graph scan it tells an
 * element that is missing from one that is unreachable.
 */
PG_FUNCTION_INFO_V1(crossmodal_hnsw_heap_tids);
Datum
crossmodal_hnsw_heap_tids(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	index;
	BlockNumber nblocks;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_rel->relam != get_index_am_oid("crossmodal_hnsw", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a crossmodal_hnsw index", RelationGetRelationName(index))));
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blkno = HNSW_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && (HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
		{
			for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
			{
				ItemId		itemid = PageGetItemId(page, off);
				ItemPointer heaptid;
				Datum		value;
				bool		isnull = false;

				if (!ItemIdIsNormal(itemid))
					continue;
				heaptid = palloc(sizeof(ItemPointerData));
				*heaptid = ((HnswElementTuple) PageGetItem(page, itemid))->heaptid;
				value = PointerGetDatum(heaptid);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			}
		}
		UnlockReleaseBuffer(buf);
	}
	index_close(index, AccessShareLock);
	return (Datum) 0;
}
