/* AVX2 + FMA + F16C row kernels. Per activation row: two 8-lane accumulators over 16-element
 * steps, summed in a fixed order, then a scalar tail. The body is specialised for each nx so
 * the accumulators live in registers; every nx performs the same operations per row. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/cpu/variants.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

AVX2_INLINE __m256 ld8_f32(const void *w, int i) { return _mm256_loadu_ps((const float *)w + i); }
AVX2_INLINE __m256 ld8_f16(const void *w, int i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
}
AVX2_INLINE __m256 ld8_bf16(const void *w, int i) {
    __m128i v = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}
AVX2_INLINE float ld1_f32(const void *w, int i) { return ((const float *)w)[i]; }
AVX2_INLINE float ld1_f16(const void *w, int i) { return _cvtsh_ss(((const uint16_t *)w)[i]); }
AVX2_INLINE float ld1_bf16(const void *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define AVX2_ROW_KERNEL(NAME, LD8, LD1)                                                         \
    AVX2_INLINE void NAME##_body(const void *w, const float *const *x, const int nx, int n,    \
                                 float *out) {                                                  \
        __m256 a0[DS_NX_MAX], a1[DS_NX_MAX];                                                    \
        for (int r = 0; r < nx; r++) a0[r] = a1[r] = _mm256_setzero_ps();                       \
        int i = 0;                                                                              \
        for (; i + 16 <= n; i += 16) {                                                          \
            __m256 w0 = LD8(w, i), w1 = LD8(w, i + 8);                                          \
            for (int r = 0; r < nx; r++) {                                                      \
                a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[r] + i), a0[r]);                  \
                a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[r] + i + 8), a1[r]);              \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < nx; r++) {                                                          \
            float s = hsum8(_mm256_add_ps(a0[r], a1[r]));                                       \
            for (int j = i; j < n; j++) s = __builtin_fmaf(LD1(w, j), x[r][j], s);             \
            out[r] = s;                                                                         \
        }                                                                                       \
    }                                                                                           \
    AVX2 static void NAME(const void *w, const float *const *x, int nx, int n, float *out) {   \
        switch (nx) {                                                                           \
        case 1: NAME##_body(w, x, 1, n, out); break;                                            \
        case 2: NAME##_body(w, x, 2, n, out); break;                                            \
        case 3: NAME##_body(w, x, 3, n, out); break;                                            \
        default: NAME##_body(w, x, 4, n, out); break;                                           \
        }                                                                                       \
    }

AVX2_ROW_KERNEL(row_f32, ld8_f32, ld1_f32)
AVX2_ROW_KERNEL(row_f16, ld8_f16, ld1_f16)
AVX2_ROW_KERNEL(row_bf16, ld8_bf16, ld1_bf16)

ds_row_kernel ds_row_kernel_avx2(ds_dtype t) {
    switch (t) {
    case DS_F32: return row_f32;
    case DS_F16: return row_f16;
    case DS_BF16: return row_bf16;
    default: return NULL;
    }
}

AVX2 float ds_dot_f32_avx2(const float *a, const float *b, int n) {
    float out;
    row_f32_body(a, &b, 1, n, &out);
    return out;
}
