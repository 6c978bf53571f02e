/*
 * hnsw.h
 *	  Shared declarations of the crossmodal_hnsw index access method.
 *
 * On-disk layout.  Block 0 is the metapage (index-wide constants and the
 * graph's entry point).  Every other block holds element tuples; one element
 * tuple carries a heap TID, the (normalised, for cosine) vector and the
 * neighbour lists of every layer the element lives on, each neighbour stored
 * as an index TID plus its distance to this element.  Keeping the distance
 * lets an insert prune a full neighbour list while holding only that page's
 * lock, without reading any other vector.
 */
#ifndef CROSSMODAL_HNSW_H
#define CROSSMODAL_HNSW_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/itup.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "storage/block.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

#include "distance_kernels.h"

#define HNSW_MAGIC					0x434D4857	/* "CMHW" */
#define HNSW_VERSION				1
#define HNSW_METAPAGE_BLKNO			0
#define HNSW_PAGE_ID				0xFF9A

/*
 * Heavyweight page lock (on a block number no data page uses as a lock tag)
 * that scans and inserts hold in share mode while they follow graph edges;
 * vacuum takes it exclusively once before freeing dead elements' space.
 */
#define HNSW_SCAN_LOCK				0

/* Operator strategy and support function numbers. */
#define HNSW_DISTANCE_STRATEGY		1
#define HNSW_NSTRATEGIES			1
#define HNSW_DISTANCE_PROC			1
#define HNSW_NORM_PROC				2
#define HNSW_NPROCS					2

/* Index options and their ranges. */
#define HNSW_DEFAULT_M				16
#define HNSW_MIN_M					2
#define HNSW_MAX_M					100
#define HNSW_DEFAULT_EF_CONSTRUCTION 64
#define HNSW_MIN_EF_CONSTRUCTION	4
#define HNSW_MAX_EF_CONSTRUCTION	1000
#define HNSW_MAX_LEVEL				15

/* Build sub-phases reported in pg_stat_progress_create_index. */
#define HNSW_PHASE_LOAD				2
#define HNSW_PHASE_WRITE			3

/* Page flags. */
#define HNSW_PAGE_META				(1 << 0)
#define HNSW_PAGE_ELEMENTS			(1 << 1)

/*
 * Element flags.  VACUUM marks the elements of its current batch of dead
 * ones before it repairs the links to them: inserts that start after the
 * mark still walk through such elements but never link to them.
 */
#define HNSW_ELEMENT_DELETED		(1 << 0)

typedef struct HnswPageOpaqueData
{
	uint16		flags;
	uint16		page_id;		/* HNSW_PAGE_ID, for tools that look at pages */
} HnswPageOpaqueData;

typedef HnswPageOpaqueData *HnswPageOpaque;

#define HnswPageGetOpaque(page) ((HnswPageOpaque) PageGetSpecialPointer(page))

typedef struct HnswMetaPageData
{
	uint32		magic;
	uint32		version;
	int32		dims;			/* 0 until the first vector fixes it */
	uint16		m;
	uint16		efConstruction;
	ItemPointerData entry;		/* invalid when the graph is empty */
	int16		entryLevel;
} HnswMetaPageData;

typedef HnswMetaPageData *HnswMetaPage;

#define HnswPageGetMeta(page) ((HnswMetaPage) PageGetContents(page))

/*
 * An element tuple: header, float4 vector[dims], float4 ndist[nslots],
 * ItemPointerData ntid[nslots].  Layer 0 owns the first 2*m slots, layer l > 0
 * the m slots after that.  A layer's used slots come first; the rest hold an
 * invalid TID.
 */
typedef struct HnswElementTupleData
{
	uint8		level;
	uint8		flags;
	uint16		unused;
	ItemPointerData heaptid;
	uint16		pad;
	float4		data[FLEXIBLE_ARRAY_MEMBER];
} HnswElementTupleData;

typedef HnswElementTupleData *HnswElementTuple;

#define HNSW_ELEMENT_HEADER_SIZE	offsetof(HnswElementTupleData, data)

/* Number of neighbour slots of an element on `level`, and a layer's range. */
#define HnswLevelSlots(m, lc)		((lc) == 0 ? 2 * (m) : (m))
#define HnswLevelFirstSlot(m, lc)	((lc) == 0 ? 0 : 2 * (m) + ((lc) - 1) * (m))
#define HnswElementSlots(m, level)	(2 * (m) + (level) * (m))

static inline Size
HnswElementTupleSize(int dims, int m, int level)
{
	int			nslots = HnswElementSlots(m, level);

	return HNSW_ELEMENT_HEADER_SIZE + sizeof(float4) * (Size) dims
		+ (sizeof(float4) + sizeof(ItemPointerData)) * (Size) nslots;
}

static inline float4 *
HnswElementVector(HnswElementTuple etup)
{
	return etup->data;
}

static inline float4 *
HnswElementDists(HnswElementTuple etup, int dims)
{
	return etup->data + dims;
}

static inline ItemPointerData *
HnswElementTids(HnswElementTuple etup, int dims, int m)
{
	return (ItemPointerData *) (etup->data + dims + HnswElementSlots(m, etup->level));
}

/* Space a page offers to element tuples (one line pointer included). */
#define HNSW_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(HnswPageOpaqueData)) \
	 - sizeof(ItemIdData))

typedef struct HnswOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			m;
	int			efConstruction;
} HnswOptions;

/* How distances are computed for one index. */
typedef enum HnswMetric
{
	HNSW_METRIC_L2,				/* squared Euclidean distance */
	HNSW_METRIC_IP,				/* negative inner product */
	HNSW_METRIC_COSINE,			/* 1 - dot of unit vectors */
	HNSW_METRIC_OTHER			/* the opclass's support function, via fmgr */
} HnswMetric;

/*
 * Index-wide constants and the distance function, read once per build,
 * insert or scan.
 */
typedef struct HnswIndexState
{
	Relation	index;
	int			dims;
	int			m;
	int			efConstruction;
	HnswMetric	metric;
	bool		normalize;		/* unit-normalise vectors before use */
	FmgrInfo   *distanceProc;	/* used for HNSW_METRIC_OTHER */
	Oid			collation;
} HnswIndexState;

/*
 * The buffer each block was last found in, kept per backend in the index's
 * relcache entry (rd_amcache): a search re-pins it with ReadRecentBuffer,
 * skipping the shared buffer mapping lookup that otherwise dominates.
 */
typedef struct HnswBufferCache
{
	BlockNumber nblocks;
	Buffer		buffers[FLEXIBLE_ARRAY_MEMBER];
} HnswBufferCache;

#define HNSW_BUFFER_CACHE_MAX_BLOCKS	(1 << 20)

/* One element seen by a graph search. */
typedef struct HnswCandidate
{
	float		dist;
	bool		expanded;		/* its neighbours have been visited */
	bool		emitted;		/* returned by a scan already */
	bool		deleted;		/* marked HNSW_ELEMENT_DELETED by vacuum */
	uint8		level;
	ItemPointerData tid;		/* where the element tuple lives */
	ItemPointerData heaptid;
	ItemPointerData *neighbors; /* copy of its list on the searched layer */
	int			nneighbors;
	float4	   *vector;			/* copy, when the search keeps vectors */
} HnswCandidate;

/* A binary heap of candidate indexes ordered by distance. */
typedef struct HnswHeap
{
	int		   *items;
	int			count;
	int			capacity;
	bool		maxHeap;
} HnswHeap;

/* An open-addressing set of 64-bit keys (TIDs or element numbers). */
typedef struct HnswKeySet
{
	uint64	   *keys;			/* 0 means empty, so keys are stored + 1 */
	uint32		mask;
	uint32		count;
} HnswKeySet;

/*
 * A search over the graph on disk, resumable: a scan that has returned all of
 * one batch continues from the candidates it did not expand and the elements
 * it visited but did not keep.
 */
typedef struct HnswSearch
{
	HnswIndexState *state;
	const float4 *query;		/* NULL: every distance is 0 */
	int			level;
	int			ef;
	bool		keepVectors;
	bool		skipDeleted;	/* walk through deleted elements, never return them */
	HnswCandidate *pool;
	int			npool;
	int			poolCapacity;
	HnswHeap	candidates;		/* min-heap of unexpanded candidates */
	HnswHeap	results;		/* max-heap of the current batch */
	int		   *discarded;		/* visited, not in any batch yet */
	int			ndiscarded;
	int			discardedCapacity;
	HnswKeySet	visited;
	int64		nvisited;
} HnswSearch;

/*
 * Walks the element pages of an index in block order, each one pinned and
 * locked in `lockmode` until the next call (or HnswPageWalkRelease).  Between
 * pages it checks for interrupts (and, under VACUUM, applies the cost delay).
 */
typedef struct HnswPageWalk
{
	Relation	index;
	BufferAccessStrategy strategy;
	int			lockmode;
	BlockNumber next;
	BlockNumber end;
	Buffer		buf;
} HnswPageWalk;

/* Distance kernels of the embedding type, chosen for this CPU at load time. */
extern const DistanceKernels *hnsw_kernels;

static inline float
HnswKernelDot(const float4 *a, const float4 *b, int n)
{
	return hnsw_kernels->inner_product(a, b, n);
}

static inline float
HnswKernelL2Squared(const float4 *a, const float4 *b, int n)
{
	return hnsw_kernels->l2_squared(a, b, n);
}

/* GUCs */
extern int	hnsw_ef_search;
extern int	hnsw_max_scan_tuples;
extern bool hnsw_scan_sweep;

/* hnsw.c */
extern void HnswInit(void);
extern Datum crossmodal_hnsw_handler(PG_FUNCTION_ARGS);
extern int	HnswGetM(Relation index);
extern int	HnswGetEfConstruction(Relation index);

/* hnswbuild.c */
extern IndexBuildResult *hnswbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void hnswbuildempty(Relation index);
extern char *hnswbuildphasename(int64 phasenum);

/* hnswinsert.c */
extern bool hnswinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
					   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
					   IndexInfo *indexInfo);
extern void HnswInsertVector(HnswIndexState *state, const float4 *vector, ItemPointer heaptid,
							 pg_prng_state *prng);

/* hnswscan.c */
extern IndexScanDesc hnswbeginscan(Relation index, int nkeys, int norderbys);
extern void hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
extern bool hnswgettuple(IndexScanDesc scan, ScanDirection dir);
extern void hnswendscan(IndexScanDesc scan);

/* hnswvacuum.c */
extern IndexBulkDeleteResult *hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
											 IndexBulkDeleteCallback callback, void *callback_state);
extern IndexBulkDeleteResult *hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);

/* hnswutils.c */
extern HnswMetric HnswIdentifyMetric(PGFunction fn, bool normalize);
extern float HnswKernelViaProc(FmgrInfo *proc, Oid collation, const float4 *a,
							   const float4 *b, int dims);
extern const float4 *HnswDatumGetFloats(Datum value, int *dims);
extern void HnswInitPage(Page page, uint16 flags);
extern void HnswInitMetaPage(Page page, int dims, int m, int efConstruction);
extern void HnswReadMeta(Relation index, HnswMetaPageData *meta);
extern void HnswInitState(HnswIndexState *state, Relation index, const HnswMetaPageData *meta);
extern Buffer HnswReadBuffer(HnswIndexState *state, BlockNumber blkno);
extern float4 *HnswPrepareVector(HnswIndexState *state, Datum value, bool *indexable);
extern void HnswCheckDims(HnswIndexState *state, int dims);
extern int	HnswMaxLevel(int dims, int m);
extern int	HnswRandomLevel(int m, int maxLevel, pg_prng_state *prng);
extern float HnswDistance(HnswIndexState *state, const float4 *a, const float4 *b);
extern void HnswNormalize(float4 *v, int dims, bool *zero);
extern int	HnswSelectNeighbors(HnswIndexState *state, HnswCandidate *cands, int ncands,
								int maxNeighbors, int *selected);

extern void HnswHeapInit(HnswHeap *heap, int capacity, bool maxHeap);
extern void HnswHeapPush(HnswHeap *heap, int item, const HnswCandidate *pool);
extern int	HnswHeapPop(HnswHeap *heap, const HnswCandidate *pool);
extern int	HnswHeapTop(const HnswHeap *heap);

extern void HnswPageWalkBegin(HnswPageWalk *walk, Relation index, BufferAccessStrategy strategy,
							  int lockmode, BlockNumber start, BlockNumber end);
extern Buffer HnswPageWalkNext(HnswPageWalk *walk);
extern void HnswPageWalkRelease(HnswPageWalk *walk);

extern void HnswKeySetInit(HnswKeySet *set, uint32 expected);
extern bool HnswKeySetAdd(HnswKeySet *set, uint64 key);
extern bool HnswKeySetContains(const HnswKeySet *set, uint64 key);

static inline uint64
HnswTidKey(ItemPointer tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) |
		ItemPointerGetOffsetNumberNoCheck(tid);
}

extern void HnswSearchInit(HnswSearch *search, HnswIndexState *state, const float4 *query,
						   int ef, bool keepVectors);
extern bool HnswSearchAddEntry(HnswSearch *search, ItemPointer tid, int level);
extern void HnswSearchLayer(HnswSearch *search, int level, int ef, int64 maxVisited);
extern int	HnswSearchResults(HnswSearch *search, int *out);
extern bool HnswSearchContinue(HnswSearch *search);
extern void HnswSearchBeginLayer(HnswSearch *search, int level);

#endif							/* CROSSMODAL_HNSW_H */
