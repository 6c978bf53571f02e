/*
 * hnswbuild.c
 *	  CREATE INDEX for crossmodal_hnsw: the graph is built in memory, then written out page by page.
 *
 * While the graph fits in maintenance_work_mem it lives in local memory
 * (HnswMemGraph; with parallel workers, in one shared memory segment they
 * all insert into), and rows go into it through the same insertion code as
 * ordinary inserts (hnswgraph.c).  When the budget is reached, the graph
 * built so far is written to disk (with a NOTICE) and the remaining rows are
 * inserted on disk: slower, but the build completes.  Pages are written
 * through Generic WAL as full images.
 */
#include "postgres.h"

#include <math.h>
#ifdef __linux__
#include <sys/statvfs.h>
#endif

#include "access/genam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "crossmodal.h"
#include "hnsw.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/dsm_impl.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define HNSW_SHARED_KEY				UINT64CONST(0xC7055A0D41000001)
#define HNSW_SCAN_KEY				UINT64CONST(0xC7055A0D41000002)

typedef struct HnswBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	HnswIndexState state;
	HnswIndexState *gstate;		/* the graph in memory's: state or int8State */
	HnswIndexState int8State;
	HnswMemGraph graph;
	MemoryContext graphCxt;		/* the graph */
	MemoryContext tmpCxt;		/* per tuple */
	Size		memoryLimit;
	bool		onDisk;			/* the graph no longer fits: insert on disk */
	pg_prng_state prng;
	int			maxLevel;
	double		heapTuples;
	double		indexTuples;
	bool		isLeader;		/* parallel build: reports progress */
	HnswKeySet *skip;			/* heap TIDs already in the graph (second pass) */
} HnswBuildState;

/* Bytes per element besides its arena, in local memory: the element and its visit mark. */
#define HNSW_SERIAL_OVERHEAD	(sizeof(HnswMemElement) + sizeof(uint32))

/* The rows the build expects: the table's statistics, or a guess from its size. */
static double
HnswBuildExpectedTuples(HnswBuildState *bs)
{
	double		reltuples = bs->heap->rd_rel->reltuples;

	if (reltuples < 0)			/* never vacuumed or analyzed */
		reltuples = (double) RelationGetNumberOfBlocks(bs->heap) *
			(BLCKSZ / (double) (sizeof(float4) * bs->state.dims + 40));
	return reltuples;
}

/* Elements the graph in memory makes room for: the expected rows and a margin. */
static double
HnswBuildCapacity(HnswBuildState *bs)
{
	return HnswBuildExpectedTuples(bs) * 1.2 + 1024;
}

/* Bytes of an element on layer 0 in the graph in memory (a few live higher). */
static Size
HnswBuildElementSize(HnswBuildState *bs, bool int8Graph)
{
	Size		list = MAXALIGN(sizeof(int32) * 3 * bs->state.m);

	return 2 * list + MAXALIGN(4) + MAXALIGN(bs->state.codeSize) +
		(int8Graph ? MAXALIGN(HnswCodeSize(HNSW_STORAGE_INT8, bs->state.dims)) : 0);
}

/*
 * Whether the graph, with `overhead` bytes of bookkeeping per element, is
 * expected to fit maintenance_work_mem.
 */
static bool
HnswBuildGraphFits(HnswBuildState *bs, bool int8Graph, Size overhead)
{
	return HnswBuildCapacity(bs) * (HnswBuildElementSize(bs, int8Graph) + overhead)
		<= (double) bs->memoryLimit;
}

/*
 * Whether the graph in memory is built on int8 codes.  A build is bound by
 * reading the codes of the elements it visits, and for a float4 or half
 * index an int8 code is a quarter (half) of that, while the graph it leads
 * to is as good (an int8 index's recall matches a float4 one's at the same
 * ef_search).  The elements then keep their code in the index's form too,
 * which is what gets written, with each link's distance computed again in
 * that form.  Not for other metrics (L1, an opclass's own function), and not
 * when the larger elements would make a graph that fits maintenance_work_mem
 * outgrow it.
 */
static bool
HnswBuildWantsInt8Graph(HnswBuildState *bs, Size overhead)
{
	if ((bs->state.storage != HNSW_STORAGE_FLOAT4 && bs->state.storage != HNSW_STORAGE_HALF) ||
		(bs->state.metric != HNSW_METRIC_L2 && bs->state.metric != HNSW_METRIC_IP &&
		 bs->state.metric != HNSW_METRIC_COSINE) ||
		bs->state.dims <= 0)
		return false;
	return HnswBuildGraphFits(bs, true, overhead);
}

/* The state the graph in memory is searched and linked with (see above). */
static void
HnswBuildSetGraphState(HnswBuildState *bs, bool int8Graph)
{
	bs->gstate = &bs->state;
	bs->graph.storeState = NULL;
	if (int8Graph)
	{
		bs->int8State = bs->state;
		bs->int8State.storage = HNSW_STORAGE_INT8;
		HnswSetDims(&bs->int8State, bs->state.dims);
		bs->gstate = &bs->int8State;
		bs->graph.storeState = &bs->state;
	}
}

/* Starts an empty graph in bs->graphCxt, local or (sh) shared. */
static void
HnswBuildGraphInit(HnswBuildState *bs, HnswBuildShared *sh)
{
	HnswMemGraph *g = &bs->graph;

	memset(g, 0, sizeof(HnswMemGraph));
	g->cxt = bs->graphCxt;
	g->shared = sh;
	g->entry = -1;
	g->entryLevel = -1;
	g->capacity = sh != NULL ? sh->capacity : 1024;
	g->elements = MemoryContextAllocExtended(bs->graphCxt, sizeof(HnswMemElement) * (Size) g->capacity,
											 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	g->visitMark = MemoryContextAllocExtended(bs->graphCxt, sizeof(uint32) * (Size) g->capacity,
											  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	HnswBuildSetGraphState(bs, sh != NULL ? sh->int8Graph :
						   HnswBuildWantsInt8Graph(bs, HNSW_SERIAL_OVERHEAD));
}

static void
HnswBuildContexts(HnswBuildState *bs)
{
	bs->graphCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build graph",
										 ALLOCSET_DEFAULT_SIZES);
	/* a large first block, kept across resets: a row's search fits in it */
	bs->tmpCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw build tuple",
									   1024 * 1024, 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
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

	for (int i = 0; i < bs->graph.nelements; i++)
	{
		HnswMemElement *e = &bs->graph.elements[i];
		Size		need = MAXALIGN(HnswElementTupleSize(bs->state.codeSize, bs->state.m, e->level))
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
	return bs->graph.nelements > 0 ? blkno + 1 - firstBlock : 0;
}

static HnswElementTuple
HnswBuildFormTuple(HnswBuildState *bs, HnswMemElement *e, Size *size)
{
	int			m = bs->state.m;
	const char *code = e->store != NULL ? e->store : e->code;
	HnswElementTuple etup = HnswFormElementTuple(&bs->state, code, &e->heaptid, e->level, size);
	ItemPointerData *tids = HnswElementTids(etup, bs->state.codeSize, m);
	float4	   *dists = HnswElementDists(etup, bs->state.codeSize);
	HnswQuery	q;

	/* a graph built on other codes: the distances in the index's form */
	if (e->store != NULL)
		HnswCodeQuery(&bs->state, code, &q, palloc(sizeof(float4) * bs->state.codeDims));
	for (int lc = 0; lc <= e->level; lc++)
	{
		int			first = HnswLevelFirstSlot(m, lc);

		for (int i = 0; i < e->count[lc]; i++)
		{
			HnswMemElement *n = &bs->graph.elements[e->nbr[first + i]];

			ItemPointerSet(&tids[first + i], n->blkno, n->offno);
			dists[first + i] = e->store != NULL ? HnswDistance(&bs->state, &q, n->store)
				: e->dist[first + i];
		}
		if (e->store != NULL)
			HnswSortLinks(tids + first, dists + first, e->count[lc]);
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
	int			relinked;
	ItemPointerData entry;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_WRITE);
	relinked = HnswRelinkOrphansMem(bs->gstate, &bs->graph);
	ereport(DEBUG1,
			(errmsg_internal("crossmodal_hnsw build: %d of %d elements that no list linked to were linked back",
							 relinked, bs->graph.nelements)));
	ereport(DEBUG1,
			(errmsg_internal("crossmodal_hnsw build: the graph was searched on %s codes",
							 HnswStorageName(bs->gstate->storage))));
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
		for (; i < bs->graph.nelements && bs->graph.elements[i].blkno == firstBlock + p; i++)
		{
			Size		size;
			HnswElementTuple etup = HnswBuildFormTuple(bs, &bs->graph.elements[i], &size);

			if (PageAddItem(page, (Item) etup, size, InvalidOffsetNumber, false, false)
				!= bs->graph.elements[i].offno)
				elog(ERROR, "failed to add element tuple to index \"%s\"",
					 RelationGetRelationName(bs->index));
		}
		GenericXLogFinish(xlog);
		UnlockReleaseBuffer(buf);
		MemoryContextSwitchTo(old);
		MemoryContextReset(bs->tmpCxt);
	}

	/* The metapage: dimensions and entry point. */
	ItemPointerSetInvalid(&entry);
	if (bs->graph.entry >= 0)
		ItemPointerSet(&entry, bs->graph.elements[bs->graph.entry].blkno,
					   bs->graph.elements[bs->graph.entry].offno);
	HnswUpdateMeta(bs->index, bs->state.dims, HNSW_ENTRY_SET, &entry, bs->graph.entryLevel,
				   NULL, NULL);
}

/* ---------- the heap scan ---------- */

/* Notes that the graph outgrew maintenance_work_mem: the rest goes on disk. */
static void
HnswBuildGoOnDisk(HnswBuildState *bs)
{
	ereport(NOTICE,
			(errmsg("crossmodal_hnsw graph no longer fits into maintenance_work_mem after %.0f tuples",
					bs->indexTuples),
			 errdetail("Building will take significantly longer."),
			 errhint("Increase maintenance_work_mem to speed up builds.")));
	bs->onDisk = true;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
}

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

	if (bs->state.dims == 0)
	{
		/* The first row fixes the dimensions (what follows from them lives as long as the build). */
		int			dims;

		(void) HnswDatumGetFloats(values[0], &dims);
		HnswCheckDims(&bs->state, dims);
		HnswSetDims(&bs->state, dims);
		bs->maxLevel = HnswMaxLevel(&bs->state);
		if (!bs->onDisk && bs->graph.nelements == 0)
			HnswBuildSetGraphState(bs, HnswBuildWantsInt8Graph(bs, HNSW_SERIAL_OVERHEAD));
	}
	old = MemoryContextSwitchTo(bs->tmpCxt);
	vector = HnswPrepareVector(&bs->state, values[0], &indexable);
	if (indexable)
	{
		int			level = HnswRandomLevel(bs->state.m, bs->maxLevel, &bs->prng);

		if (bs->graph.shared != NULL)
		{
			/* A row that finds the shared graph full is left for the leader. */
			if (HnswInsertElement(bs->gstate, &bs->graph, vector, tid, level))
				bs->indexTuples += 1;
			if (bs->isLeader)
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
											 pg_atomic_read_u32(&bs->graph.shared->nelements));
		}
		else
		{
			if (!bs->onDisk && MemoryContextMemAllocated(bs->graphCxt, true) > bs->memoryLimit)
			{
				HnswFlushGraph(bs);
				MemoryContextReset(bs->graphCxt);
				memset(&bs->graph, 0, sizeof(HnswMemGraph));
				HnswBuildGoOnDisk(bs);
			}
			HnswInsertElement(bs->onDisk ? &bs->state : bs->gstate, bs->onDisk ? NULL : &bs->graph,
							  vector, tid, level);
			bs->indexTuples += 1;
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->indexTuples);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCxt);
}

/* Writes the metapage (block 0), then the centroid's pages, if any. */
static void
HnswWriteMetaPage(Relation index, ForkNumber fork, int dims, const float4 *centroid)
{
	Buffer		buf;
	GenericXLogState *xlog;
	Page		page;

	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	Assert(BufferGetBlockNumber(buf) == HNSW_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	xlog = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(xlog, buf, GENERIC_XLOG_FULL_IMAGE);
	HnswInitMetaPage(page, dims, HnswGetM(index), HnswGetEfConstruction(index),
					 HnswGetStorage(index),
					 centroid ? (dims + HNSW_CENTROID_PER_PAGE - 1) / HNSW_CENTROID_PER_PAGE : 0);
	GenericXLogFinish(xlog);
	UnlockReleaseBuffer(buf);
	if (centroid != NULL)
		HnswWriteCentroid(index, fork, centroid, dims);
}

/* ---------- rabitq's centroid: the mean of the rows, a pass before the build ---------- */

typedef struct HnswCentroidState
{
	HnswIndexState state;
	double	   *sum;
	double		count;
	MemoryContext tmpCxt;
} HnswCentroidState;

static void
HnswCentroidCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
					 bool tupleIsAlive, void *arg)
{
	HnswCentroidState *cs = (HnswCentroidState *) arg;
	MemoryContext old;
	float4	   *v;
	bool		indexable;

	if (isnull[0])
		return;
	if (cs->state.dims == 0)
	{
		int			dims;

		(void) HnswDatumGetFloats(values[0], &dims);
		HnswCheckDims(&cs->state, dims);
		cs->state.dims = dims;
	}
	if (cs->sum == NULL)
		cs->sum = palloc0(sizeof(double) * cs->state.dims);
	old = MemoryContextSwitchTo(cs->tmpCxt);
	v = HnswPrepareVector(&cs->state, values[0], &indexable);
	if (indexable)
	{
		for (int i = 0; i < cs->state.dims; i++)
			cs->sum[i] += v[i];
		cs->count += 1;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(cs->tmpCxt);
}

/*
 * The mean of the rows' prepared vectors, or NULL when there are none;
 * *dims is the index's dimensions (fixed by the first row for a column
 * without a typmod).
 */
static float4 *
HnswBuildCentroid(Relation heap, Relation index, IndexInfo *indexInfo, int *dims)
{
	HnswCentroidState cs;
	HnswMetaPageData meta;
	float4	   *centroid = NULL;

	memset(&cs, 0, sizeof(cs));
	memset(&meta, 0, sizeof(meta));
	meta.dims = *dims;
	meta.m = HnswGetM(index);
	meta.efConstruction = HnswGetEfConstruction(index);
	meta.storage = HNSW_STORAGE_RABITQ;
	HnswInitState(&cs.state, index, &meta);
	HnswCheckStorage(&cs.state);
	if (cs.state.dims > 0)
		HnswCheckDims(&cs.state, cs.state.dims);
	cs.tmpCxt = AllocSetContextCreate(CurrentMemoryContext, "crossmodal_hnsw centroid",
									  ALLOCSET_DEFAULT_SIZES);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_CENTROID);
	table_index_build_scan(heap, index, indexInfo, true, true, HnswCentroidCallback, &cs, NULL);
	MemoryContextDelete(cs.tmpCxt);
	if (cs.count > 0)
	{
		centroid = palloc(sizeof(float4) * cs.state.dims);
		for (int i = 0; i < cs.state.dims; i++)
			centroid[i] = (float4) (cs.sum[i] / cs.count);
	}
	*dims = cs.state.dims;
	return centroid;
}

/* ---------- parallel build ---------- */

/* Looked up by name in each worker, so exported (crossmodal.h). */
extern CROSSMODAL_EXPORT void crossmodal_hnsw_parallel_build_main(dsm_segment *seg, shm_toc *toc);

/* One participant's share: scan its part of the heap, insert into the shared graph. */
static void
HnswParallelParticipate(HnswBuildShared *sh, ParallelTableScanDesc pscan, Relation heap,
						Relation index, IndexInfo *indexInfo, bool isLeader)
{
	HnswBuildState bs;
	HnswMetaPageData meta;
	TableScanDesc scan;

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	bs.isLeader = isLeader;
	HnswReadMeta(index, &meta);
	HnswInitState(&bs.state, index, &meta);
	bs.maxLevel = HnswMaxLevel(&bs.state);
	pg_prng_seed(&bs.prng, UINT64CONST(0x5eed0f4e5a1c0de) ^ (uint64) MyProcPid);
	HnswBuildContexts(&bs);
	HnswBuildGraphInit(&bs, sh);

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
crossmodal_hnsw_parallel_build_main(dsm_segment *seg, shm_toc *toc)
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
 * Whether a dynamic shared memory segment of the given size can be created
 * (with notice, a NOTICE says so when it cannot).
 * With POSIX shared memory (the default on Linux) a segment is a file in
 * /dev/shm, which containers cap at 64 MB unless told otherwise: a graph
 * larger than that would fail the whole build with "could not resize shared
 * memory segment ... No space left on device", where a serial build in local
 * memory would succeed.  Segments up to min_dynamic_shared_memory come from
 * the main shared memory area instead, so those are not checked.
 */
static bool
HnswSharedMemoryFits(Size size, bool notice)
{
#ifdef __linux__
	struct statvfs fs;
	double		avail;

	if (dynamic_shared_memory_type != DSM_IMPL_POSIX ||
		(double) size <= (double) min_dynamic_shared_memory * 1024 * 1024 ||
		statvfs("/dev/shm", &fs) != 0)
		return true;
	avail = (double) fs.f_bavail * (double) fs.f_frsize;
	if (avail >= (double) size || !notice)
		return avail >= (double) size;
	ereport(NOTICE,
			(errmsg("crossmodal_hnsw build runs without parallel workers: its graph needs %.0f MB of shared memory and /dev/shm has %.0f MB free",
					ceil((double) size / (1024 * 1024)), floor(avail / (1024 * 1024))),
			 errhint("Give the server a larger /dev/shm (in a container: docker run --shm-size, or shm_size in Compose) to build with workers.")));
	return false;
#else
	(void) notice;
	return true;
#endif
}

/*
 * Builds the graph with parallel workers into shared memory and writes it.
 * Returns false (nothing done) when a parallel build is not possible: the
 * estimated graph does not fit maintenance_work_mem, or not the shared memory
 * left (the serial build then keeps it in local memory).
 */
static bool
HnswBuildParallel(HnswBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo,
				  int nworkers)
{
	double		capacity = HnswBuildCapacity(bs);
	Size		overhead = sizeof(HnswSharedElement) + HNSW_SERIAL_OVERHEAD;
	bool		int8Graph = HnswBuildWantsInt8Graph(bs, overhead);
	Size		perElement = HnswBuildElementSize(bs, int8Graph);
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

	if (capacity > INT_MAX / 2 || !HnswBuildGraphFits(bs, int8Graph, overhead))
		return false;
	for (;;)
	{
		arenaSize = (Size) capacity * perElement;
		sharedSize = MAXALIGN(sizeof(HnswBuildShared)) +
			MAXALIGN(sizeof(HnswSharedElement) * (Size) capacity) + arenaSize;
		/* the margin covers the scan's state and what PostgreSQL adds itself */
		if (HnswSharedMemoryFits(sharedSize + 1024 * 1024, !int8Graph))
			break;
		if (!int8Graph)
			return false;
		/* workers on the index's own codes rather than one process on int8 ones */
		int8Graph = false;
		perElement = HnswBuildElementSize(bs, false);
	}

	EnterParallelMode();
	pcxt = CreateParallelContext("crossmodal", "crossmodal_hnsw_parallel_build_main", nworkers);
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
	sh->int8Graph = int8Graph;
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
	HnswBuildGraphInit(bs, sh);
	for (int i = 0; i < n; i++)
		(void) HnswMemGet(&bs->graph, i);
	bs->graph.nelements = n;
	bs->graph.entry = sh->entry;
	bs->graph.entryLevel = sh->entryLevel;
	HnswFlushGraph(bs);
	bs->heapTuples = sh->heapTuples;
	bs->indexTuples = sh->indexTuples;

	full = pg_atomic_read_u32(&sh->full) != 0;
	if (full)
	{
		HnswKeySetInit(&inGraph, (uint32) n);
		for (int i = 0; i < n; i++)
			HnswKeySetAdd(&inGraph, HnswTidKey(&bs->graph.elements[i].heaptid));
	}
	memset(&bs->graph, 0, sizeof(HnswMemGraph));

	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();

	/*
	 * The table held more rows than its statistics promised: insert the
	 * rows that were left out, on disk, in a second (serial) pass that skips
	 * every row already in the graph.
	 */
	if (full)
	{
		HnswBuildGoOnDisk(bs);
		bs->skip = &inGraph;
		bs->heapTuples = 0;
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
	int			dims = typmod > 0 ? typmod : 0;
	float4	   *centroid = NULL;
	int			nworkers = 0;
	bool		done = false;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	if (HnswGetStorage(index) == HNSW_STORAGE_RABITQ)
		centroid = HnswBuildCentroid(heap, index, indexInfo, &dims);
	HnswWriteMetaPage(index, MAIN_FORKNUM, dims, centroid);
	HnswReadMeta(index, &meta);
	HnswInitState(&bs.state, index, &meta);
	HnswCheckStorage(&bs.state);
	if (bs.state.dims > 0)
	{
		HnswCheckDims(&bs.state, bs.state.dims);
		bs.maxLevel = HnswMaxLevel(&bs.state);
	}

	/* A fixed seed: the same table gives the same graph. */
	pg_prng_seed(&bs.prng, UINT64CONST(0x5eed0f4e5a1c0de));
	bs.memoryLimit = (Size) maintenance_work_mem * 1024;
	HnswBuildContexts(&bs);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, HNSW_PHASE_LOAD);
	if (heap->rd_rel->reltuples > 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
									 (int64) heap->rd_rel->reltuples);

	/* Parallel when the dimensions are known up front and workers are allowed. */
	if (bs.state.dims > 0 && IsNormalProcessingMode() && !IsParallelWorker())
		nworkers = plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));
	if (nworkers > 0)
		done = HnswBuildParallel(&bs, heap, index, indexInfo, nworkers);
	if (!done)
	{
		HnswBuildGraphInit(&bs, NULL);
		table_index_build_scan(heap, index, indexInfo, true, true, HnswBuildCallback, &bs, NULL);
		if (!bs.onDisk)
			HnswFlushGraph(&bs);
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

	HnswWriteMetaPage(index, INIT_FORKNUM, typmod > 0 ? typmod : 0, NULL);
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
		case HNSW_PHASE_CENTROID:
			return "computing centroid";
		default:
			return NULL;
	}
}
