/* AVX-512 tile kernels for F32, F16 and BF16 weights against f32 activations (ds_gemm_kernel).
 * A micro-kernel computes up to TILE_W weight rows × TILE_X activation rows at once: each step
 * converts 16 weights of every weight row to f32 once and loads 16 activations of every
 * activation row once, then feeds each loaded vector to several FMAs. Every (weight row,
 * activation row) pair has one 16-lane accumulator, updated over the row in the same order
 * whatever tile it sits in; then the same horizontal sum and the same scalar tail. So a result
 * never depends on the tile shape, and decode (one activation row: tiles of TILE_W × 1) gives
 * the very numbers prefill does. The block-quantized types use the quantized-activation
 * kernels (qrows_avx512.c, kquant_avx512.c), or dequantization and the F32 kernel here. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/variants.h"
#include "kernels/cpu/x86_common.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))

/* 4 × 6 accumulators + 4 weight vectors + 1 activation vector of the 32 zmm registers: each
 * activation vector feeds 4 FMAs and each converted weight vector 6 (llama.cpp's tinyBLAS uses
 * the same shape). */
#define TILE_W 4
#define TILE_X 6
_Static_assert(DS_GEMM_X_GROUP % TILE_X == 0, "activation chunks must hold whole tiles");

/* ---- 16 weights starting at element i, as f32 ---- */

AVX512_INLINE __m512 ld16_f32(const uint8_t *p, int i) { return _mm512_loadu_ps((const float *)p + i); }

AVX512_INLINE __m512 ld16_f16(const uint8_t *p, int i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
}

AVX512_INLINE __m512 ld16_bf16(const uint8_t *p, int i) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512_INLINE float ld1_f32(const uint8_t *w, int i) { return ((const float *)w)[i]; }
AVX512_INLINE float ld1_f16(const uint8_t *w, int i) { return _cvtsh_ss(((const uint16_t *)w)[i]); }
AVX512_INLINE float ld1_bf16(const uint8_t *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

/* One tile: nw ≤ TILE_W weight rows × nx ≤ TILE_X activation rows, both compile-time
 * constants at every call site. ELEM: bytes per weight. */
#define AVX512_TILE(NAME, LD16, LD1, ELEM)                                                       \
    AVX512_INLINE void NAME##_tile(const uint8_t *w, size_t ldw, const float *x, size_t ldx, int n, \
                                   float *y, size_t ldy, const int nw, const int nx) {            \
        __m512 acc[TILE_W][TILE_X];                                                               \
        _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++)                                      \
            _Pragma("GCC unroll 6") for (int b = 0; b < nx; b++) acc[a][b] = _mm512_setzero_ps(); \
        int i = 0;                                                                                \
        for (; i + 16 <= n; i += 16) {                                                            \
            __m512 wv[TILE_W];                                                                    \
            _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++) {                                \
                /* decode streams the weights from memory; prefill reuses them from cache */      \
                if (nx == 1 && (i * (ELEM)) % 64 == 0)                                            \
                    _mm_prefetch((const char *)w + a * ldw + (size_t)i * (ELEM) + DS_PREFETCH_AHEAD, _MM_HINT_T0); \
                wv[a] = LD16(w + a * ldw, i);                                                     \
            }                                                                                     \
            _Pragma("GCC unroll 6") for (int b = 0; b < nx; b++) {                                \
                const __m512 xv = _mm512_loadu_ps(x + b * ldx + i);                               \
                _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++)                              \
                    acc[a][b] = _mm512_fmadd_ps(wv[a], xv, acc[a][b]);                            \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int a = 0; a < nw; a++)                                      \
            _Pragma("GCC unroll 6") for (int b = 0; b < nx; b++) {                                \
                float s = _mm512_reduce_add_ps(acc[a][b]);                                        \
                for (int j = i; j < n; j++) s = __builtin_fmaf(LD1(w + a * ldw, j), x[b * ldx + j], s); \
                y[b * ldy + a] = s;                                                               \
            }                                                                                     \
    }

/* The tile shapes an edge can need: full, or fewer weight and/or activation rows. */
#define TILE_CASES_NX(NAME, NW)                                                                   \
    DS_GEMM_TILE_CASE(NAME, NW, 1) DS_GEMM_TILE_CASE(NAME, NW, 2) DS_GEMM_TILE_CASE(NAME, NW, 3)  \
    DS_GEMM_TILE_CASE(NAME, NW, 4) DS_GEMM_TILE_CASE(NAME, NW, 5) DS_GEMM_TILE_CASE(NAME, NW, 6)
#define TILE_CASES(NAME)                                                                          \
    TILE_CASES_NX(NAME, 1) TILE_CASES_NX(NAME, 2) TILE_CASES_NX(NAME, 3) TILE_CASES_NX(NAME, 4)
_Static_assert(TILE_W == 4 && TILE_X == 6, "TILE_CASES lists the shapes up to 4 x 6");

#define AVX512_GEMM(NAME, LD16, LD1, ELEM)                                                        \
    AVX512_TILE(NAME, LD16, LD1, ELEM)                                                            \
    DS_GEMM_TILES(NAME, AVX512, TILE_W, TILE_X, TILE_CASES)

AVX512_GEMM(gemm_f32, ld16_f32, ld1_f32, 4)
AVX512_GEMM(gemm_f16, ld16_f16, ld1_f16, 2)
AVX512_GEMM(gemm_bf16, ld16_bf16, ld1_bf16, 2)

ds_gemm_kernel ds_gemm_kernel_avx512(ds_dtype t) {
    switch (t) {
    case DS_F32: return gemm_f32;
    case DS_F16: return gemm_f16;
    case DS_BF16: return gemm_bf16;
    default: return NULL;
    }
}

/* Two accumulators of 16 lanes, then the same horizontal sum and a scalar tail: short dots
 * (attention's q·k over a head) are bound by the FMA latency, which two chains halve. */
AVX512 float ds_dot_f32_avx512(const float *a, const float *b, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), a1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s = __builtin_fmaf(a[i], b[i], s);
    return s;
}
