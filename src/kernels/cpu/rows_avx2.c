/* AVX2 + FMA + F16C tile kernels for F32, F16 and BF16 weights against f32 activations
 * (ds_gemm_kernel), built like the AVX-512 ones (rows_avx512.c) with 8-lane vectors: a
 * micro-kernel computes up to TILE_W weight rows × TILE_X activation rows, each pair with one
 * 8-lane accumulator updated over the row in the same order whatever tile it sits in, then the
 * same horizontal sum and scalar tail, so results do not depend on the tiling. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/variants.h"
#include "kernels/cpu/x86_common.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

/* 4 × 3 accumulators + 3 activation vectors + 1 weight vector of the 16 ymm registers: the
 * activation vectors are loaded first, then each weight row's converted vector feeds 3 FMAs. */
#define TILE_W 4
#define TILE_X 3
_Static_assert(DS_GEMM_X_GROUP % TILE_X == 0, "activation chunks must hold whole tiles");

/* ---- 8 weights starting at element i, as f32 ---- */

AVX2_INLINE __m256 ld8_f32(const uint8_t *p, int i) { return _mm256_loadu_ps((const float *)p + i); }

AVX2_INLINE __m256 ld8_f16(const uint8_t *p, int i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}

AVX2_INLINE __m256 ld8_bf16(const uint8_t *p, int i) {
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2_INLINE float ld1_f32(const uint8_t *w, int i) { return ((const float *)w)[i]; }
AVX2_INLINE float ld1_f16(const uint8_t *w, int i) { return _cvtsh_ss(((const uint16_t *)w)[i]); }
AVX2_INLINE float ld1_bf16(const uint8_t *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

/* One tile: nw ≤ TILE_W weight rows × nx ≤ TILE_X activation rows, both compile-time
 * constants at every call site. ELEM: bytes per weight. */
#define AVX2_TILE(NAME, LD8, LD1, ELEM)                                                          \
    AVX2_INLINE void NAME##_tile(const uint8_t *w, size_t ldw, const float *x, size_t ldx, int n,  \
                                 float *y, size_t ldy, const int nw, const int nx) {              \
        __m256 acc[TILE_W][TILE_X];                                                               \
        _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++)                                      \
            _Pragma("GCC unroll 3") for (int b = 0; b < nx; b++) acc[a][b] = _mm256_setzero_ps(); \
        int i = 0;                                                                                \
        for (; i + 8 <= n; i += 8) {                                                              \
            __m256 xv[TILE_X];                                                                    \
            _Pragma("GCC unroll 3") for (int b = 0; b < nx; b++) xv[b] = _mm256_loadu_ps(x + b * ldx + i); \
            _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++) {                                \
                if (nx == 1 && (i * (ELEM)) % 64 == 0)                                            \
                    _mm_prefetch((const char *)w + a * ldw + (size_t)i * (ELEM) + DS_PREFETCH_AHEAD, _MM_HINT_T0); \
                const __m256 wv = LD8(w + a * ldw, i);                                            \
                _Pragma("GCC unroll 3") for (int b = 0; b < nx; b++)                              \
                    acc[a][b] = _mm256_fmadd_ps(wv, xv[b], acc[a][b]);                            \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++)                                      \
            _Pragma("GCC unroll 3") for (int b = 0; b < nx; b++) {                                \
                float s = ds_hsum8(acc[a][b]);                                                       \
                for (int j = i; j < n; j++) s = __builtin_fmaf(LD1(w + a * ldw, j), x[b * ldx + j], s); \
                y[b * ldy + a] = s;                                                               \
            }                                                                                     \
    }

/* The tile shapes an edge can need: full, or fewer weight and/or activation rows. */
#define TILE_CASES_NX(NAME, NW)                                                                   \
    DS_GEMM_TILE_CASE(NAME, NW, 1) DS_GEMM_TILE_CASE(NAME, NW, 2) DS_GEMM_TILE_CASE(NAME, NW, 3)
#define TILE_CASES(NAME)                                                                          \
    TILE_CASES_NX(NAME, 1) TILE_CASES_NX(NAME, 2) TILE_CASES_NX(NAME, 3) TILE_CASES_NX(NAME, 4)
_Static_assert(TILE_W == 4 && TILE_X == 3, "TILE_CASES lists the shapes up to 4 x 3");

#define AVX2_GEMM(NAME, LD8, LD1, ELEM)                                                           \
    AVX2_TILE(NAME, LD8, LD1, ELEM)                                                               \
    DS_GEMM_TILES(NAME, AVX2, TILE_W, TILE_X, TILE_CASES)

AVX2_GEMM(gemm_f32, ld8_f32, ld1_f32, 4)
AVX2_GEMM(gemm_f16, ld8_f16, ld1_f16, 2)
AVX2_GEMM(gemm_bf16, ld8_bf16, ld1_bf16, 2)

ds_gemm_kernel ds_gemm_kernel_avx2(ds_dtype t) {
    switch (t) {
    case DS_F32: return gemm_f32;
    case DS_F16: return gemm_f16;
    case DS_BF16: return gemm_bf16;
    default: return NULL;
    }
}

/* Two 8-lane accumulators taking 32 elements per step, then the same horizontal sum and a
 * scalar tail: short dots (attention's q·k over a head) are bound by the FMA latency. */
AVX2 float ds_dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), a1);
    }
    float s = ds_hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s = __builtin_fmaf(a[i], b[i], s);
    return s;
}
