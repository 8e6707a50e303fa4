/* AVX-512 attention step (attention.h). A tile's 32 positions are two 16-lane vectors:
 *  - keys are transposed once per tile (16×16 register transposes), so a query's 32 scores
 *    come from 2·dk fused multiply-adds of a broadcast q[d] with key column d, d in order; four
 *    queries share every column load;
 *  - exp is a Cephes-style polynomial (degree 6 after a ln 2 range reduction, within 2 ulp),
 *    exactly 0 below -87 and exactly 1 at 0;
 *  - the value sum keeps out in registers 64 floats at a time for up to four queries, which
 *    share every value load.
 * Grouping never changes a query's operations: each has its own accumulators and lanes.
 * The loops over queries and vectors are unrolled (GCC unroll) so that the accumulator arrays
 * live in registers; left to -O2 they go through the stack. */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/attention.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))

#define TILE DS_ATTN_TILE
#define NQ_MAX 4

AVX512_INLINE __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.0f);
    const __mmask16 live = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(live, y, n);
}

/* Rows r[0..16) become columns: r[c][j] = old r[j][c]. */
AVX512_INLINE void transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    for (int k = 0; k < 8; k++) {
        a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) {
        const __m512d x0 = _mm512_castps_pd(a[4 * k]), x1 = _mm512_castps_pd(a[4 * k + 1]);
        const __m512d x2 = _mm512_castps_pd(a[4 * k + 2]), x3 = _mm512_castps_pd(a[4 * k + 3]);
        b[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
        b[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
        b[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
        b[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
    }
    /* b[4k + e], 128-bit lane L, holds element 4L + e of rows 4k..4k+3. */
    for (int e = 0; e < 4; e++) {
        const __m512 x = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x88), y = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xdd);
        const __m512 x2 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x88);
        const __m512 y2 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xdd);
        r[e] = _mm512_shuffle_f32x4(x, x2, 0x88);
        r[4 + e] = _mm512_shuffle_f32x4(y, y2, 0x88);
        r[8 + e] = _mm512_shuffle_f32x4(x, x2, 0xdd);
        r[12 + e] = _mm512_shuffle_f32x4(y, y2, 0xdd);
    }
}

AVX512 static void load_keys(const float *const *rows, int n, int dk, float *kt) {
    const int dfull = dk & ~15;
    for (int jb = 0; jb < TILE; jb += 16) {
        if (jb >= n) {
            for (int d = 0; d < dk; d++) _mm512_store_ps(kt + (size_t)d * TILE + jb, _mm512_setzero_ps());
            continue;
        }
        for (int d0 = 0; d0 < dfull; d0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++) r[j] = jb + j < n ? _mm512_loadu_ps(rows[jb + j] + d0) : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_store_ps(kt + (size_t)(d0 + c) * TILE + jb, r[c]);
        }
        for (int d = dfull; d < dk; d++)
            for (int j = jb; j < jb + 16; j++) kt[(size_t)d * TILE + j] = j < n ? rows[j][d] : 0.0f;
    }
}

/* The softmax part of the step for one query from its raw dot products s0 (positions 0..15)
 * and s1 (16..31). */
AVX512_INLINE void softmax_step(__m512 s0, __m512 s1, int lim, float scale, float *m, float *l, float *alpha,
                                float *p) {
    const __m512 sc = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    const __mmask16 k0 = lim >= 16 ? 0xffff : (__mmask16)((1u << lim) - 1);
    const __mmask16 k1 = lim >= 32 ? 0xffff : lim <= 16 ? 0 : (__mmask16)((1u << (lim - 16)) - 1);
    s0 = _mm512_mask_mul_ps(ninf, k0, s0, sc);
    s1 = _mm512_mask_mul_ps(ninf, k1, s1, sc);
    const float tmax = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
    const float mx = tmax > *m ? tmax : *m;
    const __m512 mv = _mm512_set1_ps(mx);
    const __m512 p0 = exp16(_mm512_sub_ps(s0, mv)), p1 = exp16(_mm512_sub_ps(s1, mv));
    _mm512_store_ps(p, p0);
    _mm512_store_ps(p + 16, p1);
    const float a = _mm512_cvtss_f32(exp16(_mm512_set1_ps(*m - mx)));
    *l = __builtin_fmaf(*l, a, _mm512_reduce_add_ps(_mm512_add_ps(p0, p1)));
    *alpha = a;
    *m = mx;
}

AVX512_INLINE void scores_body(const float *kt, int dk, const float *const *q, const int *lim, const int nq,
                               float scale, float *m, float *l, float *alpha, float *p) {
    __m512 a0[NQ_MAX], a1[NQ_MAX];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++) a0[r] = a1[r] = _mm512_setzero_ps();
    for (int d = 0; d < dk; d++) {
        const __m512 k0 = _mm512_load_ps(kt + (size_t)d * TILE), k1 = _mm512_load_ps(kt + (size_t)d * TILE + 16);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nq; r++) {
            const __m512 b = _mm512_set1_ps(q[r][d]);
            a0[r] = _mm512_fmadd_ps(b, k0, a0[r]);
            a1[r] = _mm512_fmadd_ps(b, k1, a1[r]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++) softmax_step(a0[r], a1[r], lim[r], scale, &m[r], &l[r], &alpha[r], p + (size_t)r * TILE);
}

AVX512 static void scores(const float *kt, int dk, const float *const *q, const int *lim, int nq, float scale, float *m,
                          float *l, float *alpha, float *p) {
    for (int i = 0; i < nq; i += NQ_MAX) {
        const float *const *qi = q + i;
        float *pi = p + (size_t)i * TILE;
        switch (nq - i) {
        case 1: scores_body(kt, dk, qi, lim + i, 1, scale, m + i, l + i, alpha + i, pi); break;
        case 2: scores_body(kt, dk, qi, lim + i, 2, scale, m + i, l + i, alpha + i, pi); break;
        case 3: scores_body(kt, dk, qi, lim + i, 3, scale, m + i, l + i, alpha + i, pi); break;
        default: scores_body(kt, dk, qi, lim + i, 4, scale, m + i, l + i, alpha + i, pi); break;
        }
    }
}

/* out[r][d0 .. d0 + 16·nv) of nq queries through one tile; the last vector is masked by last. */
AVX512_INLINE void value_chunk(const float *const *rows, int d0, const int nv, __mmask16 last, const float *p,
                               const int *lim, const float *alpha, float *const *out, const int nq) {
    __m512 acc[NQ_MAX][4];
    int jmax = 0;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++) {
        jmax = lim[r] > jmax ? lim[r] : jmax;
        const __m512 a = _mm512_set1_ps(alpha[r]);
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++)
            acc[r][v] = _mm512_mul_ps(_mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff, out[r] + d0 + 16 * v), a);
    }
    for (int j = 0; j < jmax; j++) {
        __m512 x[4];
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++) x[v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff, rows[j] + d0 + 16 * v);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nq; r++) {
            if (j >= lim[r]) continue;
            const __m512 w = _mm512_set1_ps(p[(size_t)r * TILE + j]);
            _Pragma("GCC unroll 4")
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(w, x[v], acc[r][v]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++) _mm512_mask_storeu_ps(out[r] + d0 + 16 * v, v == nv - 1 ? last : 0xffff, acc[r][v]);
}

AVX512_INLINE void value_body(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                              float *const *out, const int nq) {
    int d0 = 0;
    for (; d0 + 64 <= dv; d0 += 64) value_chunk(rows, d0, 4, 0xffff, p, lim, alpha, out, nq);
    for (; d0 < dv; d0 += 16) {
        const int rem = dv - d0;
        value_chunk(rows, d0, 1, rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1), p, lim, alpha, out, nq);
    }
}

AVX512 static void accumulate(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                              float *const *out, int nq) {
    for (int i = 0; i < nq; i += NQ_MAX) {
        const float *pi = p + (size_t)i * TILE;
        switch (nq - i) {
        case 1: value_body(rows, dv, pi, lim + i, alpha + i, out + i, 1); break;
        case 2: value_body(rows, dv, pi, lim + i, alpha + i, out + i, 2); break;
        case 3: value_body(rows, dv, pi, lim + i, alpha + i, out + i, 3); break;
        default: value_body(rows, dv, pi, lim + i, alpha + i, out + i, 4); break;
        }
    }
}

const ds_attn_ops ds_attn_ops_avx512 = {load_keys, scores, accumulate};
