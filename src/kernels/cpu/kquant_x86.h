/* Internal to kquant_avx2.c and kquant_avx512.c: the AVX2 pieces both x86 variants share. Both
 * unpack a block's scales the same way and, once a row's integer lanes for the block are folded
 * to eight int32, finish the block with the same float operations. */
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

/* Q4_K/Q5_K: acc + dx·(d·isum − dmin·Σ m·bsum), lane-wise. */
KQ_AVX2_INLINE __m256 kq_q45_finish(__m256 acc, __m256i isum, const ds_act_q8k *x, __m256i mins2, __m256 d,
                                    __m256 dmin) {
    const __m256i msum = _mm256_madd_epi16(kq_loadu(x->bsums), mins2);
    const __m256 blk = _mm256_fmsub_ps(_mm256_cvtepi32_ps(isum), d, _mm256_mul_ps(_mm256_cvtepi32_ps(msum), dmin));
    return _mm256_fmadd_ps(blk, _mm256_set1_ps(x->d), acc);
}

/* Q6_K: acc + dx·d·(isum − 32·Σ sc·bsum), lane-wise; sc the sixteen int8 scales as int16. */
KQ_AVX2_INLINE __m256 kq_q6_finish(__m256 acc, __m256i isum, const ds_act_q8k *x, __m256i sc, __m256 d) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(kq_loadu(x->bsums), sc), 5);
    const __m256 blk = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, offset));
    return _mm256_fmadd_ps(blk, _mm256_mul_ps(d, _mm256_set1_ps(x->d)), acc);
}

#endif
