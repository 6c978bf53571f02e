/*
 * encode_once.h
 *	  A planner hook that makes a query's default-model encode of a constant
 *	  or a parameter an InitPlan, evaluated once per execution.
 */
#ifndef CROSSMODAL_ENCODE_ONCE_H
#define CROSSMODAL_ENCODE_ONCE_H

/* Defines crossmodal.encode_once; installs the hook when preloaded. */
extern void EncodeOnceInit(void);

#endif							/* CROSSMODAL_ENCODE_ONCE_H */
