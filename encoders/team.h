/*
 * team.h
 *	  A team of threads for one call of the runtime: the caller plus helpers
 *	  started at the beginning of a forward pass and joined before it
 *	  returns, running tasks of independent units.
 */
#ifndef CM_TEAM_H
#define CM_TEAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Threads of a team, the caller included. */
#define CM_TEAM_MAX_THREADS 8

/*
 * One unit of a task; thread is 0 for the caller, 1 .. n_threads - 1 for
 * the helpers (each thread runs one unit at a time, so per-thread scratch
 * can be indexed by it).
 */
typedef void (*cm_team_fn) (void *ctx, int unit, int thread);

/*
 * Owned by the caller (e.g. on its stack); the fields are private to
 * team.c.  No thread outlives cm_team_stop, so a team is safe across fork
 * as long as it is started and stopped within one call.
 */
typedef struct cm_team
{
	int			n_threads;		/* 1: not started, tasks run on the caller */
	bool		stop;
	pthread_t	helpers[CM_TEAM_MAX_THREADS - 1];
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* a new task, or stop */
	pthread_cond_t done;		/* the last unit of a task finished */
	uint32_t	gen;			/* task number */
	_Atomic uint32_t posted;	/* gen (or stop) published for threads spinning without the lock */
	cm_team_fn	fn;				/* the current task, NULL between tasks */
	void	   *ctx;
	int			n_units;
	_Atomic uint64_t claim;		/* gen << 32 | next unit */
	_Atomic int finished;		/* units of the current task done */
	bool		(*helper_init) (void);	/* run first by each helper */
	int			init_done;		/* helpers whose helper_init returned */
	int			init_failed;	/* of which returned false */
	struct cm_team_helper
	{
		struct cm_team *team;
		int			thread;
	}			helper_args[CM_TEAM_MAX_THREADS - 1];
	double		start_wall_us;	/* when the team started (monotonic clock) */
	double		start_wait_us;	/* the caller's time waiting for a CPU then */
	double		helpers_wait_us;	/* the helpers' waiting, added as each exits */
	bool		wait_unknown;	/* a thread could not read its waiting time */
	double		wall_us;		/* from start to stop: set by cm_team_stop */
	double		wait_share;		/* see cm_team_wait_share; set by cm_team_stop */
} cm_team;

/*
 * Whether a caller's passes should use their team, from how the last ones
 * went: on a machine busier than it has CPUs, the threads of a team take
 * turns on fewer CPUs than threads, each waits for the others at every
 * meeting, and the pass is slower than on the caller alone (measured up to
 * 30% slower on 2 threads beside another 2-thread process).  Kept by the
 * caller between passes (zeroed at first: use the team).  Only the team is
 * advised: OpenBLAS keeps the threads it was given.
 */
typedef struct cm_team_advice
{
	double		solo_until_us;	/* run alone until then (monotonic clock) */
	double		backoff_us;		/* how long the next solo period lasts */
	int			starved;		/* team passes in a row whose threads lacked CPUs */
	long		solo_passes;	/* passes run alone on this advice, for reports */
} cm_team_advice;

/*
 * Start a team of n_threads (capped at CM_TEAM_MAX_THREADS) when it is 2
 * or more.  helper_init, when not NULL, runs first on each helper (e.g. to
 * claim what a library allocates per thread); the team starts only when it
 * returns true on every one.  Returns the number of threads running, 1 when
 * no helper could start or initialise (tasks then run on the caller alone;
 * stopping is still harmless).
 */
int			cm_team_start(cm_team *team, int n_threads, bool (*helper_init) (void));

/* Join the helpers; harmless on a team that did not start, or NULL. */
void		cm_team_stop(cm_team *team);

/*
 * After cm_team_stop on a team that started: the share of its threads' time
 * from start to stop that they spent runnable but waiting for a CPU (the
 * scheduler's run delay, /proc/thread-self/schedstat; sleeping for lack of
 * work does not count), and that wall time in *wall_us.  Near 0 when every
 * thread had a CPU; about 0.5 when two took turns on one.  Negative when it
 * is not known (no schedstat, or a team that did not start).
 */
double		cm_team_wait_share(const cm_team *team, double *wall_us);

/* Threads the next pass should start: n_threads, or 1 while advised alone. */
int			cm_team_advice_threads(cm_team_advice *advice, int n_threads, double now_us);

/*
 * Note how a pass on a team went (cm_team_wait_share): the second pass in a
 * row whose threads waited for CPUs more than CM_TEAM_STARVED_WAIT of their
 * time starts a solo period (one such pass is often a moment's noise: a
 * virtual machine's neighbours), 50 ms the first time and twice as long
 * each time the next team pass finds the same (up to 2 s); a pass that did
 * not wait resets it.  Passes shorter than 1 ms, or whose waiting is not
 * known, say nothing.
 */
void		cm_team_advice_note(cm_team_advice *advice, double wait_share, double wall_us,
								double now_us);

#define CM_TEAM_STARVED_WAIT 0.25

/* The monotonic clock, in microseconds. */
double		cm_monotonic_us(void);

/* Threads of a started team, 1 for NULL or one that did not start. */
int			cm_team_threads(const cm_team *team);

/*
 * fn(ctx, unit, thread) for every unit < n_units, spread over the team's
 * threads (on the caller alone when team is NULL or not started); returns
 * when all are done.  The caller runs unit 0 itself (so that work it
 * polls for, e.g. cancellation, always runs on it); the others are claimed
 * in order by whichever thread is free, so a helper the scheduler keeps
 * waiting leaves its share to the others.  Units must be independent of
 * each other.
 */
void		cm_team_run(cm_team *team, cm_team_fn fn, void *ctx, int n_units);

#endif							/* CM_TEAM_H */
