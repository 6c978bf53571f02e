/*
 * gemm.c
 *	  y = x W^T + bias with W [N][K] read in place.
 *
 * Why: BLAS packs (copies) the whole of W on every call, which at a handful
 * of rows (one caption, one image) costs as much as the product itself, and
 * the weights must stay in the shared read-only mapping.  Here each output
 * is a dot product of an x row and a W row, both contiguous.  A block of
 * MR x rows by NR W rows keeps MR * NR vector accumulators in registers;
 * the loops walk each slice of NR W rows once from memory (the next slice
 * prefetched meanwhile) and reuse it from L1 for every block of x rows,
 * which stay in L2 (K and M are cut into passes so that they fit).
 *
 * Kernels: AVX2/FMA with 4 x 3 blocks (12 accumulators + 3 W + 1 x = the
 * 16 ymm registers), AVX-512 with 6 x 4 blocks (24 + 4 + 1 of the 32 zmm),
 * and portable C.  The best the CPU runs is picked per call from its
 * feature bits (no global state of our own).  On two threads (a team: the
 * caller plus a helper that lives as long as the caller's forward pass),
 * the W rows are cut into units that both threads claim; between products
 * the threads spin briefly before they sleep.
 *
 * Alignment: a tensor in a safetensors file starts wherever the header and
 * the tensors before it end (12 bytes past a cache line in a typical CLIP
 * file), so every 64-byte load of W would straddle two cache lines.  An
 * AVX-512 block first takes the few columns up to W's next cache line with
 * a masked step; its other W loads are then aligned.  With a handful of x
 * rows, their panel is copied so that it shares W's alignment (the copy is
 * small next to the W it meets); with many, the x loads stay unaligned
 * (copying the panel for every unit of a team cost more than it saved).
 * Measured (interleaved A/B medians): a caption on 1 thread 9.9 -> 8.4 ms,
 * with 6 x 4 blocks for its 10 rows (6 + 4; 5 + 5 gave 9.8); an image on
 * 2 threads 42.2 -> 38.8 ms.  The AVX2 kernel's 32-byte loads gained
 * nothing from the same (an image: 4% slower), so it reads as it finds.
 */
#include "gemm.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define CM_HAVE_X86_GEMM 1
#include <immintrin.h>
#endif

#define GEMM_KC 1024			/* K per pass: an NR-row W slice is 12-16 KiB (L1) */
#define GEMM_KC_FEW 512			/* K per pass for up to GEMM_FEW_ROWS x rows: their chunks stay in L1 too */
#define GEMM_MC 96				/* x rows per pass: 96 x 1024 floats, 384 KiB (L2) */
#define GEMM_PF_BYTES 8192		/* W bytes ahead that a block prefetches (whole slices) */

/*
 * Up to this many x rows (a caption), every block of the pass prefetches the
 * slice ahead: the prefetches a busy first block issues are partly dropped,
 * and the repeats from the second fill the gaps (measured: 10 vs 11.3 ms for
 * a caption).  With more rows only the first block does: the other blocks'
 * repeats are wasted issue slots (43.7 vs 44.5 ms for an image on 2 threads).
 */
#define GEMM_FEW_ROWS 16

/* The x panel of a few-row pass, copied to match W's alignment (on the stack: 34 KiB). */
#define GEMM_FEW_PANEL (GEMM_FEW_ROWS * (GEMM_KC_FEW + 2 * 16))

/*
 * A team shares a product when it has at least this many multiply-adds
 * (waking the helper and waiting for it cost some microseconds).
 */
#define GEMM_THREAD_MIN_WORK ((size_t) 4 << 20)
#define GEMM_SPIN_US 200.0		/* how long a team thread spins before it sleeps */
#define GEMM_UNITS 16			/* units of W rows a threaded product is cut into */

/*
 * For i < mr, j < nr: y[i][j] = (load_y ? y[i][j] : 0) + bias[j] + the dot
 * product of x row i and W row j over kc floats (bias NULL: none).  pf,
 * when not NULL, is a W row block to prefetch (NR rows of kc floats).
 */
typedef void (*block_fn) (const float *x, size_t ldx, const float *w, size_t ldw, int kc,
						  const float *pf, float *y, size_t ldy, const float *bias, bool load_y);

/*
 * A register-blocked kernel: blocks[(mr - 1) * nr_max + nr - 1].  Products
 * of more than GEMM_FEW_ROWS rows take blocks of mr_many rows.  With
 * align_w, the blocks align their W loads and a few-row x panel is copied
 * to W's alignment.
 */
typedef struct gemm_kernel
{
	int			mr_max;
	int			mr_many;
	int			nr_max;
	bool		align_w;
	const block_fn *blocks;
} gemm_kernel;

static inline int
min_int(int a, int b)
{
	return a < b ? a : b;
}

/* ---- portable version ---- */

static void
block_portable(const float *x, size_t ldx, const float *w, size_t ldw, int kc, int mr, int nr,
			   float *y, size_t ldy, const float *bias, bool load_y)
{
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < nr; j++)
		{
			const float *xr = x + (size_t) i * ldx;
			const float *wr = w + (size_t) j * ldw;
			float	   *yp = y + (size_t) i * ldy + j;
			float		s = 0.0f,
						base = load_y ? *yp : 0.0f;

			for (int k = 0; k < kc; k++)
				s += xr[k] * wr[k];
			if (bias != NULL)
				base += bias[j];
			*yp = base + s;
		}
}

#ifdef CM_HAVE_X86_GEMM

/*
 * The block kernels below are written with loops over i < mr and j < nr;
 * each instance gets constant mr and nr and the loops unrolled, so the
 * accumulator arrays become registers.
 */
#define UNROLL _Pragma("GCC unroll 8")

/*
 * Columns from w to its next `align`-byte boundary, when every W row shares
 * that alignment (0 when w is there already or the rows differ).
 */
static inline int
leading_columns(const float *w, size_t ldw, size_t align)
{
	if ((ldw * sizeof(float)) % align != 0)
		return 0;
	return (int) (((align - ((uintptr_t) w & (align - 1))) & (align - 1)) / sizeof(float));
}

/* ---- AVX2 + FMA ---- */

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_MR 4
#define AVX2_NR 3

/* Lanes 0 .. r-1 of the load at mask_lanes + 8 - r are set (r in 0..8). */
static const int32_t mask_lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Sums of each of a0..a3's lanes, as 4 floats. */
static inline __attribute__((always_inline)) AVX2 __m128
hsum4_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
	__m256		t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));

	return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/*
 * y[0 .. nr-1] = (load_y ? y : 0) + bias + sums[0 .. nr-1]; masked loads and
 * stores touch nothing past lane nr - 1.
 */
static inline __attribute__((always_inline)) AVX2 void
store_row(float *y, const float *bias, bool load_y, const int nr, __m128 sums)
{
	__m128i		mask = _mm_loadu_si128((const __m128i *) (mask_lanes + 8 - nr));
	__m128		base = load_y ? _mm_maskload_ps(y, mask) : _mm_setzero_ps();

	if (bias != NULL)
		base = _mm_add_ps(base, _mm_maskload_ps(bias, mask));
	_mm_maskstore_ps(y, mask, _mm_add_ps(base, sums));
}

static inline __attribute__((always_inline)) AVX2 void
block_avx2(const int mr, const int nr, const float *x, size_t ldx, const float *w, size_t ldw,
		   int kc, const float *pf, float *y, size_t ldy, const float *bias, bool load_y)
{
	__m256		acc[AVX2_MR][AVX2_NR];
	__m256		wv[AVX2_NR];
	int			k = 0;

	UNROLL
	for (int i = 0; i < mr; i++)
		UNROLL
		for (int j = 0; j < nr; j++)
			acc[i][j] = _mm256_setzero_ps();
	for (; k + 8 <= kc; k += 8)
	{
		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm256_loadu_ps(w + (size_t) j * ldw + k);
		if (pf != NULL)
			UNROLL
			for (int j = 0; j < AVX2_NR; j++)
				_mm_prefetch((const char *) (pf + (size_t) j * ldw + k), _MM_HINT_T0);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m256		xv = _mm256_loadu_ps(x + (size_t) i * ldx + k);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
		}
	}
	if (k < kc)
	{
		/* Masked loads read nothing past the rows' ends. */
		__m256i		mask = _mm256_loadu_si256((const __m256i *) (mask_lanes + 8 - (kc - k)));

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm256_maskload_ps(w + (size_t) j * ldw + k, mask);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m256		xv = _mm256_maskload_ps(x + (size_t) i * ldx + k, mask);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
		}
	}
	UNROLL
	for (int i = 0; i < mr; i++)
	{
		__m256		z = _mm256_setzero_ps();

		store_row(y + (size_t) i * ldy, bias, load_y, nr,
				  hsum4_256(acc[i][0], nr > 1 ? acc[i][1] : z, nr > 2 ? acc[i][2] : z, z));
	}
}

#define DEFINE_BLOCK_AVX2(MR_, NR_) \
	static AVX2 void \
	block_avx2_##MR_##x##NR_(const float *x, size_t ldx, const float *w, size_t ldw, int kc, \
		const float *pf, float *y, size_t ldy, const float *bias, bool load_y) \
	{ \
		block_avx2(MR_, NR_, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
	}

DEFINE_BLOCK_AVX2(1, 1)
DEFINE_BLOCK_AVX2(1, 2)
DEFINE_BLOCK_AVX2(1, 3)
DEFINE_BLOCK_AVX2(2, 1)
DEFINE_BLOCK_AVX2(2, 2)
DEFINE_BLOCK_AVX2(2, 3)
DEFINE_BLOCK_AVX2(3, 1)
DEFINE_BLOCK_AVX2(3, 2)
DEFINE_BLOCK_AVX2(3, 3)
DEFINE_BLOCK_AVX2(4, 1)
DEFINE_BLOCK_AVX2(4, 2)
DEFINE_BLOCK_AVX2(4, 3)

static const block_fn blocks_avx2[AVX2_MR * AVX2_NR] = {
	block_avx2_1x1, block_avx2_1x2, block_avx2_1x3,
	block_avx2_2x1, block_avx2_2x2, block_avx2_2x3,
	block_avx2_3x1, block_avx2_3x2, block_avx2_3x3,
	block_avx2_4x1, block_avx2_4x2, block_avx2_4x3,
};

static const gemm_kernel kernel_avx2 = {AVX2_MR, AVX2_MR, AVX2_NR, false, blocks_avx2};

/* ---- AVX-512 ---- */

#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define AVX512_MR 6
#define AVX512_MR_MANY 5		/* an image's 50 rows: 10 blocks of 5 (measured faster than 6s) */
#define AVX512_NR 4

/* 512 -> 256 bits: the sum of the two halves. */
static inline __attribute__((always_inline)) AVX512 __m256
fold512(__m512 a)
{
	return _mm256_add_ps(_mm512_castps512_ps256(a),
						 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

static inline __attribute__((always_inline)) AVX512 void
block_avx512(const int mr, const int nr, const float *x, size_t ldx, const float *w, size_t ldw,
			 int kc, const float *pf, float *y, size_t ldy, const float *bias, bool load_y)
{
	__m512		acc[AVX512_MR][AVX512_NR];
	__m512		wv[AVX512_NR];
	int			k = 0;
	int			head = leading_columns(w, ldw, 64);

	UNROLL
	for (int i = 0; i < mr; i++)
		UNROLL
		for (int j = 0; j < nr; j++)
			acc[i][j] = _mm512_setzero_ps();
	if (head > 0 && head < kc)
	{
		/* Up to W's next cache line; the loads below are then aligned. */
		__mmask16	mask = (__mmask16) ((1u << head) - 1u);

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_maskz_loadu_ps(mask, w + (size_t) j * ldw);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512		xv = _mm512_maskz_loadu_ps(mask, x + (size_t) i * ldx);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
		}
		k = head;
	}
	for (; k + 16 <= kc; k += 16)
	{
		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_loadu_ps(w + (size_t) j * ldw + k);
		if (pf != NULL)
			UNROLL
			for (int j = 0; j < AVX512_NR; j++)
				_mm_prefetch((const char *) (pf + (size_t) j * ldw + k), _MM_HINT_T0);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512		xv = _mm512_loadu_ps(x + (size_t) i * ldx + k);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
		}
	}
	if (k < kc)
	{
		/* Masked lanes are neither read nor faulted on. */
		__mmask16	mask = (__mmask16) ((1u << (kc - k)) - 1u);

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_maskz_loadu_ps(mask, w + (size_t) j * ldw + k);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512		xv = _mm512_maskz_loadu_ps(mask, x + (size_t) i * ldx + k);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
		}
	}
	UNROLL
	for (int i = 0; i < mr; i++)
	{
		__m256		z = _mm256_setzero_ps();

		store_row(y + (size_t) i * ldy, bias, load_y, nr,
				  hsum4_256(fold512(acc[i][0]), nr > 1 ? fold512(acc[i][1]) : z,
							nr > 2 ? fold512(acc[i][2]) : z, nr > 3 ? fold512(acc[i][3]) : z));
	}
}

#define DEFINE_BLOCK_AVX512(MR_, NR_) \
	static AVX512 void \
	block_avx512_##MR_##x##NR_(const float *x, size_t ldx, const float *w, size_t ldw, int kc, \
		const float *pf, float *y, size_t ldy, const float *bias, bool load_y) \
	{ \
		block_avx512(MR_, NR_, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
	}

DEFINE_BLOCK_AVX512(1, 1)
DEFINE_BLOCK_AVX512(1, 2)
DEFINE_BLOCK_AVX512(1, 3)
DEFINE_BLOCK_AVX512(1, 4)
DEFINE_BLOCK_AVX512(2, 1)
DEFINE_BLOCK_AVX512(2, 2)
DEFINE_BLOCK_AVX512(2, 3)
DEFINE_BLOCK_AVX512(2, 4)
DEFINE_BLOCK_AVX512(3, 1)
DEFINE_BLOCK_AVX512(3, 2)
DEFINE_BLOCK_AVX512(3, 3)
DEFINE_BLOCK_AVX512(3, 4)
DEFINE_BLOCK_AVX512(4, 1)
DEFINE_BLOCK_AVX512(4, 2)
DEFINE_BLOCK_AVX512(4, 3)
DEFINE_BLOCK_AVX512(4, 4)
DEFINE_BLOCK_AVX512(5, 1)
DEFINE_BLOCK_AVX512(5, 2)
DEFINE_BLOCK_AVX512(5, 3)
DEFINE_BLOCK_AVX512(5, 4)
DEFINE_BLOCK_AVX512(6, 1)
DEFINE_BLOCK_AVX512(6, 2)
DEFINE_BLOCK_AVX512(6, 3)
DEFINE_BLOCK_AVX512(6, 4)

static const block_fn blocks_avx512[AVX512_MR * AVX512_NR] = {
	block_avx512_1x1, block_avx512_1x2, block_avx512_1x3, block_avx512_1x4,
	block_avx512_2x1, block_avx512_2x2, block_avx512_2x3, block_avx512_2x4,
	block_avx512_3x1, block_avx512_3x2, block_avx512_3x3, block_avx512_3x4,
	block_avx512_4x1, block_avx512_4x2, block_avx512_4x3, block_avx512_4x4,
	block_avx512_5x1, block_avx512_5x2, block_avx512_5x3, block_avx512_5x4,
	block_avx512_6x1, block_avx512_6x2, block_avx512_6x3, block_avx512_6x4,
};

static const gemm_kernel kernel_avx512 = {AVX512_MR, AVX512_MR_MANY, AVX512_NR, true, blocks_avx512};
#endif							/* CM_HAVE_X86_GEMM */

/* ---- driver ---- */

/*
 * Copy the x panel rows [0, M) x columns [k0, k0 + kc) into buf so that its
 * columns share the alignment (within a cache line) of W's columns from k0;
 * returns the panel, *ldp its row stride (whole lines plus one, so rows do
 * not fall in the same L1 sets).  M <= GEMM_FEW_ROWS, kc <= GEMM_KC_FEW.
 */
static const float *
copy_few_rows_panel(float *buf, int M, int kc, const float *x, size_t ldx, const float *W,
					int k0, size_t *ldp)
{
	int			shift = (int) (((uintptr_t) (W + k0) & 63) / sizeof(float));
	size_t		ld = (size_t) ((shift + kc + 15) / 16 * 16 + 16);

	for (int m = 0; m < M; m++)
		memcpy(buf + shift + (size_t) m * ld, x + (size_t) m * ldx + k0, (size_t) kc * sizeof(float));
	*ldp = ld;
	return buf + shift;
}

/* kernel NULL: portable C. */
static void
gemm_nt_driver(const gemm_kernel *kernel, int M, int N, int K, const float *x, size_t ldx,
			   const float *W, size_t ldw, const float *bias, float *y, size_t ldy,
			   bool accumulate)
{
	bool		few = M <= GEMM_FEW_ROWS;
	int			mr_max = kernel ? (few ? kernel->mr_max : kernel->mr_many) : 4;
	int			nr_max = kernel ? kernel->nr_max : 4;
	int			mc = GEMM_MC / mr_max * mr_max;	/* passes of whole blocks */
	int			kc_max = few ? GEMM_KC_FEW : GEMM_KC;
	_Alignas(64) float panel[GEMM_FEW_PANEL];

	if (M <= 0 || N <= 0)
		return;
	if (K <= 0)
	{
		for (int m = 0; m < M; m++)
			for (int n = 0; n < N; n++)
				y[(size_t) m * ldy + n] = (accumulate ? y[(size_t) m * ldy + n] : 0.0f) +
					(bias ? bias[n] : 0.0f);
		return;
	}
	for (int k0 = 0; k0 < K; k0 += kc_max)
	{
		int			kc = min_int(kc_max, K - k0);
		size_t		slice_bytes = (size_t) nr_max * kc * sizeof(float);
		size_t		pf_slices = (GEMM_PF_BYTES + slice_bytes - 1) / slice_bytes;
		size_t		pf_rows = (size_t) nr_max * pf_slices;

		/* The first pass starts from the bias (and y when accumulating). */
		const float *pass_bias = k0 == 0 ? bias : NULL;
		bool		load_y = k0 > 0 || accumulate;

		/* x columns from k0, and their row stride */
		const float *xk = x + k0;
		size_t		ldxk = ldx;

		if (few && kernel != NULL && kernel->align_w)
			xk = copy_few_rows_panel(panel, M, kc, x, ldx, W, k0, &ldxk);

		for (int m0 = 0; m0 < M; m0 += mc)
		{
			int			m_end = min_int(M, m0 + mc);

			for (int n = 0; n < N; n += nr_max)
			{
				int			nr = min_int(nr_max, N - n);
				const float *w = W + (size_t) n * ldw + k0;
				const float *nb = pass_bias ? pass_bias + n : NULL;

				/* The slice pf_rows ahead, when it is whole. */
				const float *pf = (size_t) n + pf_rows + nr_max <= (size_t) N ? w + pf_rows * ldw : NULL;

				for (int m = m0; m < m_end; m += mr_max)
				{
					int			mr = min_int(mr_max, m_end - m);
					const float *xb = xk + (size_t) m * ldxk;
					float	   *yb = y + (size_t) m * ldy + n;

					if (kernel != NULL)
						kernel->blocks[(mr - 1) * nr_max + nr - 1] (xb, ldxk, w, ldw, kc,
																	m == m0 || few ? pf : NULL,
																	yb, ldy, nb, load_y);
					else
						block_portable(xb, ldxk, w, ldw, kc, mr, nr, yb, ldy, nb, load_y);
				}
			}
		}
	}
}

bool
cm_gemm_path_supported(cm_gemm_path path)
{
	switch (path)
	{
		case CM_GEMM_PORTABLE:
			return true;
#ifdef CM_HAVE_X86_GEMM
		case CM_GEMM_AVX2:
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case CM_GEMM_AVX512:
			return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
				__builtin_cpu_supports("fma");
#else
		case CM_GEMM_AVX2:
		case CM_GEMM_AVX512:
			return false;
#endif
	}
	return false;
}

cm_gemm_path
cm_gemm_best_path(void)
{
	if (cm_gemm_path_supported(CM_GEMM_AVX512))
		return CM_GEMM_AVX512;
	if (cm_gemm_path_supported(CM_GEMM_AVX2))
		return CM_GEMM_AVX2;
	return CM_GEMM_PORTABLE;
}

const char *
cm_gemm_path_name(cm_gemm_path path)
{
	switch (path)
	{
		case CM_GEMM_PORTABLE:
			return "portable C";
		case CM_GEMM_AVX2:
			return "AVX2/FMA";
		case CM_GEMM_AVX512:
			return "AVX-512";
	}
	return "unknown";
}

static const gemm_kernel *
kernel_for_path(cm_gemm_path path)
{
#ifdef CM_HAVE_X86_GEMM
	if (path == CM_GEMM_AVX512 && cm_gemm_path_supported(CM_GEMM_AVX512))
		return &kernel_avx512;
	if (path != CM_GEMM_PORTABLE && cm_gemm_path_supported(CM_GEMM_AVX2))
		return &kernel_avx2;
#else
	(void) path;
#endif
	return NULL;
}

/* A product, cut into units of W rows that the team's threads claim. */
typedef struct gemm_job
{
	const gemm_kernel *kernel;
	int			M,
				N,
				K;
	const float *x;
	size_t		ldx;
	const float *W;
	size_t		ldw;
	const float *bias;
	float	   *y;
	size_t		ldy;
	bool		accumulate;
	int			unit_rows;		/* W rows per unit, a multiple of the kernel's NR */
	int			n_units;
} gemm_job;

static void
gemm_unit(void *ctx, int unit, int thread)
{
	const gemm_job *job = ctx;
	int			n0 = unit * job->unit_rows;
	int			n1 = min_int(job->N, n0 + job->unit_rows);

	(void) thread;
	gemm_nt_driver(job->kernel, job->M, n1 - n0, job->K, job->x, job->ldx,
				   job->W + (size_t) n0 * job->ldw, job->ldw,
				   job->bias ? job->bias + n0 : NULL, job->y + n0, job->ldy, job->accumulate);
}

/*
 * Claim the next unit of task generation gen: false once they are all
 * taken or the task is no longer the current one (a helper late to a task
 * finds it finished and does nothing).  The claim word holds gen << 32 |
 * next unit.
 */
static bool
claim_unit(cm_gemm_team *team, uint32_t gen, int n_units, int *unit)
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
work_on(cm_gemm_team *team, cm_team_fn fn, void *ctx, int n_units, uint32_t gen, int thread)
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

static inline void
spin_pause(void)
{
#ifdef CM_HAVE_X86_GEMM
	_mm_pause();
#endif
}

static double
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/*
 * Between the products of one forward pass the caller does only a few
 * microseconds of other work, and waking a sleeping thread costs tens of
 * microseconds on a busy or virtual machine: a team thread about to wait
 * spins for up to GEMM_SPIN_US first.  spin_expired tells, every 256 turns
 * of a spin, whether that time is up.
 */
static bool
spin_expired(int turn, double *deadline)
{
	double		t;

	if ((turn & 255) != 0)
		return false;
	t = monotonic_us();
	if (*deadline == 0.0)
		*deadline = t + GEMM_SPIN_US;
	return t > *deadline;
}

/* Spins while *word == value, for GEMM_SPIN_US at most. */
static void
spin_while_equal(_Atomic uint32_t *word, uint32_t value)
{
	double		deadline = 0.0;

	for (int turn = 1; atomic_load_explicit(word, memory_order_acquire) == value &&
		 !spin_expired(turn, &deadline); turn++)
		spin_pause();
}

/* Spins while *word < limit, for GEMM_SPIN_US at most. */
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
	cm_gemm_team *team = arg;
	uint32_t	seen = 0;
	bool		ok = team->helper_init == NULL || team->helper_init();

	pthread_mutex_lock(&team->lock);
	team->init_result = ok ? 1 : -1;
	pthread_cond_signal(&team->done);
	pthread_mutex_unlock(&team->lock);
	if (!ok)
		return NULL;

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
			pthread_mutex_unlock(&team->lock);
			break;
		}
		seen = team->gen;
		fn = team->fn;			/* NULL: that task is already done */
		ctx = team->ctx;
		n_units = team->n_units;
		pthread_mutex_unlock(&team->lock);
		if (fn != NULL)
			work_on(team, fn, ctx, n_units, seen, 1);
	}
	return NULL;
}

void
cm_gemm_team_run(cm_gemm_team *team, cm_team_fn fn, void *ctx, int n_units)
{
	uint32_t	gen;

	if (team == NULL || !team->running || n_units < 2)
	{
		for (int u = 0; u < n_units; u++)
			fn(ctx, u, 0);
		return;
	}

	/*
	 * Units are claimed, not assigned: when the helper is slow to be
	 * scheduled (a busy machine), the caller does them all and does not
	 * wait for it.  ctx stays valid until every claimed unit is done.
	 */
	pthread_mutex_lock(&team->lock);
	gen = ++team->gen;
	team->fn = fn;
	team->ctx = ctx;
	team->n_units = n_units;
	atomic_store(&team->finished, 0);
	atomic_store(&team->claim, (uint64_t) gen << 32);
	atomic_store_explicit(&team->posted, gen, memory_order_release);
	pthread_cond_signal(&team->wake);
	pthread_mutex_unlock(&team->lock);

	work_on(team, fn, ctx, n_units, gen, 0);

	/* Wait for units the helper claimed and is still running. */
	spin_while_below(&team->finished, n_units);
	pthread_mutex_lock(&team->lock);
	while (atomic_load(&team->finished) < n_units)
		pthread_cond_wait(&team->done, &team->lock);
	team->fn = NULL;
	team->ctx = NULL;
	pthread_mutex_unlock(&team->lock);
}

bool
cm_gemm_team_start(cm_gemm_team *team, int n_threads, bool (*helper_init) (void))
{
	sigset_t	all,
				old;

	team->running = false;
	if (n_threads < 2)
		return false;
	team->stop = false;
	team->gen = 0;
	team->fn = NULL;
	team->ctx = NULL;
	team->n_units = 0;
	team->helper_init = helper_init;
	team->init_result = 0;
	atomic_init(&team->posted, 0);
	atomic_init(&team->claim, 0);
	atomic_init(&team->finished, 0);
	if (pthread_mutex_init(&team->lock, NULL) != 0)
		return false;
	if (pthread_cond_init(&team->wake, NULL) != 0)
	{
		pthread_mutex_destroy(&team->lock);
		return false;
	}
	if (pthread_cond_init(&team->done, NULL) != 0)
	{
		pthread_cond_destroy(&team->wake);
		pthread_mutex_destroy(&team->lock);
		return false;
	}

	/*
	 * The helper starts with every signal blocked, so that the caller's
	 * handlers (a PostgreSQL backend's) never run on it.
	 */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0)
	{
		team->running = pthread_create(&team->helper, NULL, helper_main, team) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (team->running)
	{
		pthread_mutex_lock(&team->lock);
		while (team->init_result == 0)
			pthread_cond_wait(&team->done, &team->lock);
		pthread_mutex_unlock(&team->lock);
		if (team->init_result < 0)
		{
			pthread_join(team->helper, NULL);
			team->running = false;
		}
	}
	if (!team->running)
	{
		pthread_cond_destroy(&team->done);
		pthread_cond_destroy(&team->wake);
		pthread_mutex_destroy(&team->lock);
	}
	return team->running;
}

void
cm_gemm_team_stop(cm_gemm_team *team)
{
	if (team == NULL || !team->running)
		return;
	pthread_mutex_lock(&team->lock);
	team->stop = true;
	atomic_store_explicit(&team->posted, team->gen + 1, memory_order_release);
	pthread_cond_signal(&team->wake);
	pthread_mutex_unlock(&team->lock);
	pthread_join(team->helper, NULL);
	pthread_cond_destroy(&team->done);
	pthread_cond_destroy(&team->wake);
	pthread_mutex_destroy(&team->lock);
	team->running = false;
}

void
cm_gemm_nt_path(cm_gemm_path path, cm_gemm_team *team, int M, int N, int K, const float *x,
				size_t ldx, const float *W, size_t ldw, const float *bias, float *y,
				size_t ldy, bool accumulate)
{
	const gemm_kernel *kernel = kernel_for_path(path);
	int			nr = kernel ? kernel->nr_max : 4;
	gemm_job	job;

	if (team == NULL || !team->running || M <= 0 || K <= 0 || N < 2 * nr ||
		(size_t) M * (size_t) N * (size_t) K < GEMM_THREAD_MIN_WORK)
	{
		gemm_nt_driver(kernel, M, N, K, x, ldx, W, ldw, bias, y, ldy, accumulate);
		return;
	}

	/*
	 * About GEMM_UNITS units of whole register blocks; each thread streams
	 * its own W rows and writes its own columns of y.
	 */
	job = (gemm_job) {kernel, M, N, K, x, ldx, W, ldw, bias, y, ldy, accumulate, 0, 0};
	job.unit_rows = ((N + GEMM_UNITS - 1) / GEMM_UNITS + nr - 1) / nr * nr;
	job.n_units = (N + job.unit_rows - 1) / job.unit_rows;
	cm_gemm_team_run(team, gemm_unit, &job, job.n_units);
}

void
cm_gemm_nt(cm_gemm_team *team, int M, int N, int K, const float *x, size_t ldx, const float *W,
		   size_t ldw, const float *bias, float *y, size_t ldy, bool accumulate)
{
	cm_gemm_nt_path(cm_gemm_best_path(), team, M, N, K, x, ldx, W, ldw, bias, y, ldy,
					accumulate);
}
