/* Internal to kquant_avx2.c and kquant_avx512.c: the AVX2 pieces both x86 variants share. Both
 * unpack a block's scales the same way; the AVX2 one also finishes each block here. */
#ifndef DS_KERNELS_CPU_KQUANT_X86_H
#define DS_KERNELS_CPU_KQUANT_X86_H

#include <immintrin.h>

#include "kernels/cpu/kquant.h"
#include "kernels/cpu/x86_common.h"

#define KQ_AVX2_INLINE __attribute__((target("avx2,fma,f16c"))) static inline __attribute__((always_inline))

KQ_AVX2_INLINE float kq_ld_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

KQ_AVX2_INLINE __m256i kq_loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Prefetch DS_PREFETCH_AHEAD past the block in use, one hint per cache line of the block. */
KQ_AVX2_INLINE void kq_prefetch_block(const uint8_t *b, int bytes) {
    for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)b + DS_PREFETCH_AHEAD + o, _MM_HINT_T0);
}

/* A Q4_K/Q5_K block's scales and mins: *sc the eight scales as int16 in both 128-bit lanes,
 * *mins2 the eight mins each repeated twice (one per 16-wide bsum). The 12 packed bytes are
 * unpacked as kq_unpack_scales_mins does, one 32-bit lane per four of the 16 results. */
KQ_AVX2_INLINE void kq_q45_scales(const uint8_t *b, __m256i *sc, __m256i *mins2) {
    const __m128i u = _mm_loadu_si128((const __m128i *)(b + KQ_SCALES)); /* u0 u1 u2 (+ 4 bytes of qs) */
    const __m128i low = _mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
    const __m128i top = _mm_srli_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0)), 2);
    const __m128i v = _mm_or_si128(_mm_and_si128(low, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
                                   _mm_and_si128(top, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
    *sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
    *mins2 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
}

/* A block's offsets per 16-wide run as floats, g[0] runs 0..7 and g[1] runs 8..15: scale·v for
 * v the sixteen int16 of v16 (Q4_K/Q5_K: dmin and the mins, each twice; Q6_K: 32·d and the
 * scales). */
KQ_AVX2_INLINE void kq_offsets(__m256i v16, float scale, __m256 g[2]) {
    const __m256 s = _mm256_set1_ps(scale);
    g[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(v16))), s);
    g[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(v16, 1))), s);
}

/* acc + d·dx·isum − g·dsums, lane-wise (kquant.h's formulas, spread over eight lanes). */
KQ_AVX2_INLINE __m256 kq_finish(__m256 acc, __m256i isum, const ds_act_q8k *x, float d, const __m256 g[2]) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * x->d), acc);
    acc = _mm256_fnmadd_ps(g[0], _mm256_loadu_ps(x->dsums), acc);
    return _mm256_fnmadd_ps(g[1], _mm256_loadu_ps(x->dsums + 8), acc);
}

#endif
