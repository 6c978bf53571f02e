/*
 * encode_once.c
 *	  Default-model encodes of a constant or a parameter, once per query.
 *
 * encode_text(text) and encode_image(bytea) read crossmodal.default_model,
 * so they are STABLE, and PostgreSQL evaluates a STABLE call where it
 * stands: once per row in a filter or a sort, once in each parallel worker,
 * and on Citus once on every shard (Citus sends a SELECT's STABLE calls to
 * the shards, where they read the workers' settings).  The same query with
 * the call written as a scalar sub-select, ORDER BY emb <=> (SELECT
 * encode_text('...')), gets an InitPlan: evaluated once per execution, in
 * the backend that runs the query (Citus runs it on the coordinator and
 * sends the shards its value), and still usable as an index scan's order-by
 * or key.  This hook writes that sub-select for the user, in the planner's
 * own copy of the query, before the previous hook (Citus's) plans it.
 *
 * Only what cannot change a result is rewritten:
 * - calls whose argument is made of constants and external parameters
 *   (no column, no sub-select, nothing volatile or set-returning), so the
 *   sub-select is uncorrelated; a STABLE function gives one result for one
 *   input within a statement, which is what the InitPlan computes (lazily:
 *   a call in a branch never taken is still never evaluated), reading
 *   crossmodal.default_model when the query runs, so a generic plan follows
 *   the setting from one execution to the next;
 * - in SELECT query levels that read a table (a query without FROM is
 *   evaluated once anyway, and PL/pgSQL runs such expressions on its fast
 *   path, which a sub-select would leave);
 * - not in a grouped level's target list or HAVING, where the planner
 *   matches expressions to the GROUP BY ones by equality and two sub-selects
 *   of one call would not match;
 * - never in INSERT, UPDATE, DELETE or MERGE (nor their CTEs), FROM-clause
 *   functions or VALUES lists.  Generated columns, index expressions and
 *   function bodies are not part of the query the planner is given (and
 *   require IMMUTABLE calls); views and SQL functions are expanded into it
 *   from their stored definitions, which are never modified.
 *
 * PostgreSQL loads a library that is not preloaded when the query that
 * first needs it is already being planned, so that a session's first query
 * would be planned without the hook: it is installed only from
 * shared_preload_libraries ('citus,crossmodal' on a Citus coordinator:
 * Citus requires to be first there, and a hook installed later runs first).
 */
#include "postgres.h"

#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "encode_once.h"

static bool cm_encode_once = true;
static planner_hook_type prev_planner_hook = NULL;

/*
 * Which functions are the default-model encoders, by OID, for this backend:
 * filled as the planner meets functions, emptied when pg_proc changes.
 */
typedef struct EncoderOid
{
	Oid			funcid;			/* hash key */
	bool		is_encoder;
} EncoderOid;

static HTAB *encoder_oids = NULL;
static bool encoder_oids_callback = false;

static void
EncoderOidsInvalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (encoder_oids != NULL)
	{
		hash_destroy(encoder_oids);
		encoder_oids = NULL;
	}
}

/*
 * Whether a pg_proc row is encode_text(text) or encode_image(bytea) of this
 * library, in whatever schema: a C function with our symbol (exported names
 * start with crossmodal_, see crossmodal.h), that signature, STABLE.
 */
static bool
ClassifyFunction(Oid funcid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	bool		result = false;

	if (!HeapTupleIsValid(tuple))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	if (proc->prolang == ClanguageId && proc->pronargs == 1 && !proc->proretset &&
		proc->provolatile == PROVOLATILE_STABLE)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc, &isnull);

		if (!isnull)
		{
			char	   *symbol = TextDatumGetCString(src);
			Oid			argtype = proc->proargtypes.values[0];

			result = (argtype == TEXTOID && strcmp(symbol, "crossmodal_encode_text") == 0) ||
				(argtype == BYTEAOID && strcmp(symbol, "crossmodal_encode_image") == 0);
			pfree(symbol);
		}
	}
	ReleaseSysCache(tuple);
	return result;
}

static bool
IsDefaultModelEncoder(Oid funcid)
{
	EncoderOid *entry;
	bool		found;

	if (encoder_oids == NULL)
	{
		HASHCTL		ctl;

		if (!encoder_oids_callback)
		{
			CacheRegisterSyscacheCallback(PROCOID, EncoderOidsInvalidate, (Datum) 0);
			encoder_oids_callback = true;
		}
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EncoderOid);
		ctl.hcxt = TopMemoryContext;
		encoder_oids = hash_create("crossmodal encoder functions", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(encoder_oids, &funcid, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->is_encoder;

	/*
	 * Classify before entering: the catalog lookup can process an
	 * invalidation that destroys the table.
	 */
	found = ClassifyFunction(funcid);
	if (encoder_oids != NULL)
	{
		entry = hash_search(encoder_oids, &funcid, HASH_ENTER, NULL);
		entry->is_encoder = found;
	}
	return found;
}

/*
 * True when an argument expression holds something that a sub-select
 * evaluated once, ahead of the rows, could not compute as the call would:
 * a column of any query level, a value computed by the plan, an aggregate,
 * a sub-select, something volatile or set-returning.
 */
static bool
ArgumentVaries(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) || IsA(node, PlaceHolderVar) || IsA(node, Aggref) ||
		IsA(node, GroupingFunc) || IsA(node, WindowFunc) || IsA(node, SubLink) ||
		IsA(node, SubPlan) || IsA(node, AlternativeSubPlan) || IsA(node, CurrentOfExpr) ||
		IsA(node, NextValueExpr) || IsA(node, Query))
		return true;
	if (IsA(node, Param))
		return ((Param *) node)->paramkind != PARAM_EXTERN;
	if ((IsA(node, FuncExpr) && ((FuncExpr *) node)->funcretset) ||
		(IsA(node, OpExpr) && ((OpExpr *) node)->opretset))
		return true;
	return expression_tree_walker(node, ArgumentVaries, context);
}

static bool
IsCandidate(Node *node)
{
	FuncExpr   *call;

	if (!IsA(node, FuncExpr))
		return false;
	call = (FuncExpr *) node;
	return !call->funcretset && list_length(call->args) == 1 &&
		IsDefaultModelEncoder(call->funcid) &&
		!ArgumentVaries(linitial(call->args), NULL) &&
		!contain_volatile_functions(linitial(call->args));
}

/* (SELECT call): an uncorrelated scalar sub-select, planned as an InitPlan. */
static Node *
ScalarSubselect(FuncExpr *call)
{
	Query	   *query = makeNode(Query);
	SubLink    *sublink = makeNode(SubLink);

	query->commandType = CMD_SELECT;
	query->querySource = QSRC_ORIGINAL;
	query->canSetTag = true;
	query->jointree = makeFromExpr(NIL, NULL);
	query->targetList = list_make1(makeTargetEntry((Expr *) call, 1,
												   get_func_name(call->funcid), false));
	query->stmt_location = -1;

	sublink->subLinkType = EXPR_SUBLINK;
	sublink->subLinkId = 0;
	sublink->testexpr = NULL;
	sublink->operName = NIL;
	sublink->subselect = (Node *) query;
	sublink->location = call->location;
	return (Node *) sublink;
}

/*
 * One walk serves both passes: finding (rewrite false: is there anything to
 * rewrite?, which costs no copy) and rewriting.  here: whether the
 * expression being walked belongs to a part of its query level where calls
 * may be rewritten.
 */
typedef struct EncodeOnceContext
{
	bool		rewrite;
	bool		here;
	bool		found;			/* anywhere */
	bool		level_rewritten;	/* in the query level being visited */
} EncodeOnceContext;

static bool VisitQuery(Query *query, EncodeOnceContext *cxt);

static Node *
RewriteExpr(Node *node, EncodeOnceContext *cxt)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
	{
		VisitQuery((Query *) node, cxt);
		return node;
	}
	if (cxt->here && IsCandidate(node))
	{
		cxt->found = cxt->level_rewritten = true;
		return ScalarSubselect((FuncExpr *) node);
	}
	return expression_tree_mutator(node, RewriteExpr, cxt);
}

static bool
FindExpr(Node *node, EncodeOnceContext *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return VisitQuery((Query *) node, cxt);
	if (cxt->here && IsCandidate(node))
	{
		cxt->found = true;
		return true;
	}
	return expression_tree_walker(node, FindExpr, cxt);
}

/* Visits (or rewrites) one part of a query level. */
static Node *
VisitPart(Node *node, bool here, EncodeOnceContext *cxt)
{
	bool		outer_here = cxt->here;

	if (!cxt->rewrite && cxt->found)
		return node;
	cxt->here = here;
	if (cxt->rewrite)
		node = RewriteExpr(node, cxt);
	else
		(void) FindExpr(node, cxt);
	cxt->here = outer_here;
	return node;
}

/*
 * Visits a query level and the query levels below it; returns whether a
 * call to rewrite was found (when finding, it stops at the first).
 */
static bool
VisitQuery(Query *query, EncodeOnceContext *cxt)
{
	bool		outer_level_rewritten = cxt->level_rewritten;
	bool		level;
	bool		ungrouped;
	ListCell   *lc;

	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		return cxt->found;
	level = query->rtable != NIL;
	ungrouped = level && query->groupClause == NIL && query->groupingSets == NIL;
	cxt->level_rewritten = false;

	query->targetList = (List *) VisitPart((Node *) query->targetList, ungrouped, cxt);
	query->jointree = (FromExpr *) VisitPart((Node *) query->jointree, level, cxt);
	query->havingQual = VisitPart(query->havingQual, ungrouped, cxt);
	if (cxt->level_rewritten)
		query->hasSubLinks = true;
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_SUBQUERY && (cxt->rewrite || !cxt->found))
			(void) VisitQuery(rte->subquery, cxt);
	}
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

		if (!cte->cterecursive && IsA(cte->ctequery, Query) && (cxt->rewrite || !cxt->found))
			(void) VisitQuery((Query *) cte->ctequery, cxt);
	}
	cxt->level_rewritten = outer_level_rewritten;
	return cxt->found;
}

static PlannedStmt *
EncodeOncePlanner(Query *parse, const char *query_string, int cursorOptions,
				  ParamListInfo boundParams)
{
	if (cm_encode_once && parse->commandType == CMD_SELECT && parse->utilityStmt == NULL)
	{
		EncodeOnceContext cxt = {false, false, false, false};

		if (VisitQuery(parse, &cxt))
		{
			cxt.rewrite = true;
			cxt.found = false;
			(void) VisitQuery(parse, &cxt);
		}
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

void
EncodeOnceInit(void)
{
	DefineCustomBoolVariable("crossmodal.encode_once",
							 "Evaluates a query's encode_text(text) and encode_image(bytea) of a constant or a parameter once per execution.",
							 "As a sub-select (an InitPlan): on Citus, on the coordinator rather than on every shard. "
							 "Takes effect only when crossmodal is in shared_preload_libraries.",
							 &cm_encode_once,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_planner_hook = planner_hook;
		planner_hook = EncodeOncePlanner;
	}
}
