/* AVX2 attention step (attention.h), laid out as the AVX-512 one (attention_avx512.c) with
 * 8-lane vectors: a tile's 32 positions are four vectors, keys are transposed by 8×8 register
 * transposes, two queries share every key-column load and every value load, and exp is the
 * same polynomial with the power of two built in the exponent bits.
 * The loops over queries and vectors are unrolled (GCC unroll) so that the accumulator arrays
 * live in registers; left to -O2 they go through the stack. */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/x86_common.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

#define TILE DS_ATTN_TILE
#define NQ_MAX 2

AVX2_INLINE __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 live = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* x ≥ -87 keeps n ≥ -126, a normal power of two */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), live);
}

AVX2_INLINE float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows r[0..8) become columns: r[c][j] = old r[j][c]. */
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 a[8], b[8];
    for (int k = 0; k < 4; k++) {
        a[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        b[4 * k] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
        b[4 * k + 1] = _mm256_shuffle_ps(a[4 * k], a[4 * k + 2], 0xee);
        b[4 * k + 2] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
        b[4 * k + 3] = _mm256_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xee);
    }
    /* b[4k + e], 128-bit lane L, holds element 4L + e of rows 4k..4k+3. */
    for (int e = 0; e < 4; e++) {
        r[e] = _mm256_permute2f128_ps(b[e], b[4 + e], 0x20);
        r[4 + e] = _mm256_permute2f128_ps(b[e], b[4 + e], 0x31);
    }
}

AVX2 static void load_keys(const float *const *rows, int n, int dk, float *kt) {
    const int dfull = dk & ~7;
    for (int jb = 0; jb < TILE; jb += 8) {
        if (jb >= n) {
            for (int d = 0; d < dk; d++) _mm256_store_ps(kt + (size_t)d * TILE + jb, _mm256_setzero_ps());
            continue;
        }
        for (int d0 = 0; d0 < dfull; d0 += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; j++) r[j] = jb + j < n ? _mm256_loadu_ps(rows[jb + j] + d0) : _mm256_setzero_ps();
            transpose8(r);
            for (int c = 0; c < 8; c++) _mm256_store_ps(kt + (size_t)(d0 + c) * TILE + jb, r[c]);
        }
        for (int d = dfull; d < dk; d++)
            for (int j = jb; j < jb + 8; j++) kt[(size_t)d * TILE + j] = j < n ? rows[j][d] : 0.0f;
    }
}

/* Lane masks of the first n lanes. */
AVX2_INLINE __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The softmax part of the step for one query from its raw dot products s[v] (positions 8v..8v+7). */
AVX2_INLINE void softmax_step(__m256 s[4], int lim, float scale, float *m, float *l, float *alpha, float *p) {
    const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    _Pragma("GCC unroll 4")
    for (int v = 0; v < 4; v++)
        s[v] = _mm256_blendv_ps(ninf, _mm256_mul_ps(s[v], sc), _mm256_castsi256_ps(first_lanes(lim - 8 * v)));
    const float tmax = hmax8(_mm256_max_ps(_mm256_max_ps(s[0], s[1]), _mm256_max_ps(s[2], s[3])));
    const float mx = tmax > *m ? tmax : *m;
    const __m256 mv = _mm256_set1_ps(mx);
    __m256 e[4];
    _Pragma("GCC unroll 4")
    for (int v = 0; v < 4; v++) {
        e[v] = exp8(_mm256_sub_ps(s[v], mv));
        _mm256_store_ps(p + 8 * v, e[v]);
    }
    const float a = _mm256_cvtss_f32(exp8(_mm256_set1_ps(*m - mx)));
    *l = __builtin_fmaf(*l, a, ds_hsum8(_mm256_add_ps(_mm256_add_ps(e[0], e[1]), _mm256_add_ps(e[2], e[3]))));
    *alpha = a;
    *m = mx;
}

AVX2_INLINE void scores_body(const float *kt, int dk, const float *const *q, const int *lim, const int nq, float scale,
                             float *m, float *l, float *alpha, float *p) {
    __m256 acc[NQ_MAX][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++) acc[r][v] = _mm256_setzero_ps();
    for (int d = 0; d < dk; d++) {
        __m256 k[4];
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++) k[v] = _mm256_load_ps(kt + (size_t)d * TILE + 8 * v);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nq; r++) {
            const __m256 b = _mm256_set1_ps(q[r][d]);
            _Pragma("GCC unroll 4")
            for (int v = 0; v < 4; v++) acc[r][v] = _mm256_fmadd_ps(b, k[v], acc[r][v]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++) softmax_step(acc[r], lim[r], scale, &m[r], &l[r], &alpha[r], p + (size_t)r * TILE);
}

AVX2 static void scores(const float *kt, int dk, const float *const *q, const int *lim, int nq, float scale, float *m,
                        float *l, float *alpha, float *p) {
    for (int i = 0; i < nq; i += NQ_MAX) {
        float *pi = p + (size_t)i * TILE;
        if (nq - i == 1) scores_body(kt, dk, q + i, lim + i, 1, scale, m + i, l + i, alpha + i, pi);
        else scores_body(kt, dk, q + i, lim + i, 2, scale, m + i, l + i, alpha + i, pi);
    }
}

/* out[r][d0 .. d0 + 8·nv) of nq queries through one tile; when `masked`, the last vector holds
 * only the lanes set in last (vmaskmov is slow, so full vectors use plain loads and stores). */
AVX2_INLINE __m256 ld(const float *x, const int masked, __m256i last) {
    return masked ? _mm256_maskload_ps(x, last) : _mm256_loadu_ps(x);
}

AVX2_INLINE void value_chunk(const float *const *rows, int d0, const int nv, const int masked, __m256i last,
                             const float *p, const int *lim, const float *alpha, float *const *out, const int nq) {
    __m256 acc[NQ_MAX][4];
    int jmax = 0;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++) {
        jmax = lim[r] > jmax ? lim[r] : jmax;
        const __m256 a = _mm256_set1_ps(alpha[r]);
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++) acc[r][v] = _mm256_mul_ps(ld(out[r] + d0 + 8 * v, masked && v == nv - 1, last), a);
    }
    for (int j = 0; j < jmax; j++) {
        __m256 x[4];
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++) x[v] = ld(rows[j] + d0 + 8 * v, masked && v == nv - 1, last);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nq; r++) {
            if (j >= lim[r]) continue;
            const __m256 w = _mm256_set1_ps(p[(size_t)r * TILE + j]);
            _Pragma("GCC unroll 4")
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(w, x[v], acc[r][v]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < nq; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < nv; v++) {
            float *o = out[r] + d0 + 8 * v;
            if (masked && v == nv - 1) _mm256_maskstore_ps(o, last, acc[r][v]);
            else _mm256_storeu_ps(o, acc[r][v]);
        }
}

AVX2_INLINE void value_body(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                            float *const *out, const int nq) {
    int d0 = 0;
    for (; d0 + 32 <= dv; d0 += 32) value_chunk(rows, d0, 4, 0, first_lanes(8), p, lim, alpha, out, nq);
    for (; d0 < dv; d0 += 8) value_chunk(rows, d0, 1, 1, first_lanes(dv - d0), p, lim, alpha, out, nq);
}

AVX2 static void accumulate(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                            float *const *out, int nq) {
    for (int i = 0; i < nq; i += NQ_MAX) {
        const float *pi = p + (size_t)i * TILE;
        if (nq - i == 1) value_body(rows, dv, pi, lim + i, alpha + i, out + i, 1);
        else value_body(rows, dv, pi, lim + i, alpha + i, out + i, 2);
    }
}

const ds_attn_ops ds_attn_ops_avx2 = {load_keys, scores, accumulate};
