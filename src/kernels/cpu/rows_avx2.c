/* AVX2 + FMA + F16C row kernels. The weight row is consumed 32 elements at a time as four
 * 8-lane f32 vectors (converted from F16/BF16, or dequantized from a Q8_0/Q4_0/Q4_1 block);
 * each activation row has two accumulators that take those four products in a fixed order,
 * then a fixed horizontal sum and a scalar tail (float types only). The body is specialised
 * for each nx so the accumulators live in registers; every nx performs the same operations
 * per row, which keeps results independent of how rows are grouped. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/variants.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

/* ---- loaders: 32 weights starting at element i → w[0..3] ---- */

AVX2_INLINE void ld32_f32(const void *p, int i, __m256 w[4]) {
    const float *f = (const float *)p + i;
    for (int k = 0; k < 4; k++) w[k] = _mm256_loadu_ps(f + 8 * k);
}

AVX2_INLINE void ld32_f16(const void *p, int i, __m256 w[4]) {
    const uint16_t *h = (const uint16_t *)p + i;
    for (int k = 0; k < 4; k++) w[k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8 * k)));
}

AVX2_INLINE void ld32_bf16(const void *p, int i, __m256 w[4]) {
    const uint16_t *h = (const uint16_t *)p + i;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(h + 8 * k));
        w[k] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
    }
}

AVX2_INLINE __m256 scale_of(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _mm256_set1_ps(_cvtsh_ss(h));
}

/* Eight unsigned bytes → eight f32. */
AVX2_INLINE __m256 u8x8_to_f32(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }

AVX2_INLINE void ld32_q8_0(const void *p, int i, __m256 w[4]) {
    const uint8_t *b = (const uint8_t *)p + (size_t)(i / 32) * 34;
    __m256 d = scale_of(b);
    for (int k = 0; k < 4; k++) {
        __m128i q = _mm_loadl_epi64((const __m128i *)(b + 2 + 8 * k));
        w[k] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
}

/* The 16 packed bytes of a 4-bit block: low nibbles are elements 0..15, high ones 16..31. */
AVX2_INLINE void nibbles(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs), mask = _mm_set1_epi8(0x0f);
    *lo = _mm_and_si128(v, mask);
    *hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
}

AVX2_INLINE void ld32_q4_0(const void *p, int i, __m256 w[4]) {
    const uint8_t *b = (const uint8_t *)p + (size_t)(i / 32) * 18;
    __m256 d = scale_of(b), eight = _mm256_set1_ps(8.0f);
    __m128i lo, hi;
    nibbles(b + 2, &lo, &hi);
    w[0] = _mm256_mul_ps(_mm256_sub_ps(u8x8_to_f32(lo), eight), d);
    w[1] = _mm256_mul_ps(_mm256_sub_ps(u8x8_to_f32(_mm_srli_si128(lo, 8)), eight), d);
    w[2] = _mm256_mul_ps(_mm256_sub_ps(u8x8_to_f32(hi), eight), d);
    w[3] = _mm256_mul_ps(_mm256_sub_ps(u8x8_to_f32(_mm_srli_si128(hi, 8)), eight), d);
}

AVX2_INLINE void ld32_q4_1(const void *p, int i, __m256 w[4]) {
    const uint8_t *b = (const uint8_t *)p + (size_t)(i / 32) * 20;
    __m256 d = scale_of(b), m = scale_of(b + 2);
    __m128i lo, hi;
    nibbles(b + 4, &lo, &hi);
    /* q·d + m with two roundings, as the scalar dequantizer does */
    w[0] = _mm256_add_ps(_mm256_mul_ps(u8x8_to_f32(lo), d), m);
    w[1] = _mm256_add_ps(_mm256_mul_ps(u8x8_to_f32(_mm_srli_si128(lo, 8)), d), m);
    w[2] = _mm256_add_ps(_mm256_mul_ps(u8x8_to_f32(hi), d), m);
    w[3] = _mm256_add_ps(_mm256_mul_ps(u8x8_to_f32(_mm_srli_si128(hi, 8)), d), m);
}

/* ---- scalar tails for float types ---- */

AVX2_INLINE float ld1_f32(const void *w, int i) { return ((const float *)w)[i]; }
AVX2_INLINE float ld1_f16(const void *w, int i) { return _cvtsh_ss(((const uint16_t *)w)[i]); }
AVX2_INLINE float ld1_bf16(const void *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }
AVX2_INLINE float ld1_none(const void *w, int i) { return 0.0f; } /* block types have no tail */

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Weights stream from memory once per token; prefetching a little ahead of the hardware
 * prefetcher (which stops at every 4 KiB page) keeps more reads in flight. */
#define PREFETCH_AHEAD 4096

#define AVX2_ROW_KERNEL(NAME, LD32, LD1, BYTES32)                                               \
    AVX2_INLINE void NAME##_body(const void *w, const float *const *x, const int nx, int n,    \
                                 float *out) {                                                  \
        __m256 a0[DS_NX_MAX], a1[DS_NX_MAX];                                                    \
        for (int r = 0; r < nx; r++) a0[r] = a1[r] = _mm256_setzero_ps();                       \
        int i = 0;                                                                              \
        for (; i + 32 <= n; i += 32) {                                                          \
            __m256 wv[4];                                                                       \
            _mm_prefetch((const char *)w + (size_t)(i / 32) * (BYTES32) + PREFETCH_AHEAD, _MM_HINT_T0); \
            LD32(w, i, wv);                                                                     \
            _Pragma("GCC unroll 4")                                                             \
            for (int r = 0; r < nx; r++) {                                                      \
                a0[r] = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(x[r] + i), a0[r]);               \
                a1[r] = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(x[r] + i + 8), a1[r]);           \
                a0[r] = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(x[r] + i + 16), a0[r]);          \
                a1[r] = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(x[r] + i + 24), a1[r]);          \
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

AVX2_ROW_KERNEL(row_f32, ld32_f32, ld1_f32, 128)
AVX2_ROW_KERNEL(row_f16, ld32_f16, ld1_f16, 64)
AVX2_ROW_KERNEL(row_bf16, ld32_bf16, ld1_bf16, 64)
AVX2_ROW_KERNEL(row_q8_0, ld32_q8_0, ld1_none, 34)
AVX2_ROW_KERNEL(row_q4_0, ld32_q4_0, ld1_none, 18)
AVX2_ROW_KERNEL(row_q4_1, ld32_q4_1, ld1_none, 20)

ds_row_kernel ds_row_kernel_avx2(ds_dtype t) {
    switch (t) {
    case DS_F32: return row_f32;
    case DS_F16: return row_f16;
    case DS_BF16: return row_bf16;
    case DS_Q8_0: return row_q8_0;
    case DS_Q4_0: return row_q4_0;
    case DS_Q4_1: return row_q4_1;
    default: return NULL;
    }
}

AVX2 float ds_dot_f32_avx2(const float *a, const float *b, int n) {
    float out;
    row_f32_body(a, &b, 1, n, &out);
    return out;
}
