/*
 * hnsw.h
 *	  Shared declarations of the crossmodal_hnsw index access method.
 *
 * On-disk format (version 2; a checker should accept versions 1 and 2)
 * --------------------------------------------------------------------
 * Every page is a standard PostgreSQL page (PageInit) whose special space is
 * an HnswPageOpaqueData: flags (HNSW_PAGE_META, HNSW_PAGE_CENTROID or
 * HNSW_PAGE_ELEMENTS) and page_id = HNSW_PAGE_ID.  Pages never change kind.  Every change to a page
 * is WAL-logged through Generic WAL.  All values are in the server's byte
 * order.
 *
 * Block 0 is the metapage: an HnswMetaPageData at PageGetContents, with
 * pd_lower just past it.  magic = HNSW_MAGIC; version = HNSW_VERSION; dims
 * (0 until the first vector fixes it); m (HNSW_MIN_M..HNSW_MAX_M) and
 * efConstruction as built; entry, the TID of the graph's entry point
 * (invalid while the graph is empty: then entryLevel is -1), and entryLevel,
 * its top layer, which no element exceeds; storage (an HnswStorage),
 * centroidBlocks and seed (rabitq's centroid pages and rotation).  Version 1
 * had none of these (its metapage ends at entryLevel) and only float4
 * elements, laid out as version 2's float4: version 1 indexes are read as
 * float4, and their lists may be unsorted.
 *
 * Blocks 1 .. centroidBlocks (rabitq only; none for an index built on an
 * empty table) are centroid pages: the centroid of the rows the index was
 * built on, float4[dims] split into HNSW_CENTROID_PER_PAGE values a page,
 * at PageGetContents, pd_lower just past them.  centroidBlocks is
 * ceil(dims / HNSW_CENTROID_PER_PAGE) or 0.
 *
 * Every other block is an element page: line pointers to element tuples
 * (MAXALIGNed, line pointers either normal or unused, never dead or
 * redirected), each one element of the graph (HnswElementTupleData):
 *   level (uint8)     the element's top layer, 0..HNSW_MAX_LEVEL
 *   flags (uint8)     HNSW_ELEMENT_DELETED once VACUUM has marked it dead
 *   unused (uint16)   0
 *   heaptid           the heap row it indexes (valid)
 *   pad (uint16)      0
 *   code              codeSize bytes (a multiple of 4, hnswstorage.c): the
 *                     vector in the index's storage form, computed from the
 *                     row's vector unit-normalised for an operator class
 *                     with support function 2 (cosine):
 *                       float4  float4[dims]
 *                       half    float4 error; uint16[dims] (IEEE binary16,
 *                               all finite); padding to 4
 *                       int8    float4 scale, norm2, error; int8[dims] in
 *                               -127..127; padding to 4
 *                       rabitq  float4 norm, dot, cdot; uint8 bits[D / 8],
 *                               D = dims rounded up to a multiple of 64
 *                               (of the vector minus the centroid)
 *                     error, norm2, norm >= 0; dot in (0, 1]
 *   ndist             float4[nslots], distance from this element to each
 *                     neighbour (the graph's distance, see HnswDistance)
 *   ntid              ItemPointerData[nslots], the neighbours' index TIDs
 * with nslots = 2m + level * m: layer 0 owns slots 0 .. 2m-1, layer l > 0
 * the m slots from 2m + (l - 1) m, and the tuple's length is exactly
 * HnswElementTupleSize(codeSize, m, level).  A layer's used slots come
 * first, sorted by distance, nearest first (in version 2); the rest hold an
 * invalid TID.  A neighbour is another element, on an element page, whose
 * level is at least the layer's; it is never the element itself.  Readers
 * skip a link whose slot no longer holds an element on that layer (the
 * element was freed by VACUUM, and its slot maybe reused), so a checker can
 * only report such links, not reject them; VACUUM removes links to the
 * elements it frees before freeing them.  An element tuple never grows or
 * moves while it lives: inserts and VACUUM rewrite its lists in place.
 * Every element is reachable from the entry point through links, except
 * the few HNSW's neighbour selection leaves without an incoming link (scans
 * find those by sweeping the pages).
 *
 * Keeping the distance with each link lets an insert decide about a full
 * list while holding only that page's lock.
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
#include "port/atomics.h"
#include "storage/block.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/relcache.h"

#include "distance_kernels.h"

#define HNSW_MAGIC					0x434D4857	/* "CMHW" */
#define HNSW_VERSION				2
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
#define HNSW_PHASE_CENTROID			4

/* Page flags. */
#define HNSW_PAGE_META				(1 << 0)
#define HNSW_PAGE_ELEMENTS			(1 << 1)
#define HNSW_PAGE_CENTROID			(1 << 2)

/* float4 values a centroid page holds. */
#define HNSW_CENTROID_PER_PAGE \
	((BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(HnswPageOpaqueData))) / sizeof(float4))

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

/* The forms an index stores its vectors in (hnswstorage.c). */
typedef enum HnswStorage
{
	HNSW_STORAGE_FLOAT4 = 0,	/* the vector itself: exact distances */
	HNSW_STORAGE_HALF = 1,		/* IEEE half precision */
	HNSW_STORAGE_INT8 = 2,		/* 8-bit scalar, one scale per vector */
	HNSW_STORAGE_RABITQ = 3		/* RaBitQ: one bit per rotated dimension */
} HnswStorage;

#define HNSW_DEFAULT_STORAGE		HNSW_STORAGE_FLOAT4

/* The seed of rabitq's random rotation, kept in the metapage. */
#define HNSW_ROTATION_SEED			UINT64CONST(0x43524F5353424954)

typedef struct HnswMetaPageData
{
	uint32		magic;
	uint32		version;
	int32		dims;			/* 0 until the first vector fixes it */
	uint16		m;
	uint16		efConstruction;
	ItemPointerData entry;		/* invalid when the graph is empty */
	int16		entryLevel;
	/* version 2 */
	uint8		storage;		/* HnswStorage */
	uint8		unused;
	uint16		centroidBlocks; /* rabitq: blocks 1 .. centroidBlocks hold the centroid */
	uint32		unused2;
	uint64		seed;			/* rabitq: the rotation's seed */
} HnswMetaPageData;

typedef HnswMetaPageData *HnswMetaPage;

#define HnswPageGetMeta(page) ((HnswMetaPage) PageGetContents(page))

/* An element tuple; see the format at the top of this file. */
typedef struct HnswElementTupleData
{
	uint8		level;
	uint8		flags;
	uint16		unused;
	ItemPointerData heaptid;
	uint16		pad;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* code, ndist, ntid */
} HnswElementTupleData;

typedef HnswElementTupleData *HnswElementTuple;

#define HNSW_ELEMENT_HEADER_SIZE	offsetof(HnswElementTupleData, data)

/* Number of neighbour slots of an element on `level`, and a layer's range. */
#define HnswLevelSlots(m, lc)		((lc) == 0 ? 2 * (m) : (m))
#define HnswLevelFirstSlot(m, lc)	((lc) == 0 ? 0 : 2 * (m) + ((lc) - 1) * (m))
#define HnswElementSlots(m, level)	(2 * (m) + (level) * (m))

/* Bytes of an element tuple whose code takes codeSize bytes (a multiple of 4). */
static inline Size
HnswElementTupleSize(Size codeSize, int m, int level)
{
	return HNSW_ELEMENT_HEADER_SIZE + codeSize
		+ (sizeof(float4) + sizeof(ItemPointerData)) * (Size) HnswElementSlots(m, level);
}

static inline char *
HnswElementCode(HnswElementTuple etup)
{
	return etup->data;
}

static inline float4 *
HnswElementDists(HnswElementTuple etup, Size codeSize)
{
	return (float4 *) (etup->data + codeSize);
}

static inline ItemPointerData *
HnswElementTids(HnswElementTuple etup, Size codeSize, int m)
{
	return (ItemPointerData *) (etup->data + codeSize
								+ sizeof(float4) * HnswElementSlots(m, etup->level));
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
	int			storageOffset;	/* the storage option's string */
} HnswOptions;

/* How distances are computed for one index. */
typedef enum HnswMetric
{
	HNSW_METRIC_L2,				/* squared Euclidean distance */
	HNSW_METRIC_IP,				/* negative inner product */
	HNSW_METRIC_COSINE,			/* 1 - dot of unit vectors */
	HNSW_METRIC_L1,				/* taxicab distance */
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
	HnswStorage storage;
	uint64		seed;			/* rabitq: the rotation's seed */
	int			codeDims;		/* dimensions of the code's space (rabitq pads them) */
	Size		codeSize;		/* bytes of an element's code, a multiple of 4 */
	uint8	   *rotationSigns;	/* rabitq: the rotation's sign flips */
	float4	   *centroid;		/* rabitq: codes hold x - centroid (NULL: none) */
	float4		centroidNorm2;
	HnswMetric	metric;
	bool		normalize;		/* unit-normalise vectors before use */
	FmgrInfo   *distanceProc;	/* used for HNSW_METRIC_OTHER */
	Oid			collation;
} HnswIndexState;

/*
 * A vector as the graph's distances take it, in the code's space (rotated,
 * for rabitq): an input vector, prepared (unit-normalised for cosine), or an
 * element's code read back.
 */
typedef struct HnswQuery
{
	const float4 *x;			/* codeDims values; NULL: at distance 0 from everything */
	float4		norm2;			/* |x|^2 */
	float4		sum;			/* rabitq: the sum of the values */
	float4		offset;			/* rabitq: <query, centroid> */
	const char *code;			/* int8, rabitq: an element's code, as itself */
} HnswQuery;

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

/*
 * Elements are named by an HnswId: in a graph a build keeps in memory, the
 * element's number; on disk, its index TID packed by HnswTidKey.
 */
typedef uint64 HnswId;

#define HNSW_INVALID_ID				PG_UINT64_MAX

static inline uint64
HnswTidKey(ItemPointer tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) |
		ItemPointerGetOffsetNumberNoCheck(tid);
}

static inline void
HnswIdGetTid(HnswId id, ItemPointer tid)
{
	ItemPointerSet(tid, (BlockNumber) (id >> 16), (OffsetNumber) (id & 0xFFFF));
}

/*
 * The graph a build keeps in memory.  Elements are numbered in the order
 * they are added; their lists hold element numbers, in the same slots as on
 * disk, sorted by distance.  In a parallel build the elements live in one
 * dynamic shared memory segment (HnswBuildShared) and `elements` is this
 * participant's view of them, filled in as it learns their numbers.
 */
typedef struct HnswMemElement
{
	ItemPointerData heaptid;
	uint8		level;
	OffsetNumber offno;			/* position on disk, assigned when written */
	BlockNumber blkno;
	char	   *code;
	char	   *store;			/* the code in the index's own form (see storeState), or NULL */
	int32	   *nbr;			/* neighbour numbers, slots as on disk */
	float4	   *dist;			/* their distances */
	uint8	   *count;			/* used slots per layer */
} HnswMemElement;

/*
 * Parallel build: every participant inserts into one graph in dynamic
 * shared memory.  Elements are numbered by an atomic counter and carved
 * from an arena by an atomic offset; each element's lists are guarded by its
 * own LWLock (a participant holds at most one of them at a time), the entry
 * point by entryLock.  An element is complete before its number is
 * published (through a neighbour's list or the entry point).
 */
typedef struct HnswSharedElement
{
	LWLock		lock;			/* guards nbr, dist and count */
	ItemPointerData heaptid;
	uint8		level;
	Size		codeOff;		/* offsets into the arena */
	Size		nbrOff;
	Size		distOff;
	Size		countOff;
	Size		storeOff;
} HnswSharedElement;

typedef struct HnswBuildShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	int			trancheId;
	int			capacity;		/* elements */
	Size		arenaSize;
	pg_atomic_uint32 nelements; /* may run past capacity when full */
	pg_atomic_uint64 arenaUsed;
	pg_atomic_uint32 full;		/* an allocation failed: rows were left out */
	bool		int8Graph;		/* the graph is built on int8 codes (hnswbuild.c) */
	LWLock		entryLock;
	int32		entry;
	int			entryLevel;
	slock_t		mutex;			/* guards the counts below */
	double		heapTuples;
	double		indexTuples;
	int			nparticipants;
} HnswBuildShared;

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

typedef struct HnswMemGraph
{
	HnswMemElement *elements;
	int			nelements;		/* serial build */
	int			capacity;
	int32		entry;			/* serial build: -1 when empty */
	int			entryLevel;
	HnswBuildShared *shared;	/* parallel build, else NULL */
	MemoryContext cxt;			/* serial build: where elements live */
	char	   *chunk;			/* serial build: the block elements are carved from */
	Size		chunkLeft;
	Size		chunkNext;		/* size of the next block (they grow) */
	uint32	   *visitMark;		/* per element: epoch of the last visit */
	uint32		epoch;

	/*
	 * When not NULL, the graph's codes are of a more compact form than the
	 * index's (a build searches float4 and half indexes on int8 codes), and
	 * each element also keeps its code in the index's form (`store`), which
	 * is what gets written.
	 */
	HnswIndexState *storeState;
} HnswMemGraph;

/* One element seen by a graph search. */
typedef struct HnswCandidate
{
	HnswId		id;
	float		dist;
	float		bound;			/* scans of compact forms: lower bound of the exact distance */
	uint8		flags;			/* HNSW_CAND_* */
	uint8		level;
	ItemPointerData heaptid;
	const char *code;			/* its code, when the search keeps them */
} HnswCandidate;

#define HNSW_CAND_EXPANDED			(1 << 0)	/* its neighbours have been visited */
#define HNSW_CAND_EMITTED			(1 << 1)	/* in a batch a scan returned */
#define HNSW_CAND_DELETED			(1 << 2)	/* marked HNSW_ELEMENT_DELETED */
#define HNSW_CAND_QUEUED			(1 << 3)	/* in the candidates heap */

/* A binary heap of pool entries ordered by distance (kept with each item). */
typedef struct HnswHeapItem
{
	float		dist;
	int			idx;
} HnswHeapItem;

typedef struct HnswHeap
{
	HnswHeapItem *items;
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
 * A search over one layer of the graph (in memory when `mem` is set, else on
 * disk).  A scan's search is resumable: after it has returned all of one
 * batch it continues from the candidates it did not expand and the elements
 * it visited but did not keep.
 */
typedef struct HnswSearch
{
	HnswIndexState *state;
	HnswMemGraph *mem;			/* NULL: the graph on disk */
	HnswQuery	query;
	int			level;
	int			ef;
	bool		keepCodes;		/* copy the code of every element in a batch */
	bool		skipDeleted;	/* walk through deleted elements, never return them */
	bool		resumable;		/* keep what a batch set aside (scans) */
	bool		bounds;			/* fill in each candidate's bound (scans) */
	HnswCandidate *pool;
	int			npool;
	int			poolCapacity;
	HnswHeap	candidates;		/* min-heap of unexpanded candidates */
	HnswHeap	results;		/* max-heap of the current batch */
	int		   *discarded;		/* visited, not in any batch yet */
	int			ndiscarded;
	int			discardedCapacity;
	HnswKeySet	visited;		/* on disk (in memory: the graph's visit marks) */
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

/* How HnswUpdateMeta moves the entry point. */
typedef enum HnswEntryChange
{
	HNSW_ENTRY_KEEP,			/* leave it */
	HNSW_ENTRY_SET,				/* always */
	HNSW_ENTRY_IF_HIGHER,		/* when the new one reaches a higher layer */
	HNSW_ENTRY_IF_CURRENT		/* when the entry point is still `expected` */
} HnswEntryChange;

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

static inline float
HnswKernelL1(const float4 *a, const float4 *b, int n)
{
	return hnsw_kernels->l1(a, b, n);
}

/* crossmodal.hnsw_iterative_scan: whether and how a scan goes past its first batch */
typedef enum HnswIterativeScan
{
	HNSW_ITERATIVE_SCAN_OFF,	/* the first ef_search candidates only */
	HNSW_ITERATIVE_SCAN_RELAXED,	/* further batches, order approximate across them */
	HNSW_ITERATIVE_SCAN_STRICT	/* further batches, rows nearer than one returned dropped */
} HnswIterativeScan;

/* GUCs */
extern int	hnsw_ef_search;
extern int	hnsw_iterative_scan;
extern int	hnsw_max_scan_tuples;
extern double hnsw_scan_mem_multiplier;
extern bool hnsw_scan_sweep;

/* hnsw.c */
extern void HnswInit(void);
extern Datum crossmodal_hnsw_handler(PG_FUNCTION_ARGS);
extern int	HnswGetM(Relation index);
extern int	HnswGetEfConstruction(Relation index);
extern HnswStorage HnswGetStorage(Relation index);

/* hnswbuild.c */
extern IndexBuildResult *hnswbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void hnswbuildempty(Relation index);
extern char *hnswbuildphasename(int64 phasenum);

/* hnswinsert.c */
extern bool hnswinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
					   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
					   IndexInfo *indexInfo);
extern void HnswPlaceTuple(Relation index, HnswElementTuple etup, Size size, ItemPointer tid);

/* hnswscan.c */
extern IndexScanDesc hnswbeginscan(Relation index, int nkeys, int norderbys);
extern void hnswrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
extern bool hnswgettuple(IndexScanDesc scan, ScanDirection dir);
extern void hnswendscan(IndexScanDesc scan);

/* hnswvacuum.c */
extern IndexBulkDeleteResult *hnswbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
											 IndexBulkDeleteCallback callback, void *callback_state);
extern IndexBulkDeleteResult *hnswvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);

/* hnswgraph.c: the HNSW algorithms, for the graph in memory and on disk */
extern void HnswSearchInit(HnswSearch *search, HnswIndexState *state, HnswMemGraph *mem,
						   const HnswQuery *query, int ef, bool keepCodes);
extern void HnswSearchBeginLayer(HnswSearch *search, int level);
extern bool HnswSearchAddEntry(HnswSearch *search, HnswId id);
extern void HnswSearchAddCandidate(HnswSearch *search, const HnswCandidate *c);
extern bool HnswSearchDescend(HnswSearch *search, int level);
extern void HnswSearchLayer(HnswSearch *search, int ef, int64 maxVisited);
extern int	HnswSearchResults(HnswSearch *search, int *out);
extern bool HnswSearchContinue(HnswSearch *search);
extern bool HnswSearchVisited(HnswSearch *search, HnswId id);
extern int	HnswSelectNeighbors(HnswIndexState *state, const char *ownerCode,
								const HnswCandidate *cands, int ncands, int maxNeighbors,
								int *selected);
extern bool HnswInsertElement(HnswIndexState *state, HnswMemGraph *mem, const float4 *vector,
							  ItemPointer heaptid, int level);
extern bool HnswRelink(HnswIndexState *state, HnswMemGraph *mem, HnswId id);
extern int	HnswRelinkOrphansMem(HnswIndexState *state, HnswMemGraph *mem);
extern HnswMemElement *HnswMemGet(HnswMemGraph *mem, int32 idx);
extern void HnswSortLinks(ItemPointerData *tids, float4 *dists, int n);

/* hnswutils.c */
extern const float4 *HnswDatumGetFloats(Datum value, int *dims);
extern void HnswInitPage(Page page, uint16 flags);
extern void HnswInitMetaPage(Page page, int dims, int m, int efConstruction,
							 HnswStorage storage, int centroidBlocks);
extern void HnswReadMeta(Relation index, HnswMetaPageData *meta);
extern bool HnswUpdateMeta(Relation index, int dims, HnswEntryChange change, ItemPointer entry,
						   int entryLevel, ItemPointer expected, HnswMetaPageData *after);
extern void HnswApplyMeta(Relation index, Buffer metabuf, int dims, ItemPointer entry, int entryLevel);
extern HnswElementTuple HnswPageGetElement(Page page, ItemPointer tid, int minLevel,
										   ItemPointer heaptid);
extern HnswElementTuple HnswReadElementCopy(Relation index, BufferAccessStrategy strategy,
											ItemPointer tid);
extern HnswElementTuple HnswFormElementTuple(HnswIndexState *state, const char *code,
											 ItemPointer heaptid, int level, Size *size);
extern void HnswInitState(HnswIndexState *state, Relation index, const HnswMetaPageData *meta);
extern Buffer HnswReadBuffer(HnswIndexState *state, BlockNumber blkno);
extern float4 *HnswPrepareVector(HnswIndexState *state, Datum value, bool *indexable);
extern int	HnswMaxLevel(HnswIndexState *state);
extern int	HnswRandomLevel(int m, int maxLevel, pg_prng_state *prng);
extern float HnswDistanceViaProc(HnswIndexState *state, const float4 *a, const float4 *b);
extern void HnswNormalize(float4 *v, int dims, bool *zero);

/* hnswstorage.c */
extern const char *HnswStorageName(HnswStorage storage);
extern bool HnswStorageParse(const char *name, HnswStorage *storage);
extern Size HnswCodeSize(HnswStorage storage, int dims);
extern void HnswSetDims(HnswIndexState *state, int dims);
extern void HnswCheckDims(HnswIndexState *state, int dims);
extern void HnswCheckStorage(HnswIndexState *state);
extern void HnswMakeQuery(HnswIndexState *state, const float4 *vector, HnswQuery *q);
extern void HnswWriteCentroid(Relation index, ForkNumber fork, const float4 *centroid, int dims);
extern void HnswReadCentroid(HnswIndexState *state, int blocks);
extern void HnswEncode(HnswIndexState *state, const HnswQuery *q, const float4 *vector, char *code);
extern void HnswCodeQuery(HnswIndexState *state, const char *code, HnswQuery *q, float4 *scratch);
extern char *HnswCodeProblem(HnswIndexState *state, const char *code);
extern float HnswDistance(HnswIndexState *state, const HnswQuery *q, const char *code);
extern float HnswLowerBound(HnswIndexState *state, const char *code, float approx, float queryNorm);
extern float HnswExactDistance(HnswIndexState *state, const float4 *query, const float4 *rawQuery,
							   const float4 *x);

extern void HnswPageWalkBegin(HnswPageWalk *walk, Relation index, BufferAccessStrategy strategy,
							  int lockmode, BlockNumber start, BlockNumber end);
extern Buffer HnswPageWalkNext(HnswPageWalk *walk);
extern void HnswPageWalkRelease(HnswPageWalk *walk);

extern void HnswKeySetInit(HnswKeySet *set, uint32 expected);
extern void HnswKeySetClear(HnswKeySet *set);
extern bool HnswKeySetAdd(HnswKeySet *set, uint64 key);
extern bool HnswKeySetContains(const HnswKeySet *set, uint64 key);

#endif							/* CROSSMODAL_HNSW_H */
