/* K-quant (Q4_K, Q5_K, Q6_K) row kernels against Q8_K activations, AVX-512 + VNNI variant. As
 * the AVX2 variant (see kquant_avx2.c, which also explains why vpmaddubsw never saturates here),
 * but 64 weights per 512-bit vector, and the sub-block scales are applied by VNNI's vpdpwssd,
 * which multiplies the int16 pair sums of vpmaddubsw by the int16 scales and accumulates into
 * the row's int32 lanes in one instruction. (vpdpbusd would take the u8·s8 products straight to
 * int32, but then the per-sub-block scales need a 32-bit multiply per vector, which costs more
 * than the vpmaddubsw it saves.) Per block, a row's sixteen int32 lanes are folded to eight and
 * finish exactly like the AVX2 variant. The body is specialised per nx; every nx performs the
 * same operations per row. */
#include "kernels/cpu/kquant_x86.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))

AVX512_INLINE __m512i loadu512(const void *p) { return _mm512_loadu_si512(p); }
/* The same 32 bytes in both 256-bit halves. */
AVX512_INLINE __m512i load_twice(const void *p) { return _mm512_broadcast_i64x4(kq_loadu(p)); }

/* Word indices base + i / 2^shift for the 32 int16 lanes i (vpermw selectors that spread one
 * scale over the lanes of its sub-block). */
AVX512_INLINE __m512i spread_index(int base, int shift) {
    static const int16_t iota[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                     16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    return _mm512_add_epi16(_mm512_set1_epi16((short)base), _mm512_srli_epi16(loadu512(iota), (unsigned)shift));
}

/* Sixteen int32 lanes → eight: lane i + lane i+8. */
AVX512_INLINE __m256i fold16(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* ---- Q4_K and Q5_K ---- */

AVX512_INLINE void q45_k_body(const void *w, const void *const *xq, const int nx, int n, float *out, const int bytes,
                              const int has_qh) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m256 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = _mm256_setzero_ps();
    const __m512i low4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
    /* Q5_K: bit 2j of qh[l] tops weight 64j + l (low half of vector j), bit 2j+1 weight
     * 64j + 32 + l (high half); qh is shifted right by 2 per vector */
    const __m512i fifth = _mm512_mask_blend_epi8(0xffffffff00000000ull, _mm512_set1_epi8(1), _mm512_set1_epi8(2));
    __m512i spread[4]; /* vector j's 64 weights are sub-blocks 2j (low half) and 2j+1 */
#pragma GCC unroll 8
    for (int j = 0; j < 4; j++) spread[j] = spread_index(2 * j, 4);
    const uint8_t *b = w;
    for (int k = 0; k < n / KQ_BLOCK; k++, b += bytes) {
        kq_prefetch_block(b, bytes);
        __m256i sc, mins2;
        kq_q45_scales(b, &sc, &mins2);
        __m512i isum[DS_NX_MAX];
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) isum[r] = _mm512_setzero_si512();
        const uint8_t *ql = b + (has_qh ? KQ_Q5_K_QS : KQ_Q4_K_QS);
        __m512i hb = has_qh ? load_twice(b + KQ_Q5_K_QH) : _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++, ql += 32) {
            __m512i q = load_twice(ql);
            q = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 4), low4);
            if (has_qh) {
                q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(hb, fifth), q, bit4);
                hb = _mm512_srli_epi16(hb, 2);
            }
            const __m512i s = _mm512_permutexvar_epi16(spread[j], _mm512_castsi256_si512(sc));
#pragma GCC unroll 8
            for (int r = 0; r < nx; r++) {
                const __m512i p = _mm512_maddubs_epi16(q, loadu512(x[r][k].qs + 64 * j));
                isum[r] = _mm512_dpwssd_epi32(isum[r], p, s);
            }
        }
        const __m256 d = _mm256_set1_ps(kq_ld_f16(b)), dmin = _mm256_set1_ps(kq_ld_f16(b + 2));
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) acc[r] = kq_q45_finish(acc[r], fold16(isum[r]), &x[r][k], mins2, d, dmin);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) out[r] = ds_hsum8(acc[r]);
}

AVX512_INLINE void q4_k_body(const void *w, const void *const *xq, const int nx, int n, float *out) {
    q45_k_body(w, xq, nx, n, out, KQ_Q4_K_BYTES, 0);
}

AVX512_INLINE void q5_k_body(const void *w, const void *const *xq, const int nx, int n, float *out) {
    q45_k_body(w, xq, nx, n, out, KQ_Q5_K_BYTES, 1);
}

/* ---- Q6_K ---- */

/* Half h of a block (128 weights) as two vectors: q[0] weights 0..63 (low nibbles of
 * ql[64h ..+64] under qh's 2-bit fields 0 and 1), q[1] weights 64..127 (high nibbles, fields 2
 * and 3). Each vector spans four 16-wide sub-blocks. */
AVX512_INLINE void q6_unpack_half(const uint8_t *b, int h, __m512i q[2]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
    /* 16-bit shift counts per 256-bit half that bring each field to bits 4..5 */
    const __m512i up = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
    const __m512i down = _mm512_mask_blend_epi16(0xffff0000u, _mm512_setzero_si512(), _mm512_set1_epi16(2));
    const __m512i ql = loadu512(b + 64 * h), qh = load_twice(b + KQ_Q6_K_QH + 32 * h);
    const __m512i hi01 = _mm512_and_si512(_mm512_sllv_epi16(qh, up), bits45);
    const __m512i hi23 = _mm512_and_si512(_mm512_srlv_epi16(qh, down), bits45);
    /* ternary-logic 0xea: (a & b) | c */
    q[0] = _mm512_ternarylogic_epi32(ql, low4, hi01, 0xea);
    q[1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), low4, hi23, 0xea);
}

AVX512_INLINE void q6_k_body(const void *w, const void *const *xq, const int nx, int n, float *out) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m256 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = _mm256_setzero_ps();
    __m512i spread[4]; /* vector m of the block holds sub-blocks 4m .. 4m+3 */
#pragma GCC unroll 8
    for (int m = 0; m < 4; m++) spread[m] = spread_index(4 * m, 3);
    const uint8_t *b = w;
    for (int k = 0; k < n / KQ_BLOCK; k++, b += KQ_Q6_K_BYTES) {
        kq_prefetch_block(b, KQ_Q6_K_BYTES);
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + KQ_Q6_K_SCALES)));
        __m512i isum[DS_NX_MAX];
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m512i q[2];
            q6_unpack_half(b, h, q);
#pragma GCC unroll 8
            for (int i = 0; i < 2; i++) {
                const __m512i s = _mm512_permutexvar_epi16(spread[2 * h + i], _mm512_castsi256_si512(sc));
#pragma GCC unroll 8
                for (int r = 0; r < nx; r++) {
                    const __m512i p = _mm512_maddubs_epi16(q[i], loadu512(x[r][k].qs + 128 * h + 64 * i));
                    isum[r] = _mm512_dpwssd_epi32(isum[r], p, s);
                }
            }
        }
        const __m256 d = _mm256_set1_ps(kq_ld_f16(b + KQ_Q6_K_D));
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) acc[r] = kq_q6_finish(acc[r], fold16(isum[r]), &x[r][k], sc, d);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) out[r] = ds_hsum8(acc[r]);
}

KQ_DEFINE_VARIANT(avx512, AVX512)
