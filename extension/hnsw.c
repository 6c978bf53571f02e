/*
 * hnsw.c
 *	  The crossmodal_hnsw access method: handler, options, settings, cost estimate, opclass validation.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/amvalidate.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "crossmodal.h"
#include "hnsw.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"

int			hnsw_ef_search = 40;
int			hnsw_iterative_scan = HNSW_ITERATIVE_SCAN_RELAXED;
int			hnsw_max_scan_tuples = 20000;
double		hnsw_scan_mem_multiplier = 1;
bool		hnsw_scan_sweep = true;

/* pgvector's names for the modes of hnsw.iterative_scan */
static const struct config_enum_entry hnsw_iterative_scan_options[] = {
	{"off", HNSW_ITERATIVE_SCAN_OFF, false},
	{"relaxed_order", HNSW_ITERATIVE_SCAN_RELAXED, false},
	{"strict_order", HNSW_ITERATIVE_SCAN_STRICT, false},
	{NULL, 0, false}
};

static relopt_kind hnsw_relopt_kind;

/* Rejects a storage option naming no form. */
static void
HnswValidateStorage(const char *value)
{
	HnswStorage storage;

	if (value != NULL && !HnswStorageParse(value, &storage))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for crossmodal_hnsw option \"storage\": \"%s\"", value),
				 errdetail("Valid values are \"float4\", \"half\", \"int8\" and \"rabitq\".")));
}

/* Defines the index options and the settings; called once from _PG_init. */
void
HnswInit(void)
{
	if (hnsw_kernels == NULL)
		hnsw_kernels = DistanceKernelsBest();

	hnsw_relopt_kind = add_reloption_kind();
	add_int_reloption(hnsw_relopt_kind, "m",
					  "Maximum number of links per element on the upper layers (twice that on layer 0)",
					  HNSW_DEFAULT_M, HNSW_MIN_M, HNSW_MAX_M, AccessExclusiveLock);
	add_int_reloption(hnsw_relopt_kind, "ef_construction",
					  "Size of the candidate list while building the graph",
					  HNSW_DEFAULT_EF_CONSTRUCTION, HNSW_MIN_EF_CONSTRUCTION,
					  HNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	add_string_reloption(hnsw_relopt_kind, "storage",
						 "Form of the vectors in the index: float4, half, int8 or rabitq",
						 HnswStorageName(HNSW_DEFAULT_STORAGE), HnswValidateStorage,
						 AccessExclusiveLock);

	DefineCustomIntVariable("crossmodal.hnsw_ef_search",
							"Size of the candidate list of a crossmodal_hnsw search.",
							"Larger values find more of the true nearest neighbours, more slowly.",
							&hnsw_ef_search, 40, 1, 1000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("crossmodal.hnsw_iterative_scan",
							 "Whether a crossmodal_hnsw scan goes on past its first ef_search rows.",
							 "off: the first search's rows only; relaxed_order: further batches, ordered "
							 "within each; strict_order: further batches, leaving out any row nearer than "
							 "one already returned.",
							 &hnsw_iterative_scan, HNSW_ITERATIVE_SCAN_RELAXED,
							 hnsw_iterative_scan_options, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("crossmodal.hnsw_max_scan_tuples",
							"Most index elements one crossmodal_hnsw scan reads.",
							"An iterative scan whose rows a WHERE clause keeps rejecting goes on searching until it has read this many elements.",
							&hnsw_max_scan_tuples, 20000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	/* Same range as hash_mem_multiplier, as pgvector's hnsw.scan_mem_multiplier */
	DefineCustomRealVariable("crossmodal.hnsw_scan_mem_multiplier",
							 "Memory an iterative crossmodal_hnsw scan may use, as a multiple of work_mem.",
							 "An iterative scan stops going on once its memory reaches this bound.",
							 &hnsw_scan_mem_multiplier, 1, 1, 1000,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("crossmodal.hnsw_scan_sweep",
							 "Lets a crossmodal_hnsw scan that has followed every link read the index pages for the rest.",
							 "Off, a scan returns only what the graph's links lead to, which tests use to check them.",
							 &hnsw_scan_sweep, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}

static bytea *
hnswoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"m", RELOPT_TYPE_INT, offsetof(HnswOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(HnswOptions, efConstruction)},
		{"storage", RELOPT_TYPE_STRING, offsetof(HnswOptions, storageOffset)},
	};
	HnswOptions *opts;

	opts = (HnswOptions *) build_reloptions(reloptions, validate, hnsw_relopt_kind,
											sizeof(HnswOptions), tab, lengthof(tab));
	if (validate && opts != NULL && opts->efConstruction < 2 * opts->m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ef_construction must be at least 2 * m"),
				 errdetail("ef_construction is %d and m is %d.", opts->efConstruction, opts->m)));
	return (bytea *) opts;
}

int
HnswGetM(Relation index)
{
	HnswOptions *opts = (HnswOptions *) index->rd_options;

	return opts ? opts->m : HNSW_DEFAULT_M;
}

int
HnswGetEfConstruction(Relation index)
{
	HnswOptions *opts = (HnswOptions *) index->rd_options;

	return opts ? opts->efConstruction : HNSW_DEFAULT_EF_CONSTRUCTION;
}

/* The storage form an index is built with (the metapage says what it has). */
HnswStorage
HnswGetStorage(Relation index)
{
	HnswOptions *opts = (HnswOptions *) index->rd_options;
	HnswStorage storage = HNSW_DEFAULT_STORAGE;

	if (opts != NULL && opts->storageOffset > 0)
		(void) HnswStorageParse((const char *) opts + opts->storageOffset, &storage);
	return storage;
}

/*
 * Cost model.  The whole first search runs before the first row comes back,
 * so it is startup cost: about ef_search * m elements are read, each one a
 * distance (at the ordering function's own cost) and a mostly cached page
 * access.  Every further row costs a share of a further batch: about m more
 * distances.  With LIMIT k the planner charges startup + k/N of the rest, so
 * small LIMITs favour the index and a LIMIT near N favours a sequential scan
 * and a sort.
 */
static void
hnswcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				 Cost *indexStartupCost, Cost *indexTotalCost,
				 Selectivity *indexSelectivity, double *indexCorrelation,
				 double *indexPages)
{
	IndexOptInfo *index = path->indexinfo;
	GenericCosts costs;
	double		ntuples = Max(index->tuples, 1.0);
	int			m = HNSW_DEFAULT_M;
	double		visited;
	double		distCost = cpu_operator_cost;
	double		perElement;
	double		pagesPerElement;
	Expr	   *orderby;

	if (path->indexorderbys == NIL)
	{
		/* Only ORDER BY scans: never for a WHERE clause alone. */
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	{
		Relation	rel = index_open(index->indexoid, NoLock);

		m = HnswGetM(rel);
		index_close(rel, NoLock);
	}
	orderby = (Expr *) linitial(path->indexorderbys);
	{
		QualCost	qc;

		cost_qual_eval_node(&qc, (Node *) orderby, root);
		distCost = Max(qc.per_tuple, cpu_operator_cost);
	}

	MemSet(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);

	visited = Min(ntuples, (double) hnsw_ef_search * m);
	pagesPerElement = Min(1.0, (double) index->pages / ntuples);
	perElement = distCost + cpu_index_tuple_cost + pagesPerElement * seq_page_cost;

	*indexStartupCost = visited * perElement;
	*indexTotalCost = *indexStartupCost + ntuples * (m * distCost + cpu_index_tuple_cost);
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = 0;
	*indexPages = costs.numIndexPages;
}

/*
 * Checks an operator class of crossmodal_hnsw: one ordering operator
 * (strategy 1) returning float8, support function 1 (distance, two
 * arguments of the opclass type, float8 result), optional support
 * function 2 (norm, one argument, float8 result: vectors are unit-normalised).
 */
static bool
hnswvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup;
	Form_pg_opclass classform;
	Oid			opfamilyoid;
	Oid			opcintype;
	char	   *opclassname;
	HeapTuple	familytup;
	char	   *opfamilyname;
	CatCList   *proclist,
			   *oprlist;
	bool		hasDistance = false;
	bool		hasOperator = false;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opcintype = classform->opcintype;
	opclassname = NameStr(classform->opcname);

	familytup = SearchSysCache1(OPFAMILYOID, ObjectIdGetDatum(opfamilyoid));
	if (!HeapTupleIsValid(familytup))
		elog(ERROR, "cache lookup failed for operator family %u", opfamilyoid);
	opfamilyname = NameStr(((Form_pg_opfamily) GETSTRUCT(familytup))->opfname);

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));

	for (int i = 0; i < proclist->n_members; i++)
	{
		HeapTuple	proctup = &proclist->members[i]->tuple;
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(proctup);
		bool		ok;

		if (procform->amproclefttype != opcintype || procform->amprocrighttype != opcintype)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("crossmodal_hnsw operator family \"%s\" contains support function %s with cross-type registration",
							opfamilyname, format_procedure(procform->amproc))));
			result = false;
			continue;
		}
		switch (procform->amprocnum)
		{
			case HNSW_DISTANCE_PROC:
				ok = check_amproc_signature(procform->amproc, FLOAT8OID, false,
											2, 2, opcintype, opcintype);
				hasDistance = true;
				break;
			case HNSW_NORM_PROC:
				ok = check_amproc_signature(procform->amproc, FLOAT8OID, false,
											1, 1, opcintype);
				break;
			default:
				ereport(INFO,
						(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
						 errmsg("crossmodal_hnsw operator family \"%s\" contains function %s with invalid support number %d",
								opfamilyname, format_procedure(procform->amproc),
								procform->amprocnum)));
				result = false;
				continue;
		}
		if (!ok)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("crossmodal_hnsw operator family \"%s\" contains function %s with wrong signature for support number %d",
							opfamilyname, format_procedure(procform->amproc),
							procform->amprocnum)));
			result = false;
		}
	}

	for (int i = 0; i < oprlist->n_members; i++)
	{
		HeapTuple	oprtup = &oprlist->members[i]->tuple;
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(oprtup);

		if (oprform->amopstrategy != HNSW_DISTANCE_STRATEGY)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("crossmodal_hnsw operator family \"%s\" contains operator %s with invalid strategy number %d",
							opfamilyname, format_operator(oprform->amopopr),
							oprform->amopstrategy)));
			result = false;
			continue;
		}
		if (oprform->amoppurpose != AMOP_ORDER || !OidIsValid(oprform->amopsortfamily))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("crossmodal_hnsw operator family \"%s\" contains operator %s that is not an ordering operator",
							opfamilyname, format_operator(oprform->amopopr)),
					 errhint("Declare it with FOR ORDER BY float_ops.")));
			result = false;
			continue;
		}
		if (!check_amop_signature(oprform->amopopr, FLOAT8OID,
								  oprform->amoplefttype, oprform->amoprighttype) ||
			oprform->amoplefttype != opcintype || oprform->amoprighttype != opcintype)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("crossmodal_hnsw operator family \"%s\" contains operator %s with wrong signature",
							opfamilyname, format_operator(oprform->amopopr))));
			result = false;
			continue;
		}
		hasOperator = true;
	}

	if (!hasDistance)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("crossmodal_hnsw operator class \"%s\" is missing support function %d",
						opclassname, HNSW_DISTANCE_PROC)));
		result = false;
	}
	if (!hasOperator)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("crossmodal_hnsw operator class \"%s\" is missing its ordering operator",
						opclassname)));
		result = false;
	}

	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(familytup);
	ReleaseSysCache(classtup);
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_hnsw_handler);
Datum
crossmodal_hnsw_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *amroutine = makeNode(IndexAmRoutine);

	amroutine->amstrategies = HNSW_NSTRATEGIES;
	amroutine->amsupport = HNSW_NPROCS;
	amroutine->amoptsprocnum = 0;
	amroutine->amcanorder = false;
	amroutine->amcanorderbyop = true;
	amroutine->amcanbackward = false;
	amroutine->amcanunique = false;
	amroutine->amcanmulticol = false;
	amroutine->amoptionalkey = true;
	amroutine->amsearcharray = false;
	amroutine->amsearchnulls = false;
	amroutine->amstorage = false;
	amroutine->amclusterable = false;
	amroutine->ampredlocks = false;
	amroutine->amcanparallel = false;
	amroutine->amcaninclude = false;
	amroutine->amusemaintenanceworkmem = false;
	amroutine->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	amroutine->amkeytype = InvalidOid;

	amroutine->ambuild = hnswbuild;
	amroutine->ambuildempty = hnswbuildempty;
	amroutine->aminsert = hnswinsert;
	amroutine->ambulkdelete = hnswbulkdelete;
	amroutine->amvacuumcleanup = hnswvacuumcleanup;
	amroutine->amcanreturn = NULL;
	amroutine->amcostestimate = hnswcostestimate;
	amroutine->amoptions = hnswoptions;
	amroutine->amproperty = NULL;
	amroutine->ambuildphasename = hnswbuildphasename;
	amroutine->amvalidate = hnswvalidate;
	amroutine->amadjustmembers = NULL;
	amroutine->ambeginscan = hnswbeginscan;
	amroutine->amrescan = hnswrescan;
	amroutine->amgettuple = hnswgettuple;
	amroutine->amgetbitmap = NULL;
	amroutine->amendscan = hnswendscan;
	amroutine->ammarkpos = NULL;
	amroutine->amrestrpos = NULL;
	amroutine->amestimateparallelscan = NULL;
	amroutine->aminitparallelscan = NULL;
	amroutine->amparallelrescan = NULL;

	PG_RETURN_POINTER(amroutine);
}
