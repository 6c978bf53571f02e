/*
 * test_blas_oom.c
 *	  cm_blas_prepare when the address space is short: OpenBLAS retries a
 *	  failed work-buffer allocation forever, so a thread's first product in
 *	  a process under RLIMIT_AS (or strict overcommit) would spin without end.
 *	  In a child process with a soft RLIMIT_AS just above what it uses, a new
 *	  thread's cm_blas_prepare must return CM_ERR_NOMEM (an alarm fails the
 *	  test if it hangs instead); with the limit lifted, it succeeds and a
 *	  product runs.  Under AddressSanitizer (whose shadow memory needs
 *	  terabytes of address space) only the second half runs.
 */
#include "transformer.h"
#include "runtime_test_util.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

typedef struct prepare_call
{
	int			n_threads;
	pthread_barrier_t ready;	/* the thread exists; the caller may now set limits */
	pthread_barrier_t go;
	cm_status	status;
	cm_error	err;
} prepare_call;

static void *
prepare_thread(void *arg)
{
	prepare_call *c = arg;

	pthread_barrier_wait(&c->ready);
	pthread_barrier_wait(&c->go);
	c->status = cm_blas_prepare(c->n_threads, &c->err);
	if (c->status == CM_OK)
	{
		/* a product large enough for OpenBLAS's buffers, after prepare */
		enum {N = 128};
		float	   *a = calloc(3 * N * N, sizeof(float));

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N,
					a + N * N, N, 0.0f, a + 2 * N * N, N);
		free(a);
	}
	return NULL;
}

/*
 * cm_blas_prepare(n_threads) on a new thread, which has no buffer yet, with
 * the soft RLIMIT_AS set to limit (0: unchanged) once the thread exists.
 */
static prepare_call
prepare_on_new_thread(int n_threads, rlim_t limit)
{
	prepare_call c;
	pthread_t	t;
	struct rlimit old,
				tight;

	memset(&c, 0, sizeof(c));
	c.n_threads = n_threads;
	c.status = CM_ERR_CANCELLED;	/* a status prepare never gives */
	pthread_barrier_init(&c.ready, NULL, 2);
	pthread_barrier_init(&c.go, NULL, 2);
	RT_CHECK(pthread_create(&t, NULL, prepare_thread, &c) == 0, "pthread_create");
	pthread_barrier_wait(&c.ready);
	getrlimit(RLIMIT_AS, &old);
	tight = old;
	if (limit != 0)
	{
		tight.rlim_cur = limit;
		RT_CHECK(setrlimit(RLIMIT_AS, &tight) == 0, "setrlimit(RLIMIT_AS)");
	}
	pthread_barrier_wait(&c.go);
	pthread_join(t, NULL);
	RT_CHECK(setrlimit(RLIMIT_AS, &old) == 0, "lifting the limit");
	pthread_barrier_destroy(&c.ready);
	pthread_barrier_destroy(&c.go);
	return c;
}

#ifndef UNDER_ASAN
static long
vm_size_bytes(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];
	long		kb = -1;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb * 1024;
}
#endif

/* The child: returns its exit status (0 when every check passed). */
static int
child(void)
{
	prepare_call c;

	alarm(120);					/* a hang ends the child by SIGALRM */
#ifndef UNDER_ASAN
	{
		long		used = vm_size_bytes();

		/* room for what the thread has, and a few MiB more */
		RT_CHECK(used > 0, "VmSize is read from /proc/self/status");
		c = prepare_on_new_thread(1, (rlim_t) used + ((rlim_t) 16 << 20));
		RT_CHECK(c.status == CM_ERR_NOMEM && strstr(c.err.message, "OpenBLAS") != NULL,
				 "short address space: cm_blas_prepare gives CM_ERR_NOMEM, not a hang (got %d: %s)",
				 (int) c.status, c.err.message);
		used = vm_size_bytes();
		c = prepare_on_new_thread(2, (rlim_t) used + ((rlim_t) 16 << 20));
		RT_CHECK(c.status == CM_ERR_NOMEM && strstr(c.err.message, "OpenBLAS") != NULL,
				 "short address space, 2 threads: CM_ERR_NOMEM (got %d: %s)",
				 (int) c.status, c.err.message);
	}
#else
	printf("test_blas_oom: RLIMIT_AS half not run under AddressSanitizer\n");
#endif
	c = prepare_on_new_thread(1, 0);
	RT_CHECK(c.status == CM_OK, "with room, cm_blas_prepare succeeds (%s)", c.err.message);
	openblas_set_num_threads(2);
	c = prepare_on_new_thread(2, 0);
	RT_CHECK(c.status == CM_OK, "with room, 2 threads: cm_blas_prepare succeeds (%s)", c.err.message);
	return rt_summary("test_blas_oom (child)");
}

int
main(void)
{
	pid_t		pid = fork();
	int			status = 0;

	if (pid == 0)
	{
		int			rc = child();

		fflush(stdout);
		_exit(rc);
	}
	RT_CHECK(pid > 0, "fork");
	RT_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "waitpid");
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "the child's checks passed (exit %d, signal %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return rt_summary("test_blas_oom");
}
