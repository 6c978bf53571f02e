/*
 * gemm.c
 *	  y = x W^T + bias with W [N][K] read in place, in float32 or bfloat16.
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
 * and portable C.  Each takes float32 W, or bfloat16 W widened in registers
 * (exact), against float32 x.  With AVX512_BF16, bfloat16 W meets x rounded
 * to bfloat16 in vdpbf16ps, which multiplies pairs of bfloat16 and adds
 * them to float32 accumulators: twice the multiply-adds of an FMA per
 * instruction, and half the bytes of W to read.  Elsewhere the same
 * rounded x (kept in float32) meets the widened W, so every path computes
 * the same products; only the order of the float32 sums differs.  The best
 * kernel the CPU runs is picked per call from its feature bits (no global
 * state of our own).  On a team (team.c), the W rows are cut into units the
 * threads claim; each output is computed the same way whichever thread
 * takes its unit.
 *
 * Alignment: a tensor in a safetensors file starts wherever the header and
 * the tensors before it end (12 bytes past a cache line in a typical CLIP
 * file), so every 64-byte load of W would straddle two cache lines.  An
 * AVX-512 block first takes the few columns up to W's next load boundary
 * with a masked step; its other W loads are then aligned.  With a handful
 * of x rows, their panel is copied so that it shares W's alignment (the
 * copy is small next to the W it meets); with many, the x loads stay
 * unaligned (copying the panel for every unit of a team cost more than it
 * saved).  The AVX2 kernel's 32-byte loads gained nothing from the same,
 * so it reads as it finds.  The order of the sums follows W's alignment:
 * copied weights sit on cache lines of their own (model.c) so that an
 * embedding is the same bits in every process.
 */
#include "gemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CM_HAVE_X86_GEMM 1
#include <immintrin.h>
#endif

/*
 * K per pass, in bytes of the wider operand: an NR-row W slice is 8-16 KiB
 * (L1), a 96-row x pass 384 KiB (L2).  The same for any number of x rows,
 * so that each output sums its products in the same order whatever the
 * batch around it or the threads sharing it: an embedding is the same bits
 * alone, in a batch, and on any number of threads.  (Passes of half as much
 * cost batches 10% and gained single captions nothing measurable.)
 */
#define GEMM_KC_BYTES 4096
#define GEMM_MC 96				/* x rows per pass */
#define GEMM_PF_BYTES 8192		/* W bytes ahead that a block prefetches (whole slices) */
#define GEMM_LINE 64			/* bytes */

/*
 * Up to this many x rows (a caption), every block of the pass prefetches the
 * slice ahead: the prefetches a busy first block issues are partly dropped,
 * and the repeats from the second fill the gaps.  With more rows only the
 * first block does: the other blocks' repeats are wasted issue slots.
 */
#define GEMM_FEW_ROWS 16

/* The x panel of a few-row pass, copied to match W's alignment (on the stack: 66 KiB). */
#define GEMM_FEW_PANEL_BYTES (GEMM_FEW_ROWS * (GEMM_KC_BYTES + 2 * GEMM_LINE))

/*
 * A team shares a product when it has at least this many multiply-adds
 * (waking the helper and waiting for it cost some microseconds).
 */
#define GEMM_THREAD_MIN_WORK ((size_t) 4 << 20)
#define GEMM_UNITS_PER_THREAD 8 /* units of W rows a threaded product is cut into, per thread */

/* x rounded to bfloat16 on the team from this many elements. */
#define GEMM_ROUND_TEAM_MIN ((size_t) 1 << 18)

/*
 * For i < mr, j < nr: y[i][j] = (load_y ? y[i][j] : 0) + bias[j] + the dot
 * product of x row i and W row j over kc elements (bias NULL: none).  pf,
 * when not NULL, is a W row block to prefetch (NR rows of kc elements).
 * Leading dimensions are in elements.
 */
typedef void (*block_fn) (const void *x, size_t ldx, const void *w, size_t ldw, int kc,
						  const void *pf, float *y, size_t ldy, const float *bias, bool load_y);

/*
 * A register-blocked kernel for one pair of element types:
 * blocks[(mr - 1) * nr_max + nr - 1].  Products of more than GEMM_FEW_ROWS
 * rows take blocks of mr_many rows.  w_align (bytes, 0: none) is the
 * boundary the blocks align their W loads to after a masked first step; a
 * few-row x panel is then copied to match.
 */
typedef struct gemm_kernel
{
	int			mr_max;
	int			mr_many;
	int			nr_max;
	int			w_align;
	cm_elem		xtype;
	cm_elem		wtype;
	const block_fn *blocks;
} gemm_kernel;

static inline int
min_int(int a, int b)
{
	return a < b ? a : b;
}

static inline size_t
elem_size(cm_elem type)
{
	return type == CM_ELEM_BF16 ? 2 : 4;
}

static inline const void *
elem_at(const void *p, cm_elem type, size_t i)
{
	return (const char *) p + i * elem_size(type);
}

float
cm_f32_from_bf16(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

uint16_t
cm_bf16_from_f32(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 0x40);	/* NaN: stays a (quiet) NaN */
	return (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* As AVX512_BF16's vcvtne2ps2bf16: to nearest even, subnormals to signed zero. */
static inline uint16_t
bf16_round_activation(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7f800000u) == 0)
		return (uint16_t) ((u >> 16) & 0x8000u);
	return cm_bf16_from_f32(f);
}

/*
 * Elements from w to its next `align`-byte boundary, when every W row shares
 * that alignment (0 when w is there already or the rows differ).
 */
static inline int
leading_columns(const void *w, size_t ldw, size_t esize, size_t align)
{
	if ((ldw * esize) % align != 0)
		return 0;
	return (int) (((align - ((uintptr_t) w & (align - 1))) & (align - 1)) / esize);
}

/* ---- portable version ---- */

#define DEFINE_DOT_PORTABLE(NAME_, XT_, XLOAD_, WT_, WLOAD_) \
	static inline float \
	NAME_(const XT_ *xr, const WT_ *wr, int kc) \
	{ \
		float		s = 0.0f; \
		for (int k = 0; k < kc; k++) \
			s += XLOAD_(xr[k]) * WLOAD_(wr[k]); \
		return s; \
	}
#define AS_FLOAT(v) (v)
DEFINE_DOT_PORTABLE(dot_ff, float, AS_FLOAT, float, AS_FLOAT)
DEFINE_DOT_PORTABLE(dot_fb, float, AS_FLOAT, uint16_t, cm_f32_from_bf16)
DEFINE_DOT_PORTABLE(dot_bf, uint16_t, cm_f32_from_bf16, float, AS_FLOAT)
DEFINE_DOT_PORTABLE(dot_bb, uint16_t, cm_f32_from_bf16, uint16_t, cm_f32_from_bf16)

static void
block_portable(const void *x, size_t ldx, cm_elem xtype, const void *w, size_t ldw, cm_elem wtype,
			   int kc, int mr, int nr, float *y, size_t ldy, const float *bias, bool load_y)
{
	for (int i = 0; i < mr; i++)
		for (int j = 0; j < nr; j++)
		{
			const void *xr = elem_at(x, xtype, (size_t) i * ldx);
			const void *wr = elem_at(w, wtype, (size_t) j * ldw);
			float	   *yp = y + (size_t) i * ldy + j;
			float		s,
						base = load_y ? *yp : 0.0f;

			if (xtype == CM_ELEM_F32)
				s = wtype == CM_ELEM_F32 ? dot_ff(xr, wr, kc) : dot_fb(xr, wr, kc);
			else
				s = wtype == CM_ELEM_F32 ? dot_bf(xr, wr, kc) : dot_bb(xr, wr, kc);
			if (bias != NULL)
				base += bias[j];
			*yp = base + s;
		}
}

#ifdef CM_HAVE_X86_GEMM

/*
 * The block kernels below are written with loops over i < mr and j < nr;
 * each instance gets constant mr, nr and element types and the loops
 * unrolled, so the accumulator arrays become registers.
 */
#define UNROLL _Pragma("GCC unroll 8")

/*
 * Always inlined: out of line, GCC finds this function free of side effects
 * (a prefetch is only a hint) and deletes every call to it.
 */
static inline __attribute__((always_inline)) void
prefetch_w(const void *pf, size_t ldw, size_t esize, int j, int k)
{
	_mm_prefetch((const char *) pf + ((size_t) j * ldw + (size_t) k) * esize, _MM_HINT_T0);
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

/* 8 bfloat16 widened to float32 (exact). */
static inline __attribute__((always_inline)) AVX2 __m256
widen8_bf16(const void *p)
{
	__m256i		v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* 8 W elements from column k of row p. */
static inline __attribute__((always_inline)) AVX2 __m256
load8_w(const void *p, const bool wbf16)
{
	return wbf16 ? widen8_bf16(p) : _mm256_loadu_ps((const float *) p);
}

static inline __attribute__((always_inline)) AVX2 void
block_avx2(const int mr, const int nr, const bool wbf16, const void *xv_, size_t ldx,
		   const void *wv_, size_t ldw, int kc, const void *pf, float *y, size_t ldy,
		   const float *bias, bool load_y)
{
	const float *x = xv_;
	const size_t ws = wbf16 ? 2 : 4;
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
			wv[j] = load8_w((const char *) wv_ + ((size_t) j * ldw + k) * ws, wbf16);
		if (pf != NULL)
			UNROLL
			for (int j = 0; j < AVX2_NR; j++)
				prefetch_w(pf, ldw, ws, j, k);
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
		/* Masked loads (a padded copy for bfloat16) read nothing past the rows' ends. */
		__m256i		mask = _mm256_loadu_si256((const __m256i *) (mask_lanes + 8 - (kc - k)));

		UNROLL
		for (int j = 0; j < nr; j++)
		{
			const void *p = (const char *) wv_ + ((size_t) j * ldw + k) * ws;

			if (wbf16)
			{
				uint16_t	tail[8] = {0};

				memcpy(tail, p, (size_t) (kc - k) * 2);
				wv[j] = widen8_bf16(tail);
			}
			else
				wv[j] = _mm256_maskload_ps((const float *) p, mask);
		}
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
	block_avx2_##MR_##x##NR_(const void *x, size_t ldx, const void *w, size_t ldw, int kc, \
		const void *pf, float *y, size_t ldy, const float *bias, bool load_y) \
	{ \
		block_avx2(MR_, NR_, false, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
	} \
	static AVX2 void \
	block_avx2_wbf16_##MR_##x##NR_(const void *x, size_t ldx, const void *w, size_t ldw, int kc, \
		const void *pf, float *y, size_t ldy, const float *bias, bool load_y) \
	{ \
		block_avx2(MR_, NR_, true, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
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

#define AVX2_TABLE(P_) { \
	P_##1x1, P_##1x2, P_##1x3, \
	P_##2x1, P_##2x2, P_##2x3, \
	P_##3x1, P_##3x2, P_##3x3, \
	P_##4x1, P_##4x2, P_##4x3, \
}

static const block_fn blocks_avx2[AVX2_MR * AVX2_NR] = AVX2_TABLE(block_avx2_);
static const block_fn blocks_avx2_wbf16[AVX2_MR * AVX2_NR] = AVX2_TABLE(block_avx2_wbf16_);

static const gemm_kernel kernel_avx2 = {AVX2_MR, AVX2_MR, AVX2_NR, 0, CM_ELEM_F32, CM_ELEM_F32, blocks_avx2};
static const gemm_kernel kernel_avx2_wbf16 = {AVX2_MR, AVX2_MR, AVX2_NR, 0, CM_ELEM_F32, CM_ELEM_BF16,
	blocks_avx2_wbf16};

/* ---- AVX-512 ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
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

/* Row i's nr sums of acc, added to y (and bias) as store_row does. */
static inline __attribute__((always_inline)) AVX512 void
store_acc_row(float *y, const float *bias, bool load_y, const int nr, const __m512 *acc)
{
	__m256		z = _mm256_setzero_ps();

	store_row(y, bias, load_y, nr,
			  hsum4_256(fold512(acc[0]), nr > 1 ? fold512(acc[1]) : z,
						nr > 2 ? fold512(acc[2]) : z, nr > 3 ? fold512(acc[3]) : z));
}

/* 16 W elements (float32, or bfloat16 widened) under mask. */
static inline __attribute__((always_inline)) AVX512 __m512
load16_w(const void *p, const bool wbf16, __mmask16 mask)
{
	if (wbf16)
	{
		__m512i		v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));

		return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
	}
	return _mm512_maskz_loadu_ps(mask, p);
}

/*
 * Float32 x against float32 or bfloat16 W, 16 columns a step; the W loads
 * (64 or 32 bytes) aligned after a masked first step.
 */
static inline __attribute__((always_inline)) AVX512 void
block_avx512(const int mr, const int nr, const bool wbf16, const void *xv_, size_t ldx,
			 const void *wv_, size_t ldw, int kc, const void *pf, float *y, size_t ldy,
			 const float *bias, bool load_y)
{
	const float *x = xv_;
	const size_t ws = wbf16 ? 2 : 4;
	__m512		acc[AVX512_MR][AVX512_NR];
	__m512		wv[AVX512_NR];
	int			k = 0;
	int			head = leading_columns(wv_, ldw, ws, 16 * ws);

	UNROLL
	for (int i = 0; i < mr; i++)
		UNROLL
		for (int j = 0; j < nr; j++)
			acc[i][j] = _mm512_setzero_ps();
	if (head > 0 && head < kc)
	{
		/* Up to W's next load boundary; the loads below are then aligned. */
		__mmask16	mask = (__mmask16) ((1u << head) - 1u);

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = load16_w((const char *) wv_ + (size_t) j * ldw * ws, wbf16, mask);
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
		{
			const void *p = (const char *) wv_ + ((size_t) j * ldw + k) * ws;

			if (wbf16)
				wv[j] = _mm512_castsi512_ps(_mm512_slli_epi32(
					_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *) p)), 16));
			else
				wv[j] = _mm512_loadu_ps(p);
		}
		if (pf != NULL)
			UNROLL
			for (int j = 0; j < AVX512_NR; j++)
				prefetch_w(pf, ldw, ws, j, k);
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
			wv[j] = load16_w((const char *) wv_ + ((size_t) j * ldw + k) * ws, wbf16, mask);
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
		store_acc_row(y + (size_t) i * ldy, bias, load_y, nr, acc[i]);
}

/*
 * Bfloat16 x against bfloat16 W, 32 columns (16 pairs) a step with
 * vdpbf16ps; W loads aligned after a masked first step.
 */
static inline __attribute__((always_inline)) AVX512BF16 void
block_avx512bf16(const int mr, const int nr, const void *xv_, size_t ldx, const void *wv_,
				 size_t ldw, int kc, const void *pf, float *y, size_t ldy, const float *bias,
				 bool load_y)
{
	const uint16_t *x = xv_;
	const uint16_t *w = wv_;
	__m512		acc[AVX512_MR][AVX512_NR];
	__m512i		wv[AVX512_NR];
	int			k = 0;
	int			head = leading_columns(w, ldw, 2, 64);

	UNROLL
	for (int i = 0; i < mr; i++)
		UNROLL
		for (int j = 0; j < nr; j++)
			acc[i][j] = _mm512_setzero_ps();
	if (head > 0 && head < kc)
	{
		__mmask32	mask = (__mmask32) ((1u << head) - 1u);

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_maskz_loadu_epi16(mask, w + (size_t) j * ldw);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512i		xv = _mm512_maskz_loadu_epi16(mask, x + (size_t) i * ldx);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh) xv, (__m512bh) wv[j]);
		}
		k = head;
	}
	for (; k + 32 <= kc; k += 32)
	{
		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_loadu_si512(w + (size_t) j * ldw + k);
		if (pf != NULL)
			UNROLL
			for (int j = 0; j < AVX512_NR; j++)
				prefetch_w(pf, ldw, 2, j, k);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512i		xv = _mm512_loadu_si512(x + (size_t) i * ldx + k);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh) xv, (__m512bh) wv[j]);
		}
	}
	if (k < kc)
	{
		__mmask32	mask = (__mmask32) ((1ull << (kc - k)) - 1u);

		UNROLL
		for (int j = 0; j < nr; j++)
			wv[j] = _mm512_maskz_loadu_epi16(mask, w + (size_t) j * ldw + k);
		UNROLL
		for (int i = 0; i < mr; i++)
		{
			__m512i		xv = _mm512_maskz_loadu_epi16(mask, x + (size_t) i * ldx + k);

			UNROLL
			for (int j = 0; j < nr; j++)
				acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh) xv, (__m512bh) wv[j]);
		}
	}
	UNROLL
	for (int i = 0; i < mr; i++)
		store_acc_row(y + (size_t) i * ldy, bias, load_y, nr, acc[i]);
}

#define BLOCK_ARGS const void *x, size_t ldx, const void *w, size_t ldw, int kc, \
	const void *pf, float *y, size_t ldy, const float *bias, bool load_y
#define DEFINE_BLOCK_AVX512(MR_, NR_) \
	static AVX512 void \
	block_avx512_##MR_##x##NR_(BLOCK_ARGS) \
	{ \
		block_avx512(MR_, NR_, false, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
	} \
	static AVX512 void \
	block_avx512_wbf16_##MR_##x##NR_(BLOCK_ARGS) \
	{ \
		block_avx512(MR_, NR_, true, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
	} \
	static AVX512BF16 void \
	block_avx512bf16_##MR_##x##NR_(BLOCK_ARGS) \
	{ \
		block_avx512bf16(MR_, NR_, x, ldx, w, ldw, kc, pf, y, ldy, bias, load_y); \
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

#define AVX512_TABLE(P_) { \
	P_##1x1, P_##1x2, P_##1x3, P_##1x4, \
	P_##2x1, P_##2x2, P_##2x3, P_##2x4, \
	P_##3x1, P_##3x2, P_##3x3, P_##3x4, \
	P_##4x1, P_##4x2, P_##4x3, P_##4x4, \
	P_##5x1, P_##5x2, P_##5x3, P_##5x4, \
	P_##6x1, P_##6x2, P_##6x3, P_##6x4, \
}

static const block_fn blocks_avx512[AVX512_MR * AVX512_NR] = AVX512_TABLE(block_avx512_);
static const block_fn blocks_avx512_wbf16[AVX512_MR * AVX512_NR] = AVX512_TABLE(block_avx512_wbf16_);
static const block_fn blocks_avx512bf16[AVX512_MR * AVX512_NR] = AVX512_TABLE(block_avx512bf16_);

static const gemm_kernel kernel_avx512 = {AVX512_MR, AVX512_MR_MANY, AVX512_NR, 64,
	CM_ELEM_F32, CM_ELEM_F32, blocks_avx512};
static const gemm_kernel kernel_avx512_wbf16 = {AVX512_MR, AVX512_MR_MANY, AVX512_NR, 32,
	CM_ELEM_F32, CM_ELEM_BF16, blocks_avx512_wbf16};
static const gemm_kernel kernel_avx512bf16 = {AVX512_MR, AVX512_MR_MANY, AVX512_NR, 64,
	CM_ELEM_BF16, CM_ELEM_BF16, blocks_avx512bf16};

/* ---- AVX-512, many rows: packed panels of W, outer products ---- */

/*
 * With many x rows the dot products above spend a fifth of their time on
 * the horizontal sums that end each block and on x rows streamed from L2
 * for every W slice.  Here a panel of PACK_NR W rows by PACK_KU 32-bit
 * units is transposed once into a buffer (columns side by side), and each
 * block of PACK_MR x rows multiplies it as outer products: a broadcast x
 * unit times four vectors of 16 columns into 24 accumulators that are the
 * outputs themselves, with no horizontal sums.  A unit is a float32
 * element (W float32, or bfloat16 widened while packing), or, with
 * AVX512_BF16 and bfloat16 x, a pair of bfloat16 for vdpbf16ps.  Packing
 * costs one pass over W per chunk of up to PACK_MC rows, paid back from a
 * few dozen rows (bench/encoders/README.md has the figures).
 */
#define PACK_MR 6
#define PACK_NV 4				/* vectors of 16 columns: 64 columns a panel */
#define PACK_NR (16 * PACK_NV)
#define PACK_KU 256				/* units a pass: a 64 KiB panel */
#define PACK_MC 1024			/* x rows a chunk at most: a panel's outputs for them stay in L2 */

typedef enum pack_mode
{
	PACK_F32,					/* float32 W and x */
	PACK_WIDEN,					/* bfloat16 W widened while packing, float32 x */
	PACK_PAIRS					/* bfloat16 W and x, pairs of them (AVX512_BF16) */
} pack_mode;

/* 16 vectors of 16 32-bit lanes transposed in place: v[j][i] = old v[i][j]. */
static inline __attribute__((always_inline)) AVX512 void
transpose16(__m512 *v)
{
	__m512		t[16],
				u[16];

	for (int i = 0; i < 16; i += 2)
	{
		t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
	}
	/* u[4g + j], 128-bit lane L: column j + 4L of rows 4g .. 4g + 3 */
	for (int g = 0; g < 16; g += 4)
	{
		u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
		u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
		u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
		u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
	}
	for (int j = 0; j < 4; j++)
	{
		__m512		a0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88),
					a1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd),
					b0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88),
					b1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);

		v[j] = _mm512_shuffle_f32x4(a0, b0, 0x88);
		v[j + 8] = _mm512_shuffle_f32x4(a0, b0, 0xdd);
		v[j + 4] = _mm512_shuffle_f32x4(a1, b1, 0x88);
		v[j + 12] = _mm512_shuffle_f32x4(a1, b1, 0xdd);
	}
}

/* Units [k, k + 16) of W row n (those past ks zero). */
static inline __attribute__((always_inline)) AVX512 __m512
load_units(pack_mode mode, const void *W, size_t ldw, size_t n, size_t k, __mmask16 mask)
{
	switch (mode)
	{
		case PACK_F32:
			return _mm512_maskz_loadu_ps(mask, (const float *) W + n * ldw + k);
		case PACK_WIDEN:
			return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
				_mm256_maskz_loadu_epi16(mask, (const uint16_t *) W + n * ldw + k)), 16));
		case PACK_PAIRS:
			return _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(mask, (const uint16_t *) W + n * ldw + 2 * k));
	}
	return _mm512_setzero_ps();
}

/*
 * panel[k][c] = unit k0 + k of W row c, for k < ku and c < nr; zero for
 * nr <= c < PACK_NR.  ldw in elements of W.
 */
static AVX512 void
pack_panel(pack_mode mode, const void *W, size_t ldw, int nr, int k0, int ku, float *panel)
{
	for (int r0 = 0; r0 < PACK_NR; r0 += 16)
	{
		int			rows = nr - r0;

		if (rows <= 0)
		{
			for (int k = 0; k < ku; k++)
				_mm512_store_ps(panel + (size_t) k * PACK_NR + r0, _mm512_setzero_ps());
			continue;
		}
		for (int k = 0; k < ku; k += 16)
		{
			int			ks = min_int(16, ku - k);
			__mmask16	mask = (__mmask16) (ks == 16 ? 0xffffu : (1u << ks) - 1u);
			__m512		v[16];

			for (int i = 0; i < 16; i++)
				v[i] = i < rows ? load_units(mode, W, ldw, (size_t) (r0 + i), (size_t) (k0 + k), mask)
					: _mm512_setzero_ps();
			transpose16(v);
			for (int j = 0; j < ks; j++)
				_mm512_store_ps(panel + (size_t) (k + j) * PACK_NR + r0, v[j]);
		}
	}
}

/* Lanes of columns [16 j, 16 (j + 1)) below nr. */
static inline __mmask16
column_mask(int nr, int j)
{
	int			c = nr - 16 * j;

	return (__mmask16) (c >= 16 ? 0xffffu : c <= 0 ? 0u : (1u << c) - 1u);
}

/*
 * y[i][c] for i < mr, c < nr: on the first pass (load_y ? y : 0) + bias
 * plus the pass's sums, on later ones y plus them.  x: mr rows of units
 * (ldxu units apart), from the pass's first unit.
 */
#define PACKED_BLOCK_BODY(BROADCAST_, MADD_) \
	__m512		acc[PACK_MR][PACK_NV]; \
	UNROLL \
	for (int i = 0; i < mr; i++) \
		UNROLL \
		for (int j = 0; j < PACK_NV; j++) \
			acc[i][j] = _mm512_setzero_ps(); \
	for (int k = 0; k < ku; k++) \
	{ \
		__m512		w[PACK_NV]; \
		UNROLL \
		for (int j = 0; j < PACK_NV; j++) \
			w[j] = _mm512_load_ps(panel + (size_t) k * PACK_NR + 16 * j); \
		UNROLL \
		for (int i = 0; i < mr; i++) \
		{ \
			__m512		b = BROADCAST_((const char *) x + ((size_t) i * ldxu + (size_t) k) * 4); \
			UNROLL \
			for (int j = 0; j < PACK_NV; j++) \
				acc[i][j] = MADD_(acc[i][j], b, w[j]); \
		} \
	} \
	UNROLL \
	for (int i = 0; i < mr; i++) \
	{ \
		float	   *yr = y + (size_t) i * ldy; \
		UNROLL \
		for (int j = 0; j < PACK_NV; j++) \
		{ \
			__mmask16	mask = column_mask(nr, j); \
			__m512		base = load_y ? _mm512_maskz_loadu_ps(mask, yr + 16 * j) : _mm512_setzero_ps(); \
			if (bias != NULL) \
				base = _mm512_add_ps(base, _mm512_maskz_loadu_ps(mask, bias + 16 * j)); \
			_mm512_mask_storeu_ps(yr + 16 * j, mask, _mm512_add_ps(base, acc[i][j])); \
		} \
	}

static inline __attribute__((always_inline)) AVX512 __m512
broadcast_f32(const void *p)
{
	return _mm512_set1_ps(*(const float *) p);
}

static inline __attribute__((always_inline)) AVX512 __m512
madd_f32(__m512 acc, __m512 b, __m512 w)
{
	return _mm512_fmadd_ps(b, w, acc);
}

static inline __attribute__((always_inline)) AVX512BF16 __m512
broadcast_pair(const void *p)
{
	return _mm512_castsi512_ps(_mm512_broadcastd_epi32(_mm_loadu_si32(p)));
}

static inline __attribute__((always_inline)) AVX512BF16 __m512
madd_pairs(__m512 acc, __m512 b, __m512 w)
{
	return _mm512_dpbf16_ps(acc, (__m512bh) _mm512_castps_si512(b), (__m512bh) _mm512_castps_si512(w));
}

typedef void (*packed_block_fn) (const void *x, size_t ldxu, const float *panel, int ku, float *y,
								 size_t ldy, int nr, const float *bias, bool load_y);

#define PACKED_ARGS const void *x, size_t ldxu, const float *panel, int ku, float *y, size_t ldy, \
	int nr, const float *bias, bool load_y
static inline __attribute__((always_inline)) AVX512 void
packed_block_f32(const int mr, PACKED_ARGS)
{
	PACKED_BLOCK_BODY(broadcast_f32, madd_f32)
}

static inline __attribute__((always_inline)) AVX512BF16 void
packed_block_pairs(const int mr, PACKED_ARGS)
{
	PACKED_BLOCK_BODY(broadcast_pair, madd_pairs)
}

#define DEFINE_PACKED(MR_) \
	static AVX512 void \
	packed_f32_##MR_(PACKED_ARGS) \
	{ \
		packed_block_f32(MR_, x, ldxu, panel, ku, y, ldy, nr, bias, load_y); \
	} \
	static AVX512BF16 void \
	packed_pairs_##MR_(PACKED_ARGS) \
	{ \
		packed_block_pairs(MR_, x, ldxu, panel, ku, y, ldy, nr, bias, load_y); \
	}

DEFINE_PACKED(1)
DEFINE_PACKED(2)
DEFINE_PACKED(3)
DEFINE_PACKED(4)
DEFINE_PACKED(5)
DEFINE_PACKED(6)

static const packed_block_fn packed_f32[PACK_MR] = {packed_f32_1, packed_f32_2, packed_f32_3,
packed_f32_4, packed_f32_5, packed_f32_6};
static const packed_block_fn packed_pairs[PACK_MR] = {packed_pairs_1, packed_pairs_2, packed_pairs_3,
packed_pairs_4, packed_pairs_5, packed_pairs_6};

/* The product through packed panels (the caller checked the mode suits the operands). */
static void
packed_driver(pack_mode mode, int M, int N, int K, cm_mat x, cm_mat W, const float *bias,
			  float *y, size_t ldy, bool accumulate)
{
	_Alignas(64) float panel[PACK_KU * PACK_NR];
	const packed_block_fn *blocks = mode == PACK_PAIRS ? packed_pairs : packed_f32;
	int			units = mode == PACK_PAIRS ? K / 2 : K;
	size_t		ldxu = mode == PACK_PAIRS ? x.ld / 2 : x.ld;

	/*
	 * Rows in chunks of even size, each multiplied panel by panel: a panel's
	 * outputs for a chunk (up to 256 KiB) stay in L2 through its passes.
	 * Without the chunks, a batch of 196-token images (6,272 rows) spilled
	 * them to L3 at every pass and a row cost a third more than with a few
	 * hundred.  A chunk only changes which rows a packed panel serves, so
	 * no bit changes.
	 */
	int			chunks = M > PACK_MC ? (M + PACK_MC - 1) / PACK_MC : 1;
	int			mc = (M + chunks - 1) / chunks;

	for (int m0 = 0; m0 < M; m0 += mc)
	{
		int			m1 = min_int(M, m0 + mc);

		for (int n0 = 0; n0 < N; n0 += PACK_NR)
		{
			int			nr = min_int(PACK_NR, N - n0);
			const void *wn = elem_at(W.p, W.type, (size_t) n0 * W.ld);

			for (int k0 = 0; k0 < units; k0 += PACK_KU)
			{
				int			ku = min_int(PACK_KU, units - k0);
				bool		first = k0 == 0;

				pack_panel(mode, wn, W.ld, nr, k0, ku, panel);
				for (int m = m0; m < m1; m += PACK_MR)
					blocks[min_int(PACK_MR, m1 - m) - 1] ((const char *) x.p + ((size_t) m * ldxu + (size_t) k0) * 4,
														  ldxu, panel, ku, y + (size_t) m * ldy + n0, ldy, nr,
														  first && bias != NULL ? bias + n0 : NULL,
														  !first || accumulate);
			}
		}
	}
}

/* ---- x rounded to bfloat16 ---- */

static AVX512BF16 void
round_row_packed_avx512bf16(const float *x, uint16_t *out, int K)
{
	int			k = 0;

	for (; k + 32 <= K; k += 32)
		_mm512_storeu_si512(out + k, (__m512i) _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16),
																	_mm512_loadu_ps(x + k)));
	if (k < K)
	{
		int			r = K - k;
		__mmask16	lo = (__mmask16) (r >= 16 ? 0xffffu : (1u << r) - 1u);
		__mmask16	hi = (__mmask16) (r > 16 ? (1u << (r - 16)) - 1u : 0u);
		__m512i		v = (__m512i) _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + k + 16),
													  _mm512_maskz_loadu_ps(lo, x + k));

		_mm512_mask_storeu_epi16(out + k, (__mmask32) ((1ull << r) - 1u), v);
	}
}

/* The rounded values kept in float32 (integer arithmetic, as bf16_round_activation). */
static AVX2 void
round_row_f32_avx2(const float *x, float *out, int K)
{
	const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
	const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
	const __m256i sign = _mm256_set1_epi32((int) 0x80000000u);
	const __m256i bias = _mm256_set1_epi32(0x7fff);
	const __m256i one = _mm256_set1_epi32(1);
	const __m256i high = _mm256_set1_epi32((int) 0xffff0000u);
	const __m256i inf = _mm256_set1_epi32(0x7f800000);
	const __m256i quiet = _mm256_set1_epi32(0x00400000);
	int			k = 0;

	for (; k + 8 <= K; k += 8)
	{
		__m256i		u = _mm256_castps_si256(_mm256_loadu_ps(x + k));
		__m256i		r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
		__m256i		sub = _mm256_cmpeq_epi32(_mm256_and_si256(u, exp_mask), _mm256_setzero_si256());
		__m256i		nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);

		r = _mm256_blendv_epi8(r, _mm256_and_si256(u, sign), sub);
		r = _mm256_blendv_epi8(r, _mm256_or_si256(u, quiet), nan);
		_mm256_storeu_ps(out + k, _mm256_castsi256_ps(_mm256_and_si256(r, high)));
	}
	for (; k < K; k++)
		out[k] = cm_f32_from_bf16(bf16_round_activation(x[k]));
}
#endif							/* CM_HAVE_X86_GEMM */

/* ---- driver ---- */

/*
 * Copy the x panel rows [0, M) x columns [k0, k0 + kc) into buf so that its
 * column head (where the kernel's W loads become aligned) starts a cache
 * line; returns the panel, its rows whole lines plus one apart (so that they
 * do not fall in the same L1 sets).  M <= GEMM_FEW_ROWS, kc * element size
 * <= GEMM_KC_BYTES.
 */
static cm_mat
copy_few_rows_panel(unsigned char *buf, int M, int kc, cm_mat x, const void *w, size_t ldw,
					size_t ws, int w_align)
{
	size_t		xs = elem_size(x.type);
	size_t		line = GEMM_LINE / xs;	/* x elements per cache line */
	size_t		head = (size_t) leading_columns(w, ldw, ws, (size_t) w_align);
	size_t		shift = (line - head % line) % line;
	size_t		ld = (shift + (size_t) kc + line - 1) / line * line + line;
	cm_mat		panel = {buf + shift * xs, ld, x.type};

	for (int m = 0; m < M; m++)
		memcpy(buf + (shift + (size_t) m * ld) * xs, elem_at(x.p, x.type, (size_t) m * x.ld),
			   (size_t) kc * xs);
	return panel;
}

/* kernel NULL: portable C. */
static void
gemm_driver(const gemm_kernel *kernel, int M, int N, int K, cm_mat x, cm_mat W,
			const float *bias, float *y, size_t ldy, bool accumulate)
{
	bool		few = M <= GEMM_FEW_ROWS;
	int			mr_max = kernel ? (few ? kernel->mr_max : kernel->mr_many) : 4;
	int			nr_max = kernel ? kernel->nr_max : 4;
	int			mc = GEMM_MC / mr_max * mr_max;	/* passes of whole blocks */
	size_t		xs = elem_size(x.type),
				ws = elem_size(W.type);
	int			kc_max = GEMM_KC_BYTES / (int) (xs > ws ? xs : ws);
	_Alignas(64) unsigned char panel[GEMM_FEW_PANEL_BYTES];

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
		size_t		slice_bytes = (size_t) nr_max * kc * ws;
		size_t		pf_slices = (GEMM_PF_BYTES + slice_bytes - 1) / slice_bytes;
		size_t		pf_rows = (size_t) nr_max * pf_slices;

		/* The first pass starts from the bias (and y when accumulating). */
		const float *pass_bias = k0 == 0 ? bias : NULL;
		bool		load_y = k0 > 0 || accumulate;

		/* x columns from k0 */
		cm_mat		xk = {elem_at(x.p, x.type, (size_t) k0), x.ld, x.type};

		if (few && kernel != NULL && kernel->w_align > 0)
			xk = copy_few_rows_panel(panel, M, kc, xk, elem_at(W.p, W.type, (size_t) k0), W.ld, ws,
									 kernel->w_align);

		for (int m0 = 0; m0 < M; m0 += mc)
		{
			int			m_end = min_int(M, m0 + mc);

			for (int n = 0; n < N; n += nr_max)
			{
				int			nr = min_int(nr_max, N - n);
				const void *w = elem_at(W.p, W.type, (size_t) n * W.ld + (size_t) k0);
				const float *nb = pass_bias ? pass_bias + n : NULL;

				/* The slice pf_rows ahead, when it is whole. */
				const void *pf = (size_t) n + pf_rows + nr_max <= (size_t) N ?
					elem_at(w, W.type, pf_rows * W.ld) : NULL;

				for (int m = m0; m < m_end; m += mr_max)
				{
					int			mr = min_int(mr_max, m_end - m);
					const void *xb = elem_at(xk.p, xk.type, (size_t) m * xk.ld);
					float	   *yb = y + (size_t) m * ldy + n;

					if (kernel != NULL)
						kernel->blocks[(mr - 1) * nr_max + nr - 1] (xb, xk.ld, w, W.ld, kc,
																	m == m0 || few ? pf : NULL,
																	yb, ldy, nb, load_y);
					else
						block_portable(xb, xk.ld, xk.type, w, W.ld, W.type, kc, mr, nr, yb, ldy,
									   nb, load_y);
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
			return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
				__builtin_cpu_supports("avx512vl") && cm_gemm_path_supported(CM_GEMM_AVX2);
		case CM_GEMM_AVX512_BF16:
			return __builtin_cpu_supports("avx512bf16") && cm_gemm_path_supported(CM_GEMM_AVX512);
#else
		case CM_GEMM_AVX2:
		case CM_GEMM_AVX512:
		case CM_GEMM_AVX512_BF16:
			return false;
#endif
	}
	return false;
}

/*
 * The highest path CROSSMODAL_MAX_ISA allows (CM_GEMM_AVX512_BF16 when it is
 * unset or unknown).  Read once: the environment a process starts with is
 * the one its forked children keep, so the cache is right after fork too.
 */
static cm_gemm_path
path_cap(void)
{
	static _Atomic int cap = -1;
	int			c = atomic_load_explicit(&cap, memory_order_relaxed);

	if (c < 0)
	{
		const char *v = getenv("CROSSMODAL_MAX_ISA");

		c = CM_GEMM_AVX512_BF16;
		if (v != NULL)
			for (int p = CM_GEMM_PORTABLE; p <= CM_GEMM_AVX512_BF16; p++)
				if (strcmp(v, cm_gemm_path_env_name((cm_gemm_path) p)) == 0)
					c = p;
		atomic_store_explicit(&cap, c, memory_order_relaxed);
	}
	return (cm_gemm_path) c;
}

cm_gemm_path
cm_gemm_best_path(void)
{
	for (int p = path_cap(); p > CM_GEMM_PORTABLE; p--)
		if (cm_gemm_path_supported((cm_gemm_path) p))
			return (cm_gemm_path) p;
	return CM_GEMM_PORTABLE;
}

const char *
cm_gemm_path_env_name(cm_gemm_path path)
{
	switch (path)
	{
		case CM_GEMM_PORTABLE:
			return "portable";
		case CM_GEMM_AVX2:
			return "avx2";
		case CM_GEMM_AVX512:
			return "avx512";
		case CM_GEMM_AVX512_BF16:
			return "avx512_bf16";
	}
	return "unknown";
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
		case CM_GEMM_AVX512_BF16:
			return "AVX-512 with AVX512_BF16";
	}
	return "unknown";
}

/* The path itself when the CPU runs it, else the best one below it. */
static cm_gemm_path
resolve_path(cm_gemm_path path)
{
	while (path > CM_GEMM_PORTABLE && !cm_gemm_path_supported(path))
		path = (cm_gemm_path) (path - 1);
	return path;
}

/* The kernel for these operand types on path, NULL for portable C. */
static const gemm_kernel *
kernel_for(cm_gemm_path path, cm_elem xtype, cm_elem wtype)
{
#ifdef CM_HAVE_X86_GEMM
	path = resolve_path(path);
	if (xtype == CM_ELEM_BF16)
		return path == CM_GEMM_AVX512_BF16 && wtype == CM_ELEM_BF16 ? &kernel_avx512bf16 : NULL;
	if (path >= CM_GEMM_AVX512)
		return wtype == CM_ELEM_BF16 ? &kernel_avx512_wbf16 : &kernel_avx512;
	if (path == CM_GEMM_AVX2)
		return wtype == CM_ELEM_BF16 ? &kernel_avx2_wbf16 : &kernel_avx2;
#else
	(void) path;
	(void) xtype;
	(void) wtype;
#endif
	return NULL;
}

/*
 * The packed kernel's mode for these operands on path, or -1 when it does
 * not take them (pairs of bfloat16 need K and x's rows even, 4-byte
 * aligned).
 */
static int
packed_mode(cm_gemm_path path, int K, cm_mat x, cm_mat W)
{
#ifdef CM_HAVE_X86_GEMM
	path = resolve_path(path);
	if (path < CM_GEMM_AVX512 || K <= 0)
		return -1;
	if (x.type == CM_ELEM_F32)
		return W.type == CM_ELEM_F32 ? PACK_F32 : PACK_WIDEN;
	if (path == CM_GEMM_AVX512_BF16 && W.type == CM_ELEM_BF16 && K % 2 == 0 && x.ld % 2 == 0 &&
		((uintptr_t) x.p & 3) == 0)
		return PACK_PAIRS;
#else
	(void) path;
	(void) K;
	(void) x;
	(void) W;
#endif
	return -1;
}

/* A product, cut into units of W rows that the team's threads claim. */
typedef struct gemm_job
{
	const gemm_kernel *kernel;	/* in place (NULL: portable C) */
	int			mode;			/* >= 0: packed, in this pack_mode */
	int			M,
				N,
				K;
	cm_mat		x;
	cm_mat		W;
	const float *bias;
	float	   *y;
	size_t		ldy;
	bool		accumulate;
	int			unit_rows;		/* W rows per unit, a multiple of the kernel's NR */
} gemm_job;

static void
gemm_rows(const gemm_job *job, int n0, int n1)
{
	cm_mat		w = job->W;
	const float *bias = job->bias ? job->bias + n0 : NULL;

	w.p = elem_at(w.p, w.type, (size_t) n0 * w.ld);
#ifdef CM_HAVE_X86_GEMM
	if (job->mode >= 0)
	{
		packed_driver((pack_mode) job->mode, job->M, n1 - n0, job->K, job->x, w, bias,
					  job->y + n0, job->ldy, job->accumulate);
		return;
	}
#endif
	gemm_driver(job->kernel, job->M, n1 - n0, job->K, job->x, w, bias, job->y + n0, job->ldy,
				job->accumulate);
}

static void
gemm_unit(void *ctx, int unit, int thread)
{
	const gemm_job *job = ctx;
	int			n0 = unit * job->unit_rows;

	(void) thread;
	gemm_rows(job, n0, min_int(job->N, n0 + job->unit_rows));
}

void
cm_gemm_on_path(cm_gemm_path path, cm_team *team, cm_gemm_algo algo, int M, int N, int K,
				cm_mat x, cm_mat W, const float *bias, float *y, size_t ldy, bool accumulate)
{
	int			threads = cm_team_threads(team);
	int			units,
				nr;
	gemm_job	job = {NULL, -1, M, N, K, x, W, bias, y, ldy, accumulate, 0};

	if (algo == CM_GEMM_PACKED || (algo == CM_GEMM_AUTO && M >= CM_GEMM_PACK_MIN_ROWS))
		job.mode = packed_mode(path, K, x, W);
	if (job.mode < 0)
		job.kernel = kernel_for(path, x.type, W.type);
#ifdef CM_HAVE_X86_GEMM
	nr = job.mode >= 0 ? PACK_NR : job.kernel ? job.kernel->nr_max : 4;
#else
	nr = job.kernel ? job.kernel->nr_max : 4;
#endif
	if (threads < 2 || M <= 0 || K <= 0 || N < 2 * nr ||
		(size_t) M * (size_t) N * (size_t) K < GEMM_THREAD_MIN_WORK)
	{
		gemm_rows(&job, 0, N);
		return;
	}

	/*
	 * Units of whole register blocks; each thread streams its own W rows and
	 * writes its own columns of y.
	 */
	units = GEMM_UNITS_PER_THREAD * threads;
	job.unit_rows = ((N + units - 1) / units + nr - 1) / nr * nr;
	cm_team_run(team, gemm_unit, &job, (N + job.unit_rows - 1) / job.unit_rows);
}

void
cm_gemm(cm_team *team, cm_gemm_algo algo, int M, int N, int K, cm_mat x, cm_mat W,
		const float *bias, float *y, size_t ldy, bool accumulate)
{
	cm_gemm_on_path(cm_gemm_best_path(), team, algo, M, N, K, x, W, bias, y, ldy, accumulate);
}

/* Rows of x rounded to bfloat16, cut into units for a team. */
typedef struct round_job
{
	cm_gemm_path path;
	int			M,
				K;
	const float *x;
	size_t		ldx;
	void	   *out;
	int			unit_rows;
} round_job;

static void
round_unit(void *ctx, int unit, int thread)
{
	const round_job *job = ctx;
	int			m1 = min_int(job->M, (unit + 1) * job->unit_rows);

	(void) thread;
	for (int m = unit * job->unit_rows; m < m1; m++)
	{
		const float *xr = job->x + (size_t) m * job->ldx;
		size_t		o = (size_t) m * job->K;

#ifdef CM_HAVE_X86_GEMM
		if (job->path == CM_GEMM_AVX512_BF16)
		{
			round_row_packed_avx512bf16(xr, (uint16_t *) job->out + o, job->K);
			continue;
		}
		if (job->path >= CM_GEMM_AVX2)
		{
			round_row_f32_avx2(xr, (float *) job->out + o, job->K);
			continue;
		}
#endif
		for (int k = 0; k < job->K; k++)
			((float *) job->out)[o + k] = cm_f32_from_bf16(bf16_round_activation(xr[k]));
	}
}

cm_mat
cm_gemm_round_x(cm_gemm_path path, cm_team *team, int M, int K, const float *x, size_t ldx,
				float *out)
{
	round_job	job = {resolve_path(path), M, K, x, ldx, out, 0};
	cm_mat		r = {out, (size_t) K, job.path == CM_GEMM_AVX512_BF16 ? CM_ELEM_BF16 : CM_ELEM_F32};
	int			units = (size_t) M * (size_t) K >= GEMM_ROUND_TEAM_MIN ? 4 * cm_team_threads(team) : 1;

	if (M <= 0 || K <= 0)
		return r;
	job.unit_rows = (M + units - 1) / units;
	cm_team_run(team, round_unit, &job, (M + job.unit_rows - 1) / job.unit_rows);
	return r;
}
