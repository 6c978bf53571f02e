/*
 * hnswcheck.c
 *	  crossmodal_hnsw_check(index, heapallindexed): verifies an index against
 *	  its on-disk format (hnsw.h) and, optionally, that every heap row is in it.
 *
 * Read-only: pages are copied under a share lock one at a time, as a scan
 * reads them, and no lock is held across pages, so inserts, scans and VACUUM
 * go on meanwhile, on a primary or a standby.  Whatever involves two
 * elements (a link and its target) may have changed between the two reads,
 * so such a finding is read again from the current pages before it is
 * reported: VACUUM removes the links to an element before it frees its
 * slot, and inserts never link to an element marked deleted, so a finding
 * that holds on the second read is real.
 *
 * Each problem found is a row (block, item, problem, detail); an index in
 * good order gives none.  `problem` is one of a fixed set of short names
 * (README, "Checking an index"), `detail` a sentence.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "crossmodal.h"
#include "embedding.h"
#include "hnsw.h"

/* Allowed gap between a stored link distance and the one computed again. */
#define HNSW_CHECK_DIST_ABS		1e-4
#define HNSW_CHECK_DIST_REL		1e-3

typedef struct HnswCheck
{
	Relation	index;
	Relation	heap;
	ReturnSetInfo *rsinfo;
	HnswMetaPageData meta;
	HnswIndexState state;
	bool		stateReady;		/* the metapage was good enough to read elements */
	BlockNumber nblocks;
	BlockNumber firstElementBlock;	/* past the centroid pages */
	int			maxLevel;		/* the highest element level seen */
	int64		nelements;
	int64		nproblems;
	bool		collectTids;	/* heapallindexed: gather the elements' heap TIDs */
	HnswKeySet	heapTids;
	char	   *page;			/* a copy of the page being checked */
	char	   *otherPage;		/* a copy of a neighbour's page */
	float4	   *scratch;
} HnswCheck;

static void
Report(HnswCheck *check, BlockNumber blkno, OffsetNumber offno, const char *problem,
	   const char *fmt,...) pg_attribute_printf(5, 6);

static void
Report(HnswCheck *check, BlockNumber blkno, OffsetNumber offno, const char *problem,
	   const char *fmt,...)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	StringInfoData detail;
	va_list		args;

	initStringInfo(&detail);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	values[0] = Int64GetDatum((int64) blkno);
	if (offno == InvalidOffsetNumber)
		nulls[1] = true;
	else
		values[1] = Int32GetDatum((int32) offno);
	values[2] = CStringGetTextDatum(problem);
	values[3] = CStringGetTextDatum(detail.data);
	tuplestore_putvalues(check->rsinfo->setResult, check->rsinfo->setDesc, values, nulls);
	check->nproblems++;
	pfree(detail.data);
}

/* Copies block blkno into dst under a share lock; false past the end. */
static bool
CopyPage(HnswCheck *check, BlockNumber blkno, char *dst)
{
	Buffer		buf;

	if (blkno >= RelationGetNumberOfBlocks(check->index))
		return false;
	buf = ReadBufferExtended(check->index, MAIN_FORKNUM, blkno, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(dst, BufferGetPage(buf), BLCKSZ);
	UnlockReleaseBuffer(buf);
	return true;
}

/* Whether the page's header is sane enough to read its line pointers. */
static bool
CheckPageHeader(HnswCheck *check, BlockNumber blkno, Page page)
{
	PageHeader	ph = (PageHeader) page;
	Size		special = BLCKSZ - MAXALIGN(sizeof(HnswPageOpaqueData));

	if (PageGetPageSize(page) != BLCKSZ || ph->pd_special != special ||
		ph->pd_lower < SizeOfPageHeaderData || ph->pd_lower > ph->pd_upper ||
		ph->pd_upper > ph->pd_special)
	{
		Report(check, blkno, InvalidOffsetNumber, "page header",
			   "Page size %zu, pd_lower %u, pd_upper %u, pd_special %u; expected %d bytes with the special space at %zu and pd_lower <= pd_upper <= pd_special.",
			   (Size) PageGetPageSize(page), ph->pd_lower, ph->pd_upper, ph->pd_special,
			   BLCKSZ, special);
		return false;
	}
	if (HnswPageGetOpaque(page)->page_id != HNSW_PAGE_ID)
	{
		Report(check, blkno, InvalidOffsetNumber, "page special",
			   "The page id is 0x%04X, not 0x%04X.",
			   HnswPageGetOpaque(page)->page_id, HNSW_PAGE_ID);
		return false;
	}
	return true;
}

/* ---------- the metapage and the centroid ---------- */

/*
 * Blocks 1 .. centroidBlocks (rabitq): ceil(dims / HNSW_CENTROID_PER_PAGE) of
 * them (or none), each a centroid page holding its share of finite values.
 * Sets check->firstElementBlock past the centroid pages the metapage gives
 * when their number is right (else every block after the metapage is read
 * as an element page, and a centroid page there is reported as such);
 * returns whether the centroid can be read.
 */
static bool
CheckCentroid(HnswCheck *check)
{
	HnswMetaPageData *meta = &check->meta;
	int			want = (meta->dims + (int) HNSW_CENTROID_PER_PAGE - 1) / (int) HNSW_CENTROID_PER_PAGE;
	Page		page = (Page) check->otherPage;
	bool		ok = true;

	check->firstElementBlock = HNSW_METAPAGE_BLKNO + 1;
	if (meta->centroidBlocks == 0)
		return true;
	if (meta->storage != HNSW_STORAGE_RABITQ || meta->centroidBlocks != want)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "centroid",
			   "The metapage gives %u centroid pages; a %s index of %d dimensions has %s%d.",
			   meta->centroidBlocks, HnswStorageName((HnswStorage) meta->storage), meta->dims,
			   meta->storage == HNSW_STORAGE_RABITQ ? "0 or " : "", meta->storage == HNSW_STORAGE_RABITQ ? want : 0);
		return false;
	}
	check->firstElementBlock = HNSW_METAPAGE_BLKNO + 1 + meta->centroidBlocks;
	for (int b = 0; b < meta->centroidBlocks; b++)
	{
		BlockNumber blkno = 1 + b;
		int			n = Min(meta->dims - b * (int) HNSW_CENTROID_PER_PAGE, (int) HNSW_CENTROID_PER_PAGE);
		Size		lower = (PageGetContents(page) + sizeof(float4) * n) - (char *) page;
		const float4 *c;

		if (!CopyPage(check, blkno, check->otherPage) || PageIsNew(page))
		{
			Report(check, blkno, InvalidOffsetNumber, "centroid", "Centroid page %u is missing.", blkno);
			ok = false;
			continue;
		}
		if (!CheckPageHeader(check, blkno, page))
		{
			ok = false;
			continue;
		}
		if (HnswPageGetOpaque(page)->flags != HNSW_PAGE_CENTROID || ((PageHeader) page)->pd_lower != lower)
		{
			Report(check, blkno, InvalidOffsetNumber, "centroid",
				   "Block %u has page flags 0x%04X and pd_lower %u; a centroid page of %d values has 0x%04X and %zu.",
				   blkno, HnswPageGetOpaque(page)->flags, ((PageHeader) page)->pd_lower, n,
				   HNSW_PAGE_CENTROID, lower);
			ok = false;
			continue;
		}
		c = (const float4 *) PageGetContents(page);
		for (int i = 0; i < n; i++)
			if (!isfinite(c[i]))
			{
				Report(check, blkno, InvalidOffsetNumber, "centroid",
					   "Value %d of the centroid is not finite.", b * (int) HNSW_CENTROID_PER_PAGE + i + 1);
				ok = false;
				break;
			}
	}
	return ok;
}


/*
 * Checks block 0; sets check->stateReady when the elements can be read with
 * what it says (a problem that leaves that possible is reported and the
 * check goes on).
 */
static void
CheckMetapage(HnswCheck *check)
{
	Page		page = (Page) check->page;
	HnswMetaPage meta;
	Size		metaSize;
	int32		typmod;

	if (!CopyPage(check, HNSW_METAPAGE_BLKNO, check->page))
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The index has no blocks.");
		return;
	}
	if (PageIsNew(page))
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The metapage is all zeroes.");
		return;
	}
	if (!CheckPageHeader(check, HNSW_METAPAGE_BLKNO, page))
		return;
	if (HnswPageGetOpaque(page)->flags != HNSW_PAGE_META)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "page special",
			   "Block 0 has page flags 0x%04X, not those of the metapage (0x%04X).",
			   HnswPageGetOpaque(page)->flags, HNSW_PAGE_META);
	}
	meta = HnswPageGetMeta(page);
	memcpy(&check->meta, meta, sizeof(HnswMetaPageData));
	if (meta->magic != HNSW_MAGIC)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The magic number is 0x%08X, not 0x%08X.", meta->magic, HNSW_MAGIC);
		return;
	}
	if (meta->version != HNSW_VERSION && meta->version != 1)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The format version is %u; this build reads versions 1 to %u.",
			   meta->version, HNSW_VERSION);
		return;
	}
	if (meta->version == 1)
	{
		/* version 1's metapage ends at entryLevel; its elements are float4 */
		check->meta.storage = HNSW_STORAGE_FLOAT4;
		check->meta.centroidBlocks = 0;
		check->meta.seed = 0;
	}
	metaSize = meta->version == 1 ? offsetof(HnswMetaPageData, storage) : sizeof(HnswMetaPageData);
	if (((PageHeader) page)->pd_lower < (char *) meta + metaSize - (char *) page)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "pd_lower is %u, before the end of the metapage data.",
			   ((PageHeader) page)->pd_lower);
	}
	if (check->meta.storage > HNSW_STORAGE_RABITQ)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The storage form is %u, not one of 0..%d.", check->meta.storage, HNSW_STORAGE_RABITQ);
		return;
	}
	if (meta->m < HNSW_MIN_M || meta->m > HNSW_MAX_M)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "m is %u, outside %d..%d.", meta->m, HNSW_MIN_M, HNSW_MAX_M);
		return;
	}
	if (meta->efConstruction < HNSW_MIN_EF_CONSTRUCTION ||
		meta->efConstruction > HNSW_MAX_EF_CONSTRUCTION)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "ef_construction is %u, outside %d..%d.", meta->efConstruction,
			   HNSW_MIN_EF_CONSTRUCTION, HNSW_MAX_EF_CONSTRUCTION);
	}
	if (meta->dims < 0 || meta->dims > EMBEDDING_MAX_DIM)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "dimensions",
			   "The metapage says %d dimensions, outside 0..%d.", meta->dims, EMBEDDING_MAX_DIM);
		return;
	}
	typmod = TupleDescAttr(RelationGetDescr(check->index), 0)->atttypmod;
	if (meta->dims > 0 && typmod > 0 && meta->dims != typmod)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "dimensions",
			   "The metapage says %d dimensions, the indexed column has %d.", meta->dims, typmod);
	}
	if (meta->entryLevel < -1 || meta->entryLevel > HNSW_MAX_LEVEL ||
		(meta->entryLevel == -1) != !ItemPointerIsValid(&meta->entry))
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "entry point",
			   "The entry point is (%u,%u) at level %d: a valid TID needs a level in 0..%d, none needs -1.",
			   ItemPointerGetBlockNumberNoCheck(&meta->entry),
			   ItemPointerGetOffsetNumberNoCheck(&meta->entry), meta->entryLevel, HNSW_MAX_LEVEL);
	}

	if (!CheckCentroid(check))
		check->meta.centroidBlocks = 0; /* read the elements without it */
	HnswInitState(&check->state, check->index, &check->meta);
	check->stateReady = true;
}

/* The metapage's current contents (after CheckMetapage found it readable). */
static void
ReadMeta(HnswCheck *check, HnswMetaPageData *meta)
{
	Buffer		buf = ReadBuffer(check->index, HNSW_METAPAGE_BLKNO);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(meta, HnswPageGetMeta(BufferGetPage(buf)), sizeof(HnswMetaPageData));
	UnlockReleaseBuffer(buf);
	if (meta->version == 1)
	{
		meta->storage = HNSW_STORAGE_FLOAT4;
		meta->centroidBlocks = 0;
		meta->seed = 0;
	}
}

/* ---------- elements ---------- */

/* Whether the code of an element is one the index could have written. */
static void
CheckCode(HnswCheck *check, BlockNumber blkno, OffsetNumber offno, HnswElementTuple etup)
{
	char	   *problem = HnswCodeProblem(&check->state, HnswElementCode(etup));

	if (problem != NULL)
		Report(check, blkno, offno, "element code", "%s", problem);
}

/*
 * The element tuple at tid on a page copy, or NULL with *why set: what a
 * link may point at.
 */
static HnswElementTuple
ElementAt(HnswCheck *check, Page page, ItemPointer tid, const char **why)
{
	OffsetNumber offno = ItemPointerGetOffsetNumber(tid);
	ItemId		itemid;

	if (PageIsNew(page) || !(HnswPageGetOpaque(page)->flags & HNSW_PAGE_ELEMENTS))
	{
		*why = "a block that is not an element page";
		return NULL;
	}
	if (offno < FirstOffsetNumber || offno > PageGetMaxOffsetNumber(page))
	{
		*why = "a slot past the page's last line pointer";
		return NULL;
	}
	itemid = PageGetItemId(page, offno);
	if (!ItemIdIsNormal(itemid))
	{
		*why = "a freed slot";
		return NULL;
	}
	if (ItemIdGetLength(itemid) < HNSW_ELEMENT_HEADER_SIZE + check->state.codeSize ||
		ItemIdGetOffset(itemid) + ItemIdGetLength(itemid) > BLCKSZ)
	{
		*why = "a damaged slot";
		return NULL;
	}
	return (HnswElementTuple) PageGetItem(page, itemid);
}

/*
 * What is wrong with the link from element `src` (at srcTid, a copy) in
 * `slot` of layer lc to `target`, judged on the target's current page; NULL
 * when nothing is.  *problem gets the problem's name.
 */
static char *
LinkProblem(HnswCheck *check, ItemPointer srcTid, HnswElementTuple src, int lc, int slot,
			ItemPointer target, const char **problem)
{
	BlockNumber tblk = ItemPointerGetBlockNumber(target);
	OffsetNumber toff = ItemPointerGetOffsetNumber(target);
	float4		stored = HnswElementDists(src, check->state.codeSize)[slot];
	HnswElementTuple t;
	const char *why;
	char	   *result = NULL;
	Buffer		buf;
	float		dist;
	HnswQuery	q;

	*problem = "neighbour tid";
	if (ItemPointerEquals(target, srcTid))
		return psprintf("Layer %d links the element to itself.", lc);
	if (tblk >= check->nblocks)
		check->nblocks = RelationGetNumberOfBlocks(check->index);	/* grown meanwhile? */
	if (tblk == HNSW_METAPAGE_BLKNO || tblk >= check->nblocks)
		return psprintf("Layer %d links to (%u,%u), %s.", lc, tblk, toff,
						tblk == HNSW_METAPAGE_BLKNO ? "on the metapage" : "past the end of the index");

	buf = HnswReadBuffer(&check->state, tblk);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	t = ElementAt(check, BufferGetPage(buf), target, &why);
	if (t == NULL)
	{
		*problem = strcmp(why, "a freed slot") == 0 ? "link to freed slot" : "neighbour tid";
		result = psprintf("Layer %d links to (%u,%u), %s.", lc, tblk, toff, why);
	}
	else if (t->level < lc)
	{
		*problem = "neighbour level";
		result = psprintf("Layer %d links to (%u,%u), an element of level %d.", lc, tblk, toff,
						  t->level);
	}
	else if (check->state.storage == HNSW_STORAGE_FLOAT4)
	{
		/*
		 * A link's distance is the graph's, from the inserted vector to the
		 * neighbour's code: exact between float4 codes; the compact forms
		 * store an estimate that the codes alone do not reproduce.
		 */
		HnswCodeQuery(&check->state, HnswElementCode(src), &q, NULL);
		dist = HnswDistance(&check->state, &q, HnswElementCode(t));
		if (isfinite(stored) &&
			fabs(stored - dist) > HNSW_CHECK_DIST_ABS + HNSW_CHECK_DIST_REL * fabs(dist))
		{
			*problem = "neighbour distance";
			result = psprintf("Layer %d stores distance %g to (%u,%u); their vectors are %g apart.",
							  lc, stored, tblk, toff, dist);
		}
	}
	UnlockReleaseBuffer(buf);
	return result;
}

/*
 * A link found wrong: read the source element again and, if it still holds
 * the same link, judge the link again (both pages may have changed between
 * the first two reads).
 */
static char *
LinkProblemNow(HnswCheck *check, ItemPointer srcTid, int lc, int slot, ItemPointer target,
			   const char **problem)
{
	char	   *srcPage = palloc(BLCKSZ);
	HnswElementTuple src;
	const char *why;
	char	   *result = NULL;

	if (CopyPage(check, ItemPointerGetBlockNumber(srcTid), srcPage) &&
		(src = ElementAt(check, (Page) srcPage, srcTid, &why)) != NULL &&
		src->level >= lc &&
		ItemIdGetLength(PageGetItemId((Page) srcPage, ItemPointerGetOffsetNumber(srcTid))) ==
		HnswElementTupleSize(check->state.codeSize, check->state.m, src->level) &&
		ItemPointerEquals(&HnswElementTids(src, check->state.codeSize, check->state.m)[slot], target))
		result = LinkProblem(check, srcTid, src, lc, slot, target, problem);
	pfree(srcPage);
	return result;
}

static void
CheckNeighbours(HnswCheck *check, BlockNumber blkno, OffsetNumber offno, HnswElementTuple etup)
{
	ItemPointerData self;
	ItemPointerData *tids = HnswElementTids(etup, check->state.codeSize, check->state.m);
	float4	   *dists = HnswElementDists(etup, check->state.codeSize);

	ItemPointerSet(&self, blkno, offno);
	for (int lc = 0; lc <= etup->level; lc++)
	{
		int			first = HnswLevelFirstSlot(check->state.m, lc);
		int			nslots = HnswLevelSlots(check->state.m, lc);
		bool		ended = false;

		for (int i = first; i < first + nslots; i++)
		{
			const char *problem;
			char	   *detail;

			CHECK_FOR_INTERRUPTS();
			if (!ItemPointerIsValid(&tids[i]))
			{
				ended = true;
				continue;
			}
			if (ended)
			{
				Report(check, blkno, offno, "neighbour list",
					   "Layer %d has a link in slot %d after an empty slot.", lc, i - first);
				ended = false;
			}
			for (int j = first; j < i; j++)
				if (ItemPointerEquals(&tids[j], &tids[i]))
				{
					Report(check, blkno, offno, "neighbour list",
						   "Layer %d links to (%u,%u) twice.", lc,
						   ItemPointerGetBlockNumber(&tids[i]), ItemPointerGetOffsetNumber(&tids[i]));
					break;
				}
			/* sorted lists are a promise of version 2; version 1 (0.1.0) did not keep them */
			if (check->meta.version >= 2 && i > first && ItemPointerIsValid(&tids[i - 1]) &&
				dists[i] < dists[i - 1])
				Report(check, blkno, offno, "neighbour list",
					   "Layer %d is not sorted by distance: slot %d (%g) after slot %d (%g).",
					   lc, i - first, dists[i], i - 1 - first, dists[i - 1]);
			if (!isfinite(dists[i]))
				Report(check, blkno, offno, "neighbour distance",
					   "Layer %d stores a distance that is not finite in slot %d.", lc, i - first);
			detail = LinkProblem(check, &self, etup, lc, i, &tids[i], &problem);
			if (detail != NULL)
			{
				pfree(detail);
				detail = LinkProblemNow(check, &self, lc, i, &tids[i], &problem);
			}
			if (detail != NULL)
				Report(check, blkno, offno, problem, "%s", detail);
		}
	}
}

static void
CheckElement(HnswCheck *check, BlockNumber blkno, OffsetNumber offno, ItemId itemid, Page page)
{
	HnswElementTuple etup = (HnswElementTuple) PageGetItem(page, itemid);
	Size		len = ItemIdGetLength(itemid);
	Size		want;

	if (len < HNSW_ELEMENT_HEADER_SIZE)
	{
		Report(check, blkno, offno, "element size",
			   "The tuple is %zu bytes, shorter than an element's header.", len);
		return;
	}
	if (etup->level > HNSW_MAX_LEVEL)
	{
		Report(check, blkno, offno, "element level",
			   "The level is %d, above the largest, %d.", etup->level, HNSW_MAX_LEVEL);
		return;
	}
	want = HnswElementTupleSize(check->state.codeSize, check->state.m, etup->level);
	if (len != want)
	{
		Report(check, blkno, offno, "element size",
			   "The tuple is %zu bytes; an element of level %d with %d dimensions and m = %d takes %zu.",
			   len, etup->level, check->state.dims, check->state.m, want);
		return;
	}
	check->nelements++;
	check->maxLevel = Max(check->maxLevel, etup->level);
	if (etup->level > check->meta.entryLevel)
	{
		/* an insert may have raised the entry point since the metapage was read */
		ReadMeta(check, &check->meta);
		if (etup->level > check->meta.entryLevel)
			Report(check, blkno, offno, "element level",
				   "The level is %d, above the entry point's, %d.", etup->level,
				   check->meta.entryLevel);
	}
	if ((etup->flags & ~HNSW_ELEMENT_DELETED) != 0)
		Report(check, blkno, offno, "element flags", "Unknown flags 0x%02X.", etup->flags);
	if (etup->unused != 0 || etup->pad != 0)
		Report(check, blkno, offno, "element flags",
			   "The reserved fields hold 0x%04X and 0x%04X, not 0.", etup->unused, etup->pad);
	if (!ItemPointerIsValid(&etup->heaptid) ||
		ItemPointerGetOffsetNumber(&etup->heaptid) > MaxHeapTuplesPerPage)
		Report(check, blkno, offno, "element heap tid", "The heap TID (%u,%u) is not valid.",
			   ItemPointerGetBlockNumberNoCheck(&etup->heaptid),
			   ItemPointerGetOffsetNumberNoCheck(&etup->heaptid));
	else if (check->collectTids && !(etup->flags & HNSW_ELEMENT_DELETED) &&
			 !HnswKeySetAdd(&check->heapTids, HnswTidKey(&etup->heaptid)))
		Report(check, blkno, offno, "heap tid indexed twice",
			   "Heap row (%u,%u) has another element too.",
			   ItemPointerGetBlockNumber(&etup->heaptid),
			   ItemPointerGetOffsetNumber(&etup->heaptid));
	CheckCode(check, blkno, offno, etup);
	CheckNeighbours(check, blkno, offno, etup);
}

static void
CheckElementPage(HnswCheck *check, BlockNumber blkno)
{
	Page		page = (Page) check->page;
	OffsetNumber maxoff;

	if (!CopyPage(check, blkno, check->page))
		return;					/* truncated meanwhile */
	if (PageIsNew(page))
		return;					/* extended, not yet written: free space */
	if (!CheckPageHeader(check, blkno, page))
		return;
	if (HnswPageGetOpaque(page)->flags != HNSW_PAGE_ELEMENTS)
	{
		Report(check, blkno, InvalidOffsetNumber, "page special",
			   "Block %u has page flags 0x%04X, not those of an element page (0x%04X).",
			   blkno, HnswPageGetOpaque(page)->flags, HNSW_PAGE_ELEMENTS);
		return;
	}
	maxoff = PageGetMaxOffsetNumber(page);
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		ItemId		itemid = PageGetItemId(page, off);

		CHECK_FOR_INTERRUPTS();
		if (!ItemIdIsUsed(itemid))
			continue;
		if (!ItemIdIsNormal(itemid))
		{
			Report(check, blkno, off, "line pointer",
				   "The line pointer is %s; element pages use only normal and unused ones.",
				   ItemIdIsDead(itemid) ? "dead" : "a redirect");
			continue;
		}
		if (ItemIdGetOffset(itemid) < ((PageHeader) page)->pd_upper ||
			ItemIdGetOffset(itemid) + ItemIdGetLength(itemid) > ((PageHeader) page)->pd_special ||
			ItemIdGetOffset(itemid) != MAXALIGN(ItemIdGetOffset(itemid)))
		{
			Report(check, blkno, off, "line pointer",
				   "The tuple at offset %u, %u bytes, is not a MAXALIGNed tuple between pd_upper (%u) and the special space (%u).",
				   ItemIdGetOffset(itemid), ItemIdGetLength(itemid),
				   ((PageHeader) page)->pd_upper, ((PageHeader) page)->pd_special);
			continue;
		}
		CheckElement(check, blkno, off, itemid, page);
	}
}

/* The entry point, as the metapage gives it now: a live element on its own level. */
static void
CheckEntryPoint(HnswCheck *check)
{
	HnswMetaPageData meta;
	ItemPointerData entry;
	HnswElementTuple etup;
	const char *why;
	Buffer		buf;

	ReadMeta(check, &meta);
	entry = meta.entry;
	if (check->nelements > 0 && meta.dims == 0)
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "dimensions",
			   "The index holds elements but its dimensions are not set.");
	if (!ItemPointerIsValid(&entry))
	{
		if (check->nelements > 0)
			Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "entry point",
				   "The index holds %lld elements but no entry point.",
				   (long long) check->nelements);
		return;
	}
	check->nblocks = RelationGetNumberOfBlocks(check->index);
	if (ItemPointerGetBlockNumber(&entry) == HNSW_METAPAGE_BLKNO ||
		ItemPointerGetBlockNumber(&entry) >= check->nblocks)
	{
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "entry point",
			   "The entry point (%u,%u) is %s.", ItemPointerGetBlockNumber(&entry),
			   ItemPointerGetOffsetNumber(&entry),
			   ItemPointerGetBlockNumber(&entry) == HNSW_METAPAGE_BLKNO ?
			   "on the metapage" : "past the end of the index");
		return;
	}
	buf = ReadBuffer(check->index, ItemPointerGetBlockNumber(&entry));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	etup = ElementAt(check, BufferGetPage(buf), &entry, &why);
	if (etup == NULL)
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "entry point",
			   "The entry point (%u,%u) is %s.", ItemPointerGetBlockNumber(&entry),
			   ItemPointerGetOffsetNumber(&entry), why);
	else if (etup->level != meta.entryLevel)
		Report(check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "entry point",
			   "The metapage gives the entry point (%u,%u) level %d; the element has level %d.",
			   ItemPointerGetBlockNumber(&entry), ItemPointerGetOffsetNumber(&entry),
			   meta.entryLevel, etup->level);
	UnlockReleaseBuffer(buf);
}

/* ---------- every heap row indexed ---------- */

static void
HeapAllIndexedCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
					   bool tupleIsAlive, void *arg)
{
	HnswCheck  *check = (HnswCheck *) arg;
	bool		indexable = true;

	CHECK_FOR_INTERRUPTS();
	if (isnull[0])
		return;					/* NULLs are not indexed */
	if (check->state.normalize)
	{
		int			dims;
		const float4 *x = HnswDatumGetFloats(values[0], &dims);
		double		norm2 = 0.0;

		for (int i = 0; i < dims; i++)
			norm2 += (double) x[i] * x[i];
		indexable = norm2 > 0.0;	/* zero vectors have no direction */
	}
	if (indexable && !HnswKeySetContains(&check->heapTids, HnswTidKey(tid)))
		Report(check, ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid),
			   "heap row not indexed",
			   "Heap row (%u,%u) of \"%s\" has no element in the index.",
			   ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid),
			   RelationGetRelationName(check->heap));
}

static void
CheckHeapAllIndexed(HnswCheck *check, Snapshot snapshot)
{
	IndexInfo  *indexInfo = BuildIndexInfo(check->index);
	TableScanDesc scan;

	/* as amcheck: the rows our MVCC snapshot sees, each of which was indexed before it committed */
	indexInfo->ii_Concurrent = true;
	scan = table_beginscan_strat(check->heap, snapshot, 0, NULL, true, false);
	table_index_build_scan(check->heap, check->index, indexInfo, true, false,
						   HeapAllIndexedCallback, check, scan);
}

/*
 * crossmodal_hnsw_check(index regclass, heapallindexed boolean DEFAULT false)
 * RETURNS TABLE (blkno bigint, offnum integer, problem text, detail text)
 */
CROSSMODAL_FUNCTION(crossmodal_hnsw_check);
Datum
crossmodal_hnsw_check(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	bool		heapallindexed = PG_GETARG_BOOL(1);
	Oid			heapoid = IndexGetRelation(indexoid, true);
	HnswCheck	check;
	Snapshot	snapshot = InvalidSnapshot;

	InitMaterializedSRF(fcinfo, 0);
	memset(&check, 0, sizeof(check));
	check.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/* the table first, then the index, as every other user of both locks them */
	if (!OidIsValid(heapoid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", get_rel_name(indexoid) ? get_rel_name(indexoid) : "?")));
	check.heap = table_open(heapoid, AccessShareLock);
	check.index = index_open(indexoid, AccessShareLock);
	if (check.index->rd_rel->relam != get_index_am_oid("crossmodal_hnsw", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a crossmodal_hnsw index", RelationGetRelationName(check.index))));
	if (!check.index->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check index \"%s\"", RelationGetRelationName(check.index)),
				 errdetail("The index is not valid (a failed CREATE INDEX CONCURRENTLY).")));
	if (RELATION_IS_OTHER_TEMP(check.index))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check temporary indexes of other sessions")));

	check.page = palloc(BLCKSZ);
	check.otherPage = palloc(BLCKSZ);
	if (heapallindexed)
	{
		/* the snapshot before the elements are read: what it sees was indexed by then */
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
		/* as amcheck: an index built with broken HOT chains may not cover an older snapshot */
		if (IsolationUsesXactSnapshot() && check.index->rd_index->indcheckxmin &&
			!TransactionIdPrecedes(HeapTupleHeaderGetXmin(check.index->rd_indextuple->t_data),
								   snapshot->xmin))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("index \"%s\" cannot be checked against its table with this transaction's snapshot",
							RelationGetRelationName(check.index)),
					 errhint("Check it in a new transaction.")));
		check.collectTids = true;
		HnswKeySetInit(&check.heapTids, 1024);
	}

	CheckMetapage(&check);
	if (check.stateReady)
	{
		check.nblocks = RelationGetNumberOfBlocks(check.index);
		for (BlockNumber blkno = check.firstElementBlock; blkno < check.nblocks; blkno++)
		{
			CHECK_FOR_INTERRUPTS();
			CheckElementPage(&check, blkno);
		}
		CheckEntryPoint(&check);
		if (heapallindexed)
			CheckHeapAllIndexed(&check, snapshot);
	}
	else
		Report(&check, HNSW_METAPAGE_BLKNO, InvalidOffsetNumber, "metapage",
			   "The elements were not checked: the metapage does not say how to read them.");

	if (snapshot != InvalidSnapshot)
		UnregisterSnapshot(snapshot);
	index_close(check.index, AccessShareLock);
	table_close(check.heap, AccessShareLock);
	return (Datum) 0;
}
