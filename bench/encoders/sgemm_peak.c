/*
 * sgemm_peak.c: cblas_sgemm throughput on this machine, the yardstick for the encoder benchmark.
 *
 * Times a large square product and the GEMM shapes of the ViT-B/32 forward at batch 32 (activations
 * [rows x in] times a weight stored [out x in], i.e. B transposed, as a Hugging Face Linear layer is laid out),
 * plus the text tower's shapes, at each requested OpenBLAS thread count. Each case is run repeatedly for a
 * fixed time slice and the best slice is kept: the machine is shared, and the best slice is the closest to
 * what the hardware can do. Also the single-thread memory read bandwidth over 151 MB, the floor for a short
 * caption, over a fresh buffer and (--file) over a model file's mapping. Prints "RESULT key value" lines
 * (read by run.sh) and a readable table on stderr.
 *
 * usage: sgemm_peak [--threads 1,2] [--seconds 0.4] [--file MODEL_FILE]
 */
#include <cblas.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct
{
	const char *name;
	int m, n, k;
	int trans_b;
} GemmShape;

static const GemmShape shapes[] = {
	{"square_2048", 2048, 2048, 2048, 0},
	{"vit_b32_patch", 32 * 49, 768, 3072, 1},   /* patch embedding as one GEMM */
	{"vit_b32_qkv", 32 * 50, 3 * 768, 768, 1},  /* q, k, v fused */
	{"vit_b32_proj", 32 * 50, 768, 768, 1},     /* one of q/k/v/out separately */
	{"vit_b32_fc1", 32 * 50, 3072, 768, 1},
	{"vit_b32_fc2", 32 * 50, 768, 3072, 1},
	{"text_b32_fc1", 32 * 10, 2048, 512, 1},
	{"text_b32_fc2", 32 * 10, 512, 2048, 1},
	{"text_b1_fc1", 10, 2048, 512, 1},          /* bound by reading the weights */
	{"vit_attn_scores", 50, 50, 64, 1},         /* one head of one image: Q K^T */
	{"vit_attn_mix", 50, 64, 50, 0},            /* softmax(scores) V */
};

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
random_matrix(size_t count, unsigned *seed)
{
	float *m = malloc(count * sizeof(float));

	if (m == NULL)
	{
		fprintf(stderr, "sgemm_peak: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < count; i++)
	{
		*seed = *seed * 1103515245u + 12345u;
		m[i] = (float) ((*seed >> 8) & 0xffff) / 65536.0f - 0.5f;
	}
	return m;
}

/* Best GFLOP/s over `slices` time slices of `slice_s` seconds each. */
static double
measure(const GemmShape *s, double slice_s, int slices)
{
	unsigned seed = 12345;
	float *a = random_matrix((size_t) s->m * s->k, &seed);
	float *b = random_matrix((size_t) s->n * s->k, &seed);
	float *c = random_matrix((size_t) s->m * s->n, &seed);
	double flops = 2.0 * s->m * s->n * s->k;
	double best = 0.0;
	int ldb = s->trans_b ? s->k : s->n;

	/* warm-up: thread pool start, page faults, caches */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, s->trans_b ? CblasTrans : CblasNoTrans,
				s->m, s->n, s->k, 1.0f, a, s->k, b, ldb, 0.0f, c, s->n);
	for (int slice = 0; slice < slices; slice++)
	{
		double t0 = now_seconds(), t;
		long calls = 0;

		do
		{
			cblas_sgemm(CblasRowMajor, CblasNoTrans, s->trans_b ? CblasTrans : CblasNoTrans,
						s->m, s->n, s->k, 1.0f, a, s->k, b, ldb, 0.0f, c, s->n);
			calls++;
			t = now_seconds() - t0;
		} while (t < slice_s);
		if (flops * calls / t / 1e9 > best)
			best = flops * calls / t / 1e9;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

/*
 * Sum of the 64-byte lines of p[0, bytes) as 64-bit words, AVX2 loads when the CPU has them (narrower
 * loads cannot keep enough lines in flight on one core: 16-byte loads measured 30 GB/s where 32-byte loads
 * reached 38).
 */
typedef uint64_t u64x4 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static uint64_t
read_lines_avx2(const char *p, size_t bytes)
{
	u64x4		a0 = {0, 0, 0, 0}, a1 = a0;

	for (size_t i = 0; i + 64 <= bytes; i += 64)
	{
		u64x4		v0, v1;

		memcpy(&v0, p + i, 32);
		memcpy(&v1, p + i + 32, 32);
		a0 += v0;
		a1 += v1;
	}
	a0 += a1;
	return a0[0] ^ a0[1] ^ a0[2] ^ a0[3];
}

static uint64_t
read_lines_plain(const char *p, size_t bytes)
{
	uint64_t	a0 = 0, a1 = 0, a2 = 0, a3 = 0;

	for (size_t i = 0; i + 64 <= bytes; i += 64)
	{
		uint64_t	w[8];

		memcpy(w, p + i, 64);
		a0 += w[0] + w[4];
		a1 += w[1] + w[5];
		a2 += w[2] + w[6];
		a3 += w[3] + w[7];
	}
	return a0 ^ a1 ^ a2 ^ a3;
}

/* Best single-thread read bandwidth over p[0, bytes), GB/s. */
static double
read_bandwidth_gbs(const char *p, size_t bytes, double slice_s, int slices)
{
	int			avx2 = __builtin_cpu_supports("avx2");
	uint64_t	acc = 0;
	double		best = 0.0;

	for (int slice = 0; slice < slices; slice++)
	{
		double		t0 = now_seconds(), t;
		long		passes = 0;

		do
		{
			acc += avx2 ? read_lines_avx2(p, bytes) : read_lines_plain(p, bytes);
			passes++;
			t = now_seconds() - t0;
		} while (t < slice_s);
		if (passes * (double) bytes / t / 1e9 > best)
			best = passes * (double) bytes / t / 1e9;
	}
	if (acc == 42)				/* keep the loop; practically never true */
		fprintf(stderr, " ");
	return best;
}

/*
 * Read bandwidth over a buffer the size of the ViT-B/32 text tower's layer weights (151 MB), and, with
 * --file, over a read-only shared mapping of that file (a model's weights as the runtime reads them: page
 * cache pages, which can read slower than a fresh anonymous buffer).  Reading those weights once is the
 * floor for one short caption.
 */
static int
report_read_bandwidth(const char *file, double slice_s, int slices)
{
	size_t		bytes = (size_t) 12 * (4 * 512 * 512 + 2 * 512 * 2048) * sizeof(float);
	unsigned	seed = 1;
	float	   *buf = random_matrix(bytes / sizeof(float), &seed);
	double		gbs = read_bandwidth_gbs((const char *) buf, bytes, slice_s, slices);

	free(buf);
	printf("RESULT mem_read_t1_gbs %.1f\n", gbs);
	fprintf(stderr, "read bandwidth, 1 thread, 151 MB buffer: %.1f GB/s (reading the text tower's F32 "
			"layer weights once: %.1f ms)\n", gbs, 151.0e6 / (gbs * 1e9) * 1e3);
	if (file != NULL)
	{
		int			fd = open(file, O_RDONLY);
		struct stat st;
		void	   *map;

		if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 64)
		{
			fprintf(stderr, "sgemm_peak: cannot read %s\n", file);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (map == MAP_FAILED)
		{
			fprintf(stderr, "sgemm_peak: cannot map %s\n", file);
			return -1;
		}
		read_bandwidth_gbs(map, (size_t) st.st_size, 0.05, 1);	/* pages in, mapped */
		gbs = read_bandwidth_gbs(map, (size_t) st.st_size, slice_s, slices);
		munmap(map, (size_t) st.st_size);
		printf("RESULT mem_read_file_t1_gbs %.1f\n", gbs);
		fprintf(stderr, "read bandwidth, 1 thread, mapped %s (%.0f MB): %.1f GB/s (the text tower's weights "
				"once: %.1f ms)\n", file, st.st_size / 1e6, gbs, 151.0e6 / (gbs * 1e9) * 1e3);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *thread_list = "1,2";
	const char *file = NULL;
	double slice_s = 0.4;
	int slices = 3;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			thread_list = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			slice_s = atof(argv[++i]);
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			file = argv[++i];
		else
		{
			fprintf(stderr, "usage: %s [--threads 1,2] [--seconds SLICE] [--file MODEL_FILE]\n", argv[0]);
			return 2;
		}
	}
	printf("RESULT openblas_config %s\n", openblas_get_config());
	if (report_read_bandwidth(file, slice_s, slices) != 0)
		return 1;
	fprintf(stderr, "OpenBLAS: %s; best of %d slices of %.2f s per case\n",
			openblas_get_config(), slices, slice_s);

	for (const char *p = thread_list; *p;)
	{
		char *end;
		int threads = (int) strtol(p, &end, 10);
		double peak = 0.0;

		if (end == p || threads < 1)
		{
			fprintf(stderr, "sgemm_peak: bad --threads list \"%s\"\n", thread_list);
			return 2;
		}
		p = (*end == ',') ? end + 1 : end;
		openblas_set_num_threads(threads);
		for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		{
			const GemmShape *s = &shapes[i];
			double g = measure(s, slice_s, slices);

			if (g > peak && s->m >= 256)	/* the peak is a large-GEMM figure */
				peak = g;
			printf("RESULT sgemm_%s_t%d_gflops %.1f\n", s->name, threads, g);
			fprintf(stderr, "threads %d  %-14s %5d x %5d x %5d%s  %7.1f GFLOP/s\n",
					threads, s->name, s->m, s->n, s->k, s->trans_b ? " (B^T)" : "      ", g);
		}
		printf("RESULT sgemm_peak_t%d_gflops %.1f\n", threads, peak);
		fprintf(stderr, "threads %d  peak %.1f GFLOP/s\n", threads, peak);
	}
	return 0;
}
