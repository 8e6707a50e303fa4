/* AVX-512 row kernels for F32, F16 and BF16 weights against f32 activations: the weight row is
 * consumed 32 elements at a time as two 16-lane f32 vectors, each activation row has two
 * accumulators that take them in a fixed order, then a fixed horizontal sum and a scalar tail.
 * As in rows_avx2.c, the body is specialised per nx and does the same operations per row for
 * every nx. The block-quantized types use the quantized-activation kernels (qrows_avx512.c), or
 * the AVX2 kernels in the exact activation mode. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/cpu/variants.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))

/* See rows_avx2.c: prefetching ahead of the page-bound hardware prefetcher. */
#define PREFETCH_AHEAD 4096

AVX512_INLINE void ld32_f32(const void *p, int i, __m512 w[2]) {
    const float *f = (const float *)p + i;
    w[0] = _mm512_loadu_ps(f);
    w[1] = _mm512_loadu_ps(f + 16);
}

AVX512_INLINE void ld32_f16(const void *p, int i, __m512 w[2]) {
    const uint16_t *h = (const uint16_t *)p + i;
    w[0] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
    w[1] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + 16)));
}

AVX512_INLINE __m512 bf16x16(const uint16_t *h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)h)), 16));
}

AVX512_INLINE void ld32_bf16(const void *p, int i, __m512 w[2]) {
    const uint16_t *h = (const uint16_t *)p + i;
    w[0] = bf16x16(h);
    w[1] = bf16x16(h + 16);
}

AVX512_INLINE float ld1_f32(const void *w, int i) { return ((const float *)w)[i]; }
AVX512_INLINE float ld1_f16(const void *w, int i) { return _cvtsh_ss(((const uint16_t *)w)[i]); }
AVX512_INLINE float ld1_bf16(const void *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

#define AVX512_ROW_KERNEL(NAME, LD32, LD1, BYTES32)                                             \
    AVX512_INLINE void NAME##_body(const void *w, const float *const *x, const int nx, int n,  \
                                   float *out) {                                                \
        __m512 a0[DS_NX_MAX], a1[DS_NX_MAX];                                                    \
        for (int r = 0; r < nx; r++) a0[r] = a1[r] = _mm512_setzero_ps();                       \
        int i = 0;                                                                              \
        for (; i + 32 <= n; i += 32) {                                                          \
            __m512 wv[2];                                                                       \
            _mm_prefetch((const char *)w + (size_t)(i / 32) * (BYTES32) + PREFETCH_AHEAD, _MM_HINT_T0); \
            if ((BYTES32) > 64)                                                                 \
                _mm_prefetch((const char *)w + (size_t)(i / 32) * (BYTES32) + PREFETCH_AHEAD + 64, _MM_HINT_T0); \
            LD32(w, i, wv);                                                                     \
            _Pragma("GCC unroll 4")                                                             \
            for (int r = 0; r < nx; r++) {                                                      \
                a0[r] = _mm512_fmadd_ps(wv[0], _mm512_loadu_ps(x[r] + i), a0[r]);               \
                a1[r] = _mm512_fmadd_ps(wv[1], _mm512_loadu_ps(x[r] + i + 16), a1[r]);          \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < nx; r++) {                                                          \
            float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[r], a1[r]));                        \
            for (int j = i; j < n; j++) s = __builtin_fmaf(LD1(w, j), x[r][j], s);             \
            out[r] = s;                                                                         \
        }                                                                                       \
    }                                                                                           \
    AVX512 static void NAME(const void *w, const float *const *x, int nx, int n, float *out) { \
        switch (nx) {                                                                           \
        case 1: NAME##_body(w, x, 1, n, out); break;                                            \
        case 2: NAME##_body(w, x, 2, n, out); break;                                            \
        case 3: NAME##_body(w, x, 3, n, out); break;                                            \
        default: NAME##_body(w, x, 4, n, out); break;                                           \
        }                                                                                       \
    }

AVX512_ROW_KERNEL(row_f32, ld32_f32, ld1_f32, 128)
AVX512_ROW_KERNEL(row_f16, ld32_f16, ld1_f16, 64)
AVX512_ROW_KERNEL(row_bf16, ld32_bf16, ld1_bf16, 64)

ds_row_kernel ds_row_kernel_avx512(ds_dtype t) {
    switch (t) {
    case DS_F32: return row_f32;
    case DS_F16: return row_f16;
    case DS_BF16: return row_bf16;
    default: return NULL;
    }
}

AVX512 float ds_dot_f32_avx512(const float *a, const float *b, int n) {
    float out;
    row_f32_body(a, &b, 1, n, &out);
    return out;
}
