/*
 * crossmodal.h
 *	  What the library exports: the declaration macro of SQL-callable functions.
 *
 * PostgreSQL loads extension libraries with global symbol binding, so every
 * name a library exports can be bound to by another library loaded into the
 * same backend, and a call inside one library can land in another's function
 * of the same name (pgvector defines HnswInit, cosine_distance, ...).  The
 * library is therefore compiled with -fvisibility=hidden (Makefile) and
 * exports only what PostgreSQL looks up with dlsym: Pg_magic_func, _PG_init,
 * each SQL-callable function with its pg_finfo_ record, and the entry points
 * of parallel workers.  Their C names start with "crossmodal_", so that no
 * exported name can equal another extension's; the SQL names do not change.
 *
 * PostgreSQL 15's PGDLLEXPORT is empty outside Windows and its
 * PG_FUNCTION_INFO_V1 does not mark the function itself, hence our own macro.
 * test/check_exports.sh compares the built library's exports with the
 * install script.
 */
#ifndef CROSSMODAL_H
#define CROSSMODAL_H

#include "postgres.h"

#include "fmgr.h"

#define CROSSMODAL_EXPORT __attribute__((visibility("default")))

/*
 * Use in place of PG_FUNCTION_INFO_V1: declares the function and its info
 * record with default visibility, then defines the record.
 */
#define CROSSMODAL_FUNCTION(funcname) \
extern CROSSMODAL_EXPORT Datum funcname(PG_FUNCTION_ARGS); \
extern CROSSMODAL_EXPORT const Pg_finfo_record *CppConcat(pg_finfo_,funcname)(void); \
PG_FUNCTION_INFO_V1(funcname)

#endif							/* CROSSMODAL_H */
