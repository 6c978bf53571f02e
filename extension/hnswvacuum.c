/*
 * hnswvacuum.c
 *	  VACUUM for crossmodal_hnsw: drop dead elements, repair the links that pointed at them.
 *
 * The dead elements are handled in batches that fit maintenance_work_mem
 * (autovacuum_work_mem in autovacuum), as the heap's own vacuum handles its
 * dead TIDs.  Each batch goes through five steps:
 *  1. walk on from where the last batch stopped, collecting dead elements
 *     (with a copy of their neighbour lists) until the memory is used up,
 *     and mark them HNSW_ELEMENT_DELETED, so that inserts starting from now
 *     on do not link to them;
 *  2. wait for in-flight scans and inserts (HNSW_SCAN_LOCK) and, while none
 *     can start, move the entry point off a dead element;
 *  3. rewrite the neighbour lists of live elements that link to a dead one:
 *     the dead links go, and the freed slots are refilled from the remaining
 *     neighbours and the dead neighbours' own neighbours (so paths that ran
 *     through a dead element survive);
 *  4. link back the live elements that no live element links to on layer 0
 *     any more, as an insert links a new element: else no search reaches
 *     them (a repaired list holds one copy of an embedding stored many
 *     times, so copies whose links all came from dead copies were lost);
 *  5. wait for scans and inserts again, then free the batch's space and tell
 *     the free space map, so later inserts reuse it instead of growing the
 *     index.
 * Step 2's wait is what makes step 3 complete: every element inserted
 * before it is on a page that step 3 walks, and every later insert sees the
 * marks.
 *
 * A VACUUM with nothing to delete (cleanup alone) counts the elements and
 * runs step 4 over every element, for those that inserts left with no link
 * leading to them.
 */
#include "postgres.h"

#include "access/genam.h"
#include "commands/defrem.h"
#include "commands/vacuum.h"
#include "crossmodal.h"
#include "funcapi.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

/* A dead element of the current batch, with its neighbour lists. */
typedef struct HnswDeadElement
{
	uint64		key;			/* HnswTidKey of its index TID; the hash key */
	int			level;
	ItemPointerData *tids;		/* [HnswElementSlots(m, level)] */
} HnswDeadElement;

typedef struct HnswVacuumState
{
	Relation	index;
	HnswIndexState state;
	BufferAccessStrategy bstrategy;
	Size		budget;			/* bytes the dead batch may hold */
	MemoryContext deadCxt;		/* the batch: hash table and neighbour lists */
	HTAB	   *dead;			/* HnswDeadElement by key */
	BlockNumber nblocks;		/* blocks when vacuum began: no dead element lies beyond */
	BlockNumber nextBlock;		/* where the next batch's collection starts */
	BlockNumber batchStart;		/* the current batch's blocks */
	BlockNumber batchEnd;
	double		live;
	HnswKeySet	atRisk;			/* live elements that lost a link on layer 0 (in deadCxt) */
	double		relinked;
	double		items;			/* elements HnswRelinkOrphans walked over */
	MemoryContext cxt;			/* everything below */
	MemoryContext tmpCxt;
} HnswVacuumState;

/* Sets up what bulkdelete and cleanup share; its memory lives in vs->cxt. */
static void
HnswVacuumBegin(HnswVacuumState *vs, IndexVacuumInfo *info, int *memKb)
{
	HnswMetaPageData meta;

	memset(vs, 0, sizeof(*vs));
	vs->cxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw vacuum",
									ALLOCSET_DEFAULT_SIZES);
	vs->index = info->index;
	vs->bstrategy = info->strategy;
	HnswReadMeta(info->index, &meta);
	HnswInitState(&vs->state, info->index, &meta);
	*memKb = (IsAutoVacuumWorkerProcess() && autovacuum_work_mem != -1) ?
		autovacuum_work_mem : maintenance_work_mem;
	vs->budget = (Size) *memKb * 1024;
	vs->deadCxt = AllocSetContextCreate(vs->cxt, "crossmodal_hnsw vacuum dead elements",
										ALLOCSET_DEFAULT_SIZES);
	vs->tmpCxt = AllocSetContextCreate(vs->cxt, "crossmodal_hnsw vacuum element",
									   ALLOCSET_DEFAULT_SIZES);
	vs->nblocks = RelationGetNumberOfBlocks(info->index);
	vs->nextBlock = HNSW_METAPAGE_BLKNO + 1;
}

static void
HnswDeadBatchReset(HnswVacuumState *vs)
{
	HASHCTL		ctl;
	MemoryContext old;

	MemoryContextReset(vs->deadCxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(HnswDeadElement);
	ctl.hcxt = vs->deadCxt;
	vs->dead = hash_create("crossmodal_hnsw dead elements", 1024, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(vs->deadCxt);
	HnswKeySetInit(&vs->atRisk, 1024);
	MemoryContextSwitchTo(old);
}

/*
 * Notes that the element at tid lost a link on layer 0 (it may be one of
 * the batch's dead elements: step 4 passes over those).
 */
static void
HnswNoteAtRisk(HnswVacuumState *vs, ItemPointer tid)
{
	MemoryContext old = MemoryContextSwitchTo(vs->deadCxt);

	HnswKeySetAdd(&vs->atRisk, HnswTidKey(tid));
	MemoryContextSwitchTo(old);
}

static inline HnswDeadElement *
HnswFindDead(HnswVacuumState *vs, ItemPointer tid)
{
	uint64		key = HnswTidKey(tid);

	return (HnswDeadElement *) hash_search(vs->dead, &key, HASH_FIND, NULL);
}

static inline bool
HnswIsDead(HnswVacuumState *vs, ItemPointer tid)
{
	return HnswFindDead(vs, tid) != NULL;
}

/*
 * Step 1: from vs->nextBlock on, collect and mark dead elements, noting
 * their neighbours on layer 0 as at risk, until the batch fills its memory
 * (checked after each page, so a batch may exceed the budget by one page's
 * elements) or the blocks run out.
 */
static void
HnswCollectDeadBatch(HnswVacuumState *vs, IndexBulkDeleteCallback callback,
					 void *callback_state, IndexBulkDeleteResult *stats)
{
	HnswPageWalk walk;
	Buffer		buf;
	int			m = vs->state.m;

	HnswDeadBatchReset(vs);
	vs->batchStart = vs->nextBlock;
	HnswPageWalkBegin(&walk, vs->index, vs->bstrategy, BUFFER_LOCK_EXCLUSIVE,
					  vs->nextBlock, vs->nblocks);
	while (BufferIsValid(buf = HnswPageWalkNext(&walk)))
	{
		GenericXLogState *xlog = GenericXLogStart(vs->index);
		Page		page = GenericXLogRegisterBuffer(xlog, buf, 0);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
		bool		changed = false;

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			HnswElementTuple etup;
			ItemPointerData tid;
			HnswDeadElement *dead;
			uint64		key;
			int			nslots;

			if (!ItemIdIsNormal(itemid))
				continue;
			etup = (HnswElementTuple) PageGetItem(page, itemid);
			if (!callback(&etup->heaptid, callback_state))
			{
				vs->live += 1;
				continue;
			}
			if (!(etup->flags & HNSW_ELEMENT_DELETED))
			{
				etup->flags |= HNSW_ELEMENT_DELETED;
				changed = true;
			}
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
			key = HnswTidKey(&tid);
			dead = (HnswDeadElement *) hash_search(vs->dead, &key, HASH_ENTER, NULL);
			dead->level = etup->level;
			nslots = HnswElementSlots(m, etup->level);
			dead->tids = MemoryContextAlloc(vs->deadCxt, sizeof(ItemPointerData) * nslots);
			memcpy(dead->tids, HnswElementTids(etup, vs->state.codeSize, m),
				   sizeof(ItemPointerData) * nslots);
			for (int i = 0; i < HnswLevelSlots(m, 0) && ItemPointerIsValid(&dead->tids[i]); i++)
				HnswNoteAtRisk(vs, &dead->tids[i]);
			stats->tuples_removed += 1;
		}
		if (changed)
			GenericXLogFinish(xlog);
		else
			GenericXLogAbort(xlog);
		if (MemoryContextMemAllocated(vs->deadCxt, true) >= vs->budget)
			break;
	}
	vs->nextBlock = BufferIsValid(buf) ? BufferGetBlockNumber(buf) + 1 : vs->nblocks;
	vs->batchEnd = vs->nextBlock;
	HnswPageWalkRelease(&walk);
}

/*
 * The code of the element at tid (in a copy of its tuple), or NULL: no
 * element on layer lc there, or a deleted one (of this batch, or marked by
 * an earlier vacuum that did not finish; a later batch removes those).
 */
static const char *
HnswRepairCode(HnswVacuumState *vs, ItemPointer tid, int lc)
{
	HnswElementTuple etup;

	if (HnswIsDead(vs, tid))
		return NULL;
	etup = HnswReadElementCopy(vs->index, vs->bstrategy, tid);
	if (etup == NULL || etup->level < lc || (etup->flags & HNSW_ELEMENT_DELETED))
		return NULL;
	return HnswElementCode(etup);
}

static int
HnswCandidateCmp(const void *a, const void *b)
{
	float		da = ((const HnswCandidate *) a)->dist;
	float		db = ((const HnswCandidate *) b)->dist;

	return (da > db) - (da < db);
}

/*
 * Step 2: if the entry point is dead, the nearest live element that a
 * search from it finds on the highest layer where it finds one becomes the
 * entry point; none at all leaves the graph empty for the next insert to
 * restart.  Caller holds HNSW_SCAN_LOCK exclusively: no insert is in flight
 * that could add a live element this search would miss.
 */
static void
HnswRepairEntryPoint(HnswVacuumState *vs)
{
	HnswMetaPageData meta;
	HnswElementTuple entry;
	HnswSearch	search;
	HnswQuery	query;
	ItemPointerData newEntry;
	int			newLevel = -1;

	HnswReadMeta(vs->index, &meta);
	if (!ItemPointerIsValid(&meta.entry) || !HnswIsDead(vs, &meta.entry))
		return;
	entry = HnswReadElementCopy(vs->index, vs->bstrategy, &meta.entry);
	if (entry == NULL)
		elog(ERROR, "entry point of crossmodal_hnsw index \"%s\" is missing",
			 RelationGetRelationName(vs->index));

	ItemPointerSetInvalid(&newEntry);
	HnswCodeQuery(&vs->state, HnswElementCode(entry), &query,
				  palloc(sizeof(float4) * vs->state.codeDims));
	HnswSearchInit(&search, &vs->state, NULL, &query, 1, false);
	search.skipDeleted = true;
	for (int lc = meta.entryLevel; lc >= 0 && newLevel < 0; lc--)
	{
		int			best;

		HnswSearchBeginLayer(&search, lc);
		HnswSearchAddEntry(&search, HnswTidKey(&meta.entry));
		search.results.count = 0;	/* the dead entry point itself is no answer */
		HnswSearchLayer(&search, 1, 0);
		if (HnswSearchResults(&search, &best) == 1)
		{
			HnswIdGetTid(search.pool[best].id, &newEntry);
			newLevel = search.pool[best].level;
		}
	}
	HnswUpdateMeta(vs->index, 0, HNSW_ENTRY_IF_CURRENT, &newEntry, newLevel, &meta.entry, NULL);
}

/*
 * Repairs one live element (a copy in `etup`, living at `tid`) that links to
 * dead elements.  On each affected layer the new list is chosen with the
 * same selection heuristic as inserts, over the live neighbours and the live
 * neighbours of the dead ones: the heuristic keeps the long links between
 * clusters that a nearest-only refill would lose.  The list is written under
 * the page's lock, keeping links that concurrent inserts added meanwhile.
 * The dead neighbours' lists come from the batch, not from their pages.
 */
static void
HnswRepairElement(HnswVacuumState *vs, ItemPointer tid, HnswElementTuple etup)
{
	HnswIndexState *state = &vs->state;
	int			m = state->m;
	Size		codeSize = state->codeSize;
	ItemPointerData *chosenTids[HNSW_MAX_LEVEL + 1];
	float4	   *chosenDists[HNSW_MAX_LEVEL + 1];
	int			nchosen[HNSW_MAX_LEVEL + 1];
	ItemPointerData *origTids[HNSW_MAX_LEVEL + 1];
	Buffer		buf;
	GenericXLogState *xlog;
	HnswElementTuple cur;
	HnswQuery	self;

	HnswCodeQuery(state, HnswElementCode(etup), &self, palloc(sizeof(float4) * state->codeDims));

	for (int lc = 0; lc <= etup->level; lc++)
	{
		int			first = HnswLevelFirstSlot(m, lc);
		int			nslots = HnswLevelSlots(m, lc);
		ItemPointerData *tids = HnswElementTids(etup, codeSize, m) + first;
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
				HnswDeadElement *dead = HnswFindDead(vs, &tids[i]);

				/* pass 0: live neighbours; pass 1: neighbours of dead ones */
				if ((dead != NULL) != (pass == 1))
					continue;
				if (pass == 1)
				{
					if (dead->level < lc)
						continue;
					list = dead->tids + first;
					for (nlist = 0; nlist < nslots && ItemPointerIsValid(&list[nlist]); nlist++)
						;
				}
				for (int j = 0; j < nlist; j++)
				{
					const char *code;

					if (!HnswKeySetAdd(&seen, HnswTidKey(&list[j])))
						continue;
					code = HnswRepairCode(vs, &list[j], lc);
					if (code == NULL)
						continue;
					if (ncands == cap)
					{
						cap *= 2;
						cands = repalloc(cands, sizeof(HnswCandidate) * cap);
					}
					memset(&cands[ncands], 0, sizeof(HnswCandidate));
					cands[ncands].id = HnswTidKey(&list[j]);
					cands[ncands].code = code;
					cands[ncands].dist = HnswDistance(state, &self, code);
					ncands++;
				}
			}
		}
		qsort(cands, ncands, sizeof(HnswCandidate), HnswCandidateCmp);
		selected = palloc(sizeof(int) * nslots);
		nsel = HnswSelectNeighbors(state, HnswElementCode(etup), cands, ncands, nslots, selected);
		chosenTids[lc] = palloc(sizeof(ItemPointerData) * Max(nsel, 1));
		chosenDists[lc] = palloc(sizeof(float4) * Max(nsel, 1));
		for (int i = 0; i < nsel; i++)
		{
			HnswIdGetTid(cands[selected[i]].id, &chosenTids[lc][i]);
			chosenDists[lc][i] = cands[selected[i]].dist;
		}
		nchosen[lc] = nsel;
	}

	buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, ItemPointerGetBlockNumber(tid),
							 RBM_NORMAL, vs->bstrategy);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(vs->index);
	cur = HnswPageGetElement(GenericXLogRegisterBuffer(xlog, buf, 0), tid, 0, &etup->heaptid);
	if (cur != NULL)
	{
		for (int lc = 0; lc <= cur->level && lc <= etup->level; lc++)
		{
			int			first = HnswLevelFirstSlot(m, lc);
			int			nslots = HnswLevelSlots(m, lc);
			ItemPointerData *tids = HnswElementTids(cur, codeSize, m) + first;
			float4	   *dists = HnswElementDists(cur, codeSize) + first;
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
			/*
			 * Those come first: such a link may be the only one to a new
			 * element, and dropping it could leave that element unreachable;
			 * the repair's own choice fills the slots left.
			 */
			n = 0;
			for (int i = 0; i < nadded; i++)
			{
				tids[n] = added[i];
				dists[n++] = addedDists[i];
			}
			for (int i = 0; i < nchosen[lc] && n < nslots; i++)
			{
				bool		dup = false;

				for (int j = 0; j < nadded; j++)
					dup |= ItemPointerEquals(&added[j], &chosenTids[lc][i]);
				if (dup)
					continue;
				tids[n] = chosenTids[lc][i];
				dists[n++] = chosenDists[lc][i];
			}
			for (int i = n; i < nslots; i++)
				ItemPointerSetInvalid(&tids[i]);
			/* the selection's order (kept, then pruned) and the added links: sort them */
			HnswSortLinks(tids, dists, n);
			/* a live neighbour left out of the new list may have lost its last link */
			for (int j = 0; lc == 0 && j < nslots && ItemPointerIsValid(&origTids[0][j]); j++)
			{
				bool		kept = false;

				for (int i = 0; i < n && !kept; i++)
					kept = ItemPointerEquals(&tids[i], &origTids[0][j]);
				if (!kept && !HnswIsDead(vs, &origTids[0][j]))
					HnswNoteAtRisk(vs, &origTids[0][j]);
			}
		}
		GenericXLogFinish(xlog);
	}
	else
		GenericXLogAbort(xlog);
	UnlockReleaseBuffer(buf);
}

/* Step 3: repair the links of live elements that point into the batch. */
static void
HnswRepairGraph(HnswVacuumState *vs)
{
	HnswPageWalk walk;
	Buffer		buf;
	int			m = vs->state.m;

	HnswPageWalkBegin(&walk, vs->index, vs->bstrategy, BUFFER_LOCK_SHARE,
					  HNSW_METAPAGE_BLKNO + 1, RelationGetNumberOfBlocks(vs->index));
	while (BufferIsValid(buf = HnswPageWalkNext(&walk)))
	{
		Page		page = BufferGetPage(buf);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
		List	   *todo = NIL;
		List	   *todoTids = NIL;
		ListCell   *lc1,
				   *lc2;
		MemoryContext old = MemoryContextSwitchTo(vs->tmpCxt);

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			HnswElementTuple etup;
			ItemPointerData tid;
			ItemPointerData *tids;
			bool		needs = false;

			if (!ItemIdIsNormal(itemid))
				continue;
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
			if (HnswIsDead(vs, &tid))
				continue;
			etup = (HnswElementTuple) PageGetItem(page, itemid);
			tids = HnswElementTids(etup, vs->state.codeSize, m);
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
		/* The repairs lock pages themselves, this one included. */
		HnswPageWalkRelease(&walk);

		forboth(lc1, todo, lc2, todoTids)
		{
			CHECK_FOR_INTERRUPTS();
			HnswRepairElement(vs, (ItemPointer) lfirst(lc2), (HnswElementTuple) lfirst(lc1));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(vs->tmpCxt);
	}
}

/*
 * Step 4: walk every page noting which elements at risk a live element
 * still links to on layer 0; link back the others (but the entry point)
 * from their own live neighbours (the batch's dead elements are marked
 * deleted: passed over).  The set of those still linked, no larger than
 * the set at risk, comes on top of the batch's memory.  A link an insert
 * drops meanwhile can still leave one unlinked, as it can outside vacuum.
 *
 * With `all` (a VACUUM with nothing to delete), every live element is at
 * risk: inserts too leave elements that no link leads to.  Its sets grow
 * with the index; where they would outgrow the budget, the walk only
 * counts elements and links nothing back.  Returns false then.
 */
static bool
HnswRelinkOrphans(HnswVacuumState *vs, bool all)
{
	HnswPageWalk walk;
	Buffer		buf;
	HnswKeySet	linked;
	uint64	   *elements = NULL;
	uint32		nelements = 0;
	uint32		maxelements = 0;
	bool		withinBudget = true;
	int			nslots = HnswLevelSlots(vs->state.m, 0);
	HnswMetaPageData meta;
	uint64		entryKey;
	MemoryContext old = MemoryContextSwitchTo(vs->deadCxt);

	HnswKeySetInit(&linked, all ? 1024 : vs->atRisk.count);
	if (all)
	{
		maxelements = 1024;
		elements = palloc(sizeof(uint64) * maxelements);
	}
	HnswPageWalkBegin(&walk, vs->index, vs->bstrategy, BUFFER_LOCK_SHARE,
					  HNSW_METAPAGE_BLKNO + 1, RelationGetNumberOfBlocks(vs->index));
	while (BufferIsValid(buf = HnswPageWalkNext(&walk)))
	{
		Page		page = BufferGetPage(buf);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			HnswElementTuple etup;
			ItemPointerData tid;
			ItemPointerData *tids;

			if (!ItemIdIsNormal(itemid))
				continue;
			vs->items += 1;
			if (!withinBudget)
				continue;
			etup = (HnswElementTuple) PageGetItem(page, itemid);
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
			if ((etup->flags & HNSW_ELEMENT_DELETED) || HnswIsDead(vs, &tid))
				continue;
			if (all)
			{
				/* what this element's links and key may make the two grow to */
				Size		more = 0;

				if ((linked.count + nslots) * 2 > linked.mask + 1)
					more += sizeof(uint64) * (linked.mask + 1) * 2;
				if (nelements == maxelements)
					more += sizeof(uint64) * maxelements * 2;
				if (MemoryContextMemAllocated(vs->deadCxt, true) + more > vs->budget)
				{
					withinBudget = false;
					continue;
				}
				if (nelements == maxelements)
				{
					maxelements *= 2;
					elements = repalloc_huge(elements, sizeof(uint64) * maxelements);
				}
				elements[nelements++] = HnswTidKey(&tid);
			}
			tids = HnswElementTids(etup, vs->state.codeSize, vs->state.m);
			for (int i = 0; i < nslots && ItemPointerIsValid(&tids[i]); i++)
			{
				uint64		key = HnswTidKey(&tids[i]);

				if (all || HnswKeySetContains(&vs->atRisk, key))
					HnswKeySetAdd(&linked, key);
			}
		}
	}
	HnswPageWalkRelease(&walk);
	if (!withinBudget)
	{
		MemoryContextSwitchTo(old);
		return false;
	}

	HnswReadMeta(vs->index, &meta);
	entryKey = ItemPointerIsValid(&meta.entry) ? HnswTidKey(&meta.entry) : HNSW_INVALID_ID;
	MemoryContextSwitchTo(vs->tmpCxt);
	for (uint32 i = 0; i < (all ? nelements : vs->atRisk.mask + 1); i++)
	{
		uint64		key;

		if (all)
			key = elements[i];
		else if (vs->atRisk.keys[i] != 0)
			key = vs->atRisk.keys[i] - 1;
		else
			continue;
		if (key == entryKey || HnswKeySetContains(&linked, key))
			continue;
		CHECK_FOR_INTERRUPTS();
		if (HnswRelink(&vs->state, NULL, key))
			vs->relinked += 1;
		MemoryContextReset(vs->tmpCxt);
	}
	MemoryContextSwitchTo(old);
	return true;
}

/* Step 5: free the batch's space. */
static void
HnswFreeDeadBatch(HnswVacuumState *vs)
{
	HnswPageWalk walk;
	Buffer		buf;

	/* Wait until no scan or insert that might still follow a dead link runs. */
	LockPage(vs->index, HNSW_SCAN_LOCK, ExclusiveLock);
	UnlockPage(vs->index, HNSW_SCAN_LOCK, ExclusiveLock);

	HnswPageWalkBegin(&walk, vs->index, vs->bstrategy, BUFFER_LOCK_EXCLUSIVE,
					  vs->batchStart, vs->batchEnd);
	while (BufferIsValid(buf = HnswPageWalkNext(&walk)))
	{
		GenericXLogState *xlog = GenericXLogStart(vs->index);
		Page		page = GenericXLogRegisterBuffer(xlog, buf, 0);
		bool		changed = false;
		Size		freespace;

		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			ItemPointerData tid;

			if (!ItemIdIsNormal(itemid))
				continue;
			ItemPointerSet(&tid, BufferGetBlockNumber(buf), off);
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
		RecordPageWithFreeSpace(vs->index, BufferGetBlockNumber(buf), freespace);
	}
	HnswPageWalkRelease(&walk);
}

IndexBulkDeleteResult *
hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	HnswVacuumState vs;
	MemoryContext old;
	int			memKb;
	int			passes = 0;
	double		removedBefore;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	removedBefore = stats->tuples_removed;

	HnswVacuumBegin(&vs, info, &memKb);
	old = MemoryContextSwitchTo(vs.cxt);

	while (vs.nextBlock < vs.nblocks)
	{
		HnswCollectDeadBatch(&vs, callback, callback_state, stats);
		if (hash_get_num_entries(vs.dead) == 0)
			continue;
		passes++;
		LockPage(vs.index, HNSW_SCAN_LOCK, ExclusiveLock);
		MemoryContextSwitchTo(vs.tmpCxt);
		HnswRepairEntryPoint(&vs);
		MemoryContextSwitchTo(vs.cxt);
		MemoryContextReset(vs.tmpCxt);
		UnlockPage(vs.index, HNSW_SCAN_LOCK, ExclusiveLock);
		HnswRepairGraph(&vs);
		(void) HnswRelinkOrphans(&vs, false);
		HnswFreeDeadBatch(&vs);
	}
	if (passes > 0)
		FreeSpaceMapVacuum(vs.index);
	/* DEBUG1 at least: VACUUM reports index passes at DEBUG2 (PostgreSQL 15) */
	ereport(Max(info->message_level, DEBUG1),
			(errmsg_plural("removed %.0f dead elements from index \"%s\" in %d pass",
						   "removed %.0f dead elements from index \"%s\" in %d passes",
						   passes, stats->tuples_removed - removedBefore,
						   RelationGetRelationName(vs.index), passes),
			 errdetail("Each pass collected up to %d kB of dead elements, then repaired the links to them and freed them; %.0f live elements that no live element linked to any more were linked back.",
					   memKb, vs.relinked)));
	stats->num_index_tuples = vs.live;
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	stats->estimated_count = false;

	MemoryContextSwitchTo(old);
	MemoryContextDelete(vs.cxt);
	return stats;
}

IndexBulkDeleteResult *
hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		/*
		 * No bulkdelete pass ran: count what is there, and link back what
		 * inserts left without a link leading to it.
		 */
		HnswVacuumState vs;
		MemoryContext old;
		int			memKb;
		bool		checked;

		stats = palloc0(sizeof(IndexBulkDeleteResult));
		HnswVacuumBegin(&vs, info, &memKb);
		old = MemoryContextSwitchTo(vs.cxt);
		HnswDeadBatchReset(&vs);
		checked = HnswRelinkOrphans(&vs, true);
		ereport(Max(info->message_level, DEBUG1),
				(checked ?
				 errmsg("linked back %.0f elements of index \"%s\" that no link led to",
						vs.relinked, RelationGetRelationName(vs.index)) :
				 errmsg("did not look for elements of index \"%s\" that no link leads to",
						RelationGetRelationName(vs.index)),
				 checked ? 0 :
				 errdetail("Their links did not fit into %d kB.", memKb)));
		stats->num_index_tuples = vs.items;
		stats->num_pages = RelationGetNumberOfBlocks(info->index);
		stats->estimated_count = false;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(vs.cxt);
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
CROSSMODAL_FUNCTION(crossmodal_hnsw_heap_tids);
Datum
crossmodal_hnsw_heap_tids(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	index;
	HnswPageWalk walk;
	Buffer		buf;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_rel->relam != get_index_am_oid("crossmodal_hnsw", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a crossmodal_hnsw index", RelationGetRelationName(index))));
	HnswPageWalkBegin(&walk, index, NULL, BUFFER_LOCK_SHARE, HNSW_METAPAGE_BLKNO + 1,
					  RelationGetNumberOfBlocks(index));
	while (BufferIsValid(buf = HnswPageWalkNext(&walk)))
	{
		Page		page = BufferGetPage(buf);

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
	index_close(index, AccessShareLock);
	return (Datum) 0;
}
