/*
 * hnswinsert.c
 *	  Inserting rows into a crossmodal_hnsw index, and placing element tuples on its pages.
 *
 * The insertion itself is the graph's (hnswgraph.c, HnswInsertElement).  The
 * backend holds the index's HNSW_SCAN_LOCK in share mode for the whole
 * insert, so vacuum cannot free an element this insert may still link to.
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
void
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
			/* The first vector fixes the dimensions of an unconstrained column. */
			int			dims;

			(void) HnswDatumGetFloats(values[0], &dims);
			HnswCheckDims(&state, dims);
			HnswUpdateMeta(index, dims, HNSW_ENTRY_KEEP, NULL, 0, NULL, &meta);
			if (meta.dims != dims)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("expected %d dimensions, not %d", meta.dims, dims)));
			HnswSetDims(&state, dims);
		}
		HnswInsertElement(&state, NULL, vector, heap_tid,
						  HnswRandomLevel(state.m, HnswMaxLevel(&state), &pg_global_prng_state));
	}
	UnlockPage(index, HNSW_SCAN_LOCK, ShareLock);

	MemoryContextSwitchTo(old);
	MemoryContextReset(cxt);
	return false;
}
