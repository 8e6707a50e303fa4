/* K-quant (Q4_K, Q5_K, Q6_K) row kernels against Q8_K activations, AVX2 variant. A block's
 * weights are unpacked once into 32-byte vectors of unsigned q (one 32-wide sub-block of
 * Q4_K/Q5_K, or two 16-wide ones of Q6_K: one per 128-bit lane) and met by every activation
 * row: vpmaddubsw multiplies u8 q by s8 qx and adds neighbouring pairs into int16, vpmaddwd
 * multiplies those by the sub-block scale and adds pairs into int32 lanes. A row's lanes stay
 * integer through the block (every lane sum is far below 2^31), are converted to float once per
 * block and scaled by d·dx, the block's offset term is taken off with the activations' dsums
 * (kquant.h), and the eight float lanes are summed at the end of the row in a fixed order. The
 * body is specialised per nx; every nx performs the same operations per row, so a row's result
 * does not depend on the rows grouped with it.
 *
 * vpmaddubsw saturates its int16 pair sums: with |qx| ≤ 127 (Q8_K never uses −128) a pair is at
 * most 2·15·127 = 3810 (Q4_K), 2·31·127 = 7874 (Q5_K) or 2·63·127 = 16002 (Q6_K), so it never
 * saturates; Q6_K's −32 offset is therefore applied afterwards through the dsums. */
#include "kernels/cpu/kquant_x86.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

/* int16 lanes all equal to element k of the eight int16 in each 128-bit lane of v. */
AVX2_INLINE __m256i bcast16(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(0x0202 * k + 0x0100)));
}

/* Row r's accumulator at the start of a part of the row: zero, or what the last part left. */
AVX2_INLINE __m256 carried(const float *carry, int first, int r) {
    return first ? _mm256_setzero_ps() : _mm256_loadu_ps(carry + DS_KQ_CARRY * r);
}

/* At the end of a part: the row's dot product into out[r], or the accumulator into carry. */
AVX2_INLINE void settle(__m256 acc, float *carry, int last, int r, float *out) {
    if (last) out[r] = ds_hsum8(acc);
    else _mm256_storeu_ps(carry + DS_KQ_CARRY * r, acc);
}

/* ---- Q4_K and Q5_K ---- */

/* Q5_K's fifth bits: bit 2j of qh[l] belongs to weight 64j + l, bit 2j+1 to weight 64j+32+l.
 * hb holds qh shifted right by 2j (16-bit shifts: the two low bits of each byte stay its own). */
AVX2_INLINE void add_fifth_bits(__m256i hb, __m256i *lo, __m256i *hi) {
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
}

AVX2_INLINE void q45_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                            int last, float *out, const int bytes, const int has_qh) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m256 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = carried(carry, first, r);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const uint8_t *b = w;
    for (int k = 0; k < n / KQ_BLOCK; k++, b += bytes) {
        kq_prefetch_block(b, bytes);
        __m256i sc, mins2, isum[DS_NX_MAX];
        kq_q45_scales(b, &sc, &mins2);
        __m256 g[2];
        kq_offsets(mins2, kq_ld_f16(b + 2), g);
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) isum[r] = _mm256_setzero_si256();
        const uint8_t *ql = b + (has_qh ? KQ_Q5_K_QS : KQ_Q4_K_QS);
        __m256i hb = has_qh ? kq_loadu(b + KQ_Q5_K_QH) : _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++, ql += 32) {
            const __m256i q = kq_loadu(ql);
            __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if (has_qh) {
                add_fifth_bits(hb, &lo, &hi);
                hb = _mm256_srli_epi16(hb, 2);
            }
            const __m256i slo = bcast16(sc, 2 * j), shi = bcast16(sc, 2 * j + 1);
#pragma GCC unroll 8
            for (int r = 0; r < nx; r++) {
                const int8_t *xs = x[r][k].qs + 64 * j;
                isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, kq_loadu(xs)), slo));
                isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, kq_loadu(xs + 32)), shi));
            }
        }
        const float d = kq_ld_f16(b);
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) acc[r] = kq_finish(acc[r], isum[r], &x[r][k], d, g);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) settle(acc[r], carry, last, r, out);
}

AVX2_INLINE void q4_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                           int last, float *out) {
    q45_k_body(w, xq, nx, n, carry, first, last, out, KQ_Q4_K_BYTES, 0);
}

AVX2_INLINE void q5_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                           int last, float *out) {
    q45_k_body(w, xq, nx, n, carry, first, last, out, KQ_Q5_K_BYTES, 1);
}

/* ---- Q6_K ---- */

/* 32 weights per vector: vector 4h+i of half h is ql[64h + 32(i&1) ..] (low nibbles for
 * i < 2, high for i ≥ 2) with the 2-bit field i of qh[32h ..] on top; its 128-bit lanes are
 * sub-blocks 8h+2i and 8h+2i+1. */
AVX2_INLINE void q6_unpack_half(const uint8_t *b, int h, __m256i q[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    const __m256i ql0 = kq_loadu(b + 64 * h), ql1 = kq_loadu(b + 64 * h + 32), qh = kq_loadu(b + KQ_Q6_K_QH + 32 * h);
    q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
    q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
}

AVX2_INLINE void q6_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                           int last, float *out) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m256 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = carried(carry, first, r);
    /* scales reordered even-then-odd so that a 32-weight vector's two sub-blocks are one
     * bcast16 away: lane 0 gets scale 2g, lane 1 scale 2g+1 */
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const uint8_t *b = w;
    for (int k = 0; k < n / KQ_BLOCK; k++, b += KQ_Q6_K_BYTES) {
        kq_prefetch_block(b, KQ_Q6_K_BYTES);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(b + KQ_Q6_K_SCALES));
        const __m256i sc_pairs = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, even_odd));
        const float d = kq_ld_f16(b + KQ_Q6_K_D);
        __m256 g[2];
        kq_offsets(_mm256_cvtepi8_epi16(sc8), 32.0f * d, g);
        __m256i isum[DS_NX_MAX];
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_unpack_half(b, h, q);
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++) {
                const __m256i s = bcast16(sc_pairs, 4 * h + i);
#pragma GCC unroll 8
                for (int r = 0; r < nx; r++) {
                    const __m256i p = _mm256_maddubs_epi16(q[i], kq_loadu(x[r][k].qs + 128 * h + 32 * i));
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, s));
                }
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) acc[r] = kq_finish(acc[r], isum[r], &x[r][k], d, g);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) settle(acc[r], carry, last, r, out);
}

KQ_DEFINE_VARIANT(avx2, AVX2)
