/* Internal to the x86 kernel variants (AVX2 and AVX-512): the pieces they all use alike. */
#ifndef DS_KERNELS_CPU_X86_COMMON_H
#define DS_KERNELS_CPU_X86_COMMON_H

#include <immintrin.h>

/* Weights stream from memory once per token in decode; prefetching this far ahead of the
 * hardware prefetcher (which stops at every 4 KiB page) keeps more reads in flight. */
#define DS_PREFETCH_AHEAD 4096

/* The eight lanes summed in a fixed order. Any AVX2 or AVX-512 caller can inline it. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) float ds_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
