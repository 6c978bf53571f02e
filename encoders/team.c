/*
 * team.c
 *	  The threads of one forward pass: the caller and its helpers claim the
 *	  units of each task in turn.
 *
 * Units are claimed, not assigned: a helper the scheduler keeps waiting
 * (a busy machine) leaves its share to the threads that run, and the caller
 * never waits for a helper that has not started on a unit.  Between tasks
 * the caller does only a few microseconds of other work, while waking a
 * sleeping thread costs tens of microseconds on a busy or virtual machine:
 * a thread about to wait spins for up to TEAM_SPIN_US first.
 */
#include "team.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define spin_pause() _mm_pause()
#else
#define spin_pause() ((void) 0)
#endif

#define TEAM_SPIN_US 200.0

/*
 * Claim the next unit of task generation gen: false once they are all
 * taken or the task is no longer the current one (a helper late to a task
 * finds it finished and does nothing).  The claim word holds gen << 32 |
 * next unit.
 */
static bool
claim_unit(cm_team *team, uint32_t gen, int n_units, int *unit)
{
	uint64_t	v = atomic_load(&team->claim);

	for (;;)
	{
		if ((uint32_t) (v >> 32) != gen || (int) (uint32_t) v >= n_units)
			return false;
		if (atomic_compare_exchange_weak(&team->claim, &v, v + 1))
		{
			*unit = (int) (uint32_t) v;
			return true;
		}
	}
}

/* Run units of the task of generation gen while there are any left. */
static void
work_on(cm_team *team, cm_team_fn fn, void *ctx, int n_units, uint32_t gen, int thread)
{
	int			unit;

	while (claim_unit(team, gen, n_units, &unit))
	{
		fn(ctx, unit, thread);
		if (atomic_fetch_add(&team->finished, 1) + 1 == n_units)
		{
			pthread_mutex_lock(&team->lock);
			pthread_cond_signal(&team->done);
			pthread_mutex_unlock(&team->lock);
		}
	}
}

double
cm_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/*
 * The calling thread's time spent runnable but waiting for a CPU, in
 * microseconds (the second field of /proc/thread-self/schedstat); false
 * where that cannot be read (no advice then).
 */
static bool
thread_wait_us(double *us)
{
	char		buf[128];
	int			fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	ssize_t		n;
	char	   *p,
			   *end;
	unsigned long long ns;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	(void) strtoull(buf, &p, 10);	/* time on a CPU */
	if (p == buf)
		return false;
	ns = strtoull(p, &end, 10);
	if (end == p)
		return false;
	*us = (double) ns * 1e-3;
	return true;
}

/* Whether, checked every 256 turns of a spin, TEAM_SPIN_US are up. */
static bool
spin_expired(int turn, double *deadline)
{
	double		t;

	if ((turn & 255) != 0)
		return false;
	t = cm_monotonic_us();
	if (*deadline == 0.0)
		*deadline = t + TEAM_SPIN_US;
	return t > *deadline;
}

/* Spins while *word == value, for TEAM_SPIN_US at most. */
static void
spin_while_equal(_Atomic uint32_t *word, uint32_t value)
{
	double		deadline = 0.0;

	for (int turn = 1; atomic_load_explicit(word, memory_order_acquire) == value &&
		 !spin_expired(turn, &deadline); turn++)
		spin_pause();
}

/* Spins while *word < limit, for TEAM_SPIN_US at most. */
static void
spin_while_below(_Atomic int *word, int limit)
{
	double		deadline = 0.0;

	for (int turn = 1; atomic_load_explicit(word, memory_order_acquire) < limit &&
		 !spin_expired(turn, &deadline); turn++)
		spin_pause();
}

static void *
helper_main(void *arg)
{
	struct cm_team_helper *self = arg;
	cm_team    *team = self->team;
	uint32_t	seen = 0;
	double		wait0 = 0.0;
	bool		wait_known = thread_wait_us(&wait0);
	bool		ok = team->helper_init == NULL || team->helper_init();

	pthread_mutex_lock(&team->lock);
	team->init_done++;
	team->init_failed += ok ? 0 : 1;
	pthread_cond_signal(&team->done);
	pthread_mutex_unlock(&team->lock);

	for (;;)
	{
		cm_team_fn	fn;
		void	   *ctx;
		int			n_units;

		spin_while_equal(&team->posted, seen);
		pthread_mutex_lock(&team->lock);
		while (!team->stop && team->gen == seen)
			pthread_cond_wait(&team->wake, &team->lock);
		if (team->stop)
		{
			double		wait1;

			if (wait_known && thread_wait_us(&wait1))
				team->helpers_wait_us += wait1 - wait0;
			else
				team->wait_unknown = true;
			pthread_mutex_unlock(&team->lock);
			break;
		}
		seen = team->gen;
		fn = team->fn;			/* NULL: that task is already done */
		ctx = team->ctx;
		n_units = team->n_units;
		pthread_mutex_unlock(&team->lock);
		if (fn != NULL)
			work_on(team, fn, ctx, n_units, seen, self->thread);
	}
	return NULL;
}

int
cm_team_threads(const cm_team *team)
{
	return team == NULL ? 1 : team->n_threads;
}

void
cm_team_run(cm_team *team, cm_team_fn fn, void *ctx, int n_units)
{
	uint32_t	gen;

	if (team == NULL || team->n_threads < 2 || n_units < 2)
	{
		for (int u = 0; u < n_units; u++)
			fn(ctx, u, 0);
		return;
	}

	/* ctx stays valid until every claimed unit is done. */
	pthread_mutex_lock(&team->lock);
	gen = ++team->gen;
	team->fn = fn;
	team->ctx = ctx;
	team->n_units = n_units;
	atomic_store(&team->finished, 0);
	/* unit 0 is the caller's: helpers start claiming at 1 */
	atomic_store(&team->claim, (uint64_t) gen << 32 | 1u);
	atomic_store_explicit(&team->posted, gen, memory_order_release);
	pthread_cond_broadcast(&team->wake);
	pthread_mutex_unlock(&team->lock);

	fn(ctx, 0, 0);
	atomic_fetch_add(&team->finished, 1);
	work_on(team, fn, ctx, n_units, gen, 0);

	/* Wait for units helpers claimed and are still running. */
	spin_while_below(&team->finished, n_units);
	pthread_mutex_lock(&team->lock);
	while (atomic_load(&team->finished) < n_units)
		pthread_cond_wait(&team->done, &team->lock);
	team->fn = NULL;
	team->ctx = NULL;
	pthread_mutex_unlock(&team->lock);
}

int
cm_team_start(cm_team *team, int n_threads, bool (*helper_init) (void))
{
	sigset_t	all,
				old;
	int			started = 0;

	team->n_threads = 1;
	team->wall_us = 0.0;
	team->wait_share = -1.0;
	if (n_threads < 2)
		return 1;
	if (n_threads > CM_TEAM_MAX_THREADS)
		n_threads = CM_TEAM_MAX_THREADS;
	team->stop = false;
	team->gen = 0;
	team->fn = NULL;
	team->ctx = NULL;
	team->n_units = 0;
	team->helper_init = helper_init;
	team->init_done = 0;
	team->init_failed = 0;
	team->helpers_wait_us = 0.0;
	team->wait_unknown = !thread_wait_us(&team->start_wait_us);
	team->start_wall_us = cm_monotonic_us();
	atomic_init(&team->posted, 0);
	atomic_init(&team->claim, 0);
	atomic_init(&team->finished, 0);
	if (pthread_mutex_init(&team->lock, NULL) != 0)
		return 1;
	if (pthread_cond_init(&team->wake, NULL) != 0)
	{
		pthread_mutex_destroy(&team->lock);
		return 1;
	}
	if (pthread_cond_init(&team->done, NULL) != 0)
	{
		pthread_cond_destroy(&team->wake);
		pthread_mutex_destroy(&team->lock);
		return 1;
	}

	/*
	 * Helpers start with every signal blocked, so that the caller's handlers
	 * (a PostgreSQL backend's) never run on them.
	 */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0)
	{
		for (; started < n_threads - 1; started++)
		{
			team->helper_args[started].team = team;
			team->helper_args[started].thread = started + 1;
			if (pthread_create(&team->helpers[started], NULL, helper_main,
							   &team->helper_args[started]) != 0)
				break;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	team->n_threads = 1 + started;
	if (started > 0)
	{
		bool		failed;

		/*
		 * A helper whose initialisation failed waits for tasks like the
		 * others (so that stopping joins them all) but none is posted.
		 */
		pthread_mutex_lock(&team->lock);
		while (team->init_done < started)
			pthread_cond_wait(&team->done, &team->lock);
		failed = team->init_failed > 0;
		pthread_mutex_unlock(&team->lock);
		if (failed)
		{
			cm_team_stop(team);
			return 1;
		}
	}
	if (started == 0)
	{
		pthread_cond_destroy(&team->done);
		pthread_cond_destroy(&team->wake);
		pthread_mutex_destroy(&team->lock);
	}
	return team->n_threads;
}

void
cm_team_stop(cm_team *team)
{
	if (team == NULL || team->n_threads < 2)
		return;
	pthread_mutex_lock(&team->lock);
	team->stop = true;
	atomic_store_explicit(&team->posted, team->gen + 1, memory_order_release);
	pthread_cond_broadcast(&team->wake);
	pthread_mutex_unlock(&team->lock);
	for (int i = 0; i < team->n_threads - 1; i++)
		pthread_join(team->helpers[i], NULL);
	pthread_cond_destroy(&team->done);
	pthread_cond_destroy(&team->wake);
	pthread_mutex_destroy(&team->lock);
	team->wall_us = cm_monotonic_us() - team->start_wall_us;
	{
		double		wait1;

		if (!team->wait_unknown && team->wall_us > 0.0 && thread_wait_us(&wait1))
			team->wait_share = (wait1 - team->start_wait_us + team->helpers_wait_us) /
				(team->wall_us * team->n_threads);
	}
	team->n_threads = 1;
}

double
cm_team_wait_share(const cm_team *team, double *wall_us)
{
	*wall_us = team->wall_us;
	return team->wait_share;
}

#define ADVICE_FIRST_US 50e3
#define ADVICE_MAX_US 2e6
#define ADVICE_MIN_PASS_US 1e3

int
cm_team_advice_threads(cm_team_advice *advice, int n_threads, double now_us)
{
	if (n_threads < 2 || now_us >= advice->solo_until_us)
		return n_threads;
	advice->solo_passes++;
	return 1;
}

void
cm_team_advice_note(cm_team_advice *advice, double wait_share, double wall_us, double now_us)
{
	if (wall_us < ADVICE_MIN_PASS_US || wait_share < 0.0)
		return;
	if (wait_share <= CM_TEAM_STARVED_WAIT)
	{
		advice->backoff_us = 0.0;
		advice->starved = 0;
		return;
	}
	/* after a solo period, one starved pass is enough to start the next */
	if (++advice->starved < 2 && advice->backoff_us <= 0.0)
		return;
	advice->backoff_us = advice->backoff_us <= 0.0 ? ADVICE_FIRST_US :
		(advice->backoff_us * 2 > ADVICE_MAX_US ? ADVICE_MAX_US : advice->backoff_us * 2);
	advice->solo_until_us = now_us + advice->backoff_us;
}
