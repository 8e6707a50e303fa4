/* K-quant (Q4_K, Q5_K, Q6_K) row kernels against Q8_K activations, AVX-512 + VNNI variant.
 *
 * Q4_K/Q5_K: a block's 256 weights are unpacked once into four vectors of unsigned q (vector j:
 * sub-block 2j in the low half, 2j+1 in the high half) and met by every activation row. Per row,
 * vpdpbusd takes each vector's u8·s8 products straight to int32 lanes of four products
 * (|lane| ≤ 4·31·127 = 15748, so they fit int16), vpackssdw packs two vectors' lanes into
 * int16 words without saturating, and vpdpwssd multiplies the words by their sub-block scales
 * and sums them into the row's int32 lanes: 6 multiplies per block and row where vpmaddubsw +
 * vpdpwssd per vector take 8 (integer multiplies issue on one port here; measured 8 % faster).
 * Q6_K: vpmaddubsw + vpdpwssd per vector (its 16-wide sub-blocks do not pair as neatly).
 *
 * Per block, a row's sixteen int32 lanes are converted and scaled by d·dx into sixteen float
 * lanes, and the offset term (kquant.h) is one FMA with the activations' dsums; the lanes are
 * summed at the end of the row. The body is specialised per nx; every nx performs the same
 * operations per row. */
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

/* scale·v for the sixteen int16 of v: a block's offsets per 16-wide run (kquant.h). */
AVX512_INLINE __m512 offsets(__m256i v, float scale) {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(v)), _mm512_set1_ps(scale));
}

/* acc + d·dx·isum − g·dsums over sixteen lanes, dv = d in every lane. */
AVX512_INLINE __m512 finish(__m512 acc, __m512i isum, const ds_act_q8k *x, __m512 dv, __m512 g) {
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dv, _mm512_set1_ps(x->d)), acc);
    return _mm512_fnmadd_ps(g, _mm512_loadu_ps(x->dsums), acc);
}

/* Row r's accumulator at the start of a part of the row: zero, or what the last part left. */
AVX512_INLINE __m512 carried(const float *carry, int first, int r) {
    return first ? _mm512_setzero_ps() : _mm512_loadu_ps(carry + DS_KQ_CARRY * r);
}

/* At the end of a part: the row's dot product into out[r], or the accumulator into carry. */
AVX512_INLINE void settle(__m512 acc, float *carry, int last, int r, float *out) {
    if (last) out[r] = _mm512_reduce_add_ps(acc);
    else _mm512_storeu_ps(carry + DS_KQ_CARRY * r, acc);
}

/* ---- Q4_K and Q5_K ---- */

/* vpermw selectors for the words of packs(t_j, t_j+1), j = 2p: in 128-bit lane m, words 0..3
 * come from t_j and 4..7 from t_j+1; lanes 0, 1 hold low halves (sub-blocks 2j, 2j+2), lanes
 * 2, 3 high halves (2j+1, 2j+3). */
#define PAIR_LANE(a, b) a, a, a, a, b, b, b, b
#define PAIR_IDX(p)                                                                            \
    {PAIR_LANE(4 * p, 4 * p + 2), PAIR_LANE(4 * p, 4 * p + 2), PAIR_LANE(4 * p + 1, 4 * p + 3),  \
     PAIR_LANE(4 * p + 1, 4 * p + 3)}
static const int16_t k_pair_idx[2][32] = {PAIR_IDX(0), PAIR_IDX(1)};

AVX512_INLINE void q45_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                              int last, float *out, const int bytes, const int has_qh) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m512 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = carried(carry, first, r);
    const __m512i low4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
    /* Q5_K: bit 2j of qh[l] tops weight 64j + l (low half of vector j), bit 2j+1 weight
     * 64j + 32 + l (high half); qh is shifted right by 2 per vector */
    const __m512i fifth = _mm512_mask_blend_epi8(0xffffffff00000000ull, _mm512_set1_epi8(1), _mm512_set1_epi8(2));
    const __m512i pair_idx[2] = {loadu512(k_pair_idx[0]), loadu512(k_pair_idx[1])};
    const uint8_t *b = w;
    for (int k = 0; k < n / KQ_BLOCK; k++, b += bytes) {
        kq_prefetch_block(b, bytes);
        __m256i sc, mins2;
        kq_q45_scales(b, &sc, &mins2);
        const uint8_t *ql = b + (has_qh ? KQ_Q5_K_QS : KQ_Q4_K_QS);
        __m512i hb = has_qh ? load_twice(b + KQ_Q5_K_QH) : _mm512_setzero_si512();
        __m512i q[4]; /* the block's weights, 64 a vector */
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++, ql += 32) {
            q[j] = load_twice(ql);
            q[j] = _mm512_and_si512(_mm512_mask_srli_epi16(q[j], 0xffff0000u, q[j], 4), low4);
            if (has_qh) {
                q[j] = _mm512_mask_add_epi8(q[j], _mm512_test_epi8_mask(hb, fifth), q[j], bit4);
                hb = _mm512_srli_epi16(hb, 2);
            }
        }
        const __m512i s01 = _mm512_permutexvar_epi16(pair_idx[0], _mm512_castsi256_si512(sc));
        const __m512i s23 = _mm512_permutexvar_epi16(pair_idx[1], _mm512_castsi256_si512(sc));
        const __m512 dv = _mm512_set1_ps(kq_ld_f16(b)), g = offsets(mins2, kq_ld_f16(b + 2));
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) {
            const int8_t *xs = x[r][k].qs;
            const __m512i z = _mm512_setzero_si512();
            const __m512i t0 = _mm512_dpbusd_epi32(z, q[0], loadu512(xs));
            const __m512i t1 = _mm512_dpbusd_epi32(z, q[1], loadu512(xs + 64));
            const __m512i t2 = _mm512_dpbusd_epi32(z, q[2], loadu512(xs + 128));
            const __m512i t3 = _mm512_dpbusd_epi32(z, q[3], loadu512(xs + 192));
            __m512i isum = _mm512_dpwssd_epi32(z, _mm512_packs_epi32(t0, t1), s01);
            isum = _mm512_dpwssd_epi32(isum, _mm512_packs_epi32(t2, t3), s23);
            acc[r] = finish(acc[r], isum, &x[r][k], dv, g);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) settle(acc[r], carry, last, r, out);
}

AVX512_INLINE void q4_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                             int last, float *out) {
    q45_k_body(w, xq, nx, n, carry, first, last, out, KQ_Q4_K_BYTES, 0);
}

AVX512_INLINE void q5_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                             int last, float *out) {
    q45_k_body(w, xq, nx, n, carry, first, last, out, KQ_Q5_K_BYTES, 1);
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

AVX512_INLINE void q6_k_body(const void *w, const void *const *xq, const int nx, int n, float *carry, int first,
                             int last, float *out) {
    const ds_act_q8k *x[DS_NX_MAX];
    __m512 acc[DS_NX_MAX];
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) x[r] = xq[r], acc[r] = carried(carry, first, r);
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
        const float d = kq_ld_f16(b + KQ_Q6_K_D);
        const __m512 dv = _mm512_set1_ps(d), g = offsets(sc, 32.0f * d);
#pragma GCC unroll 8
        for (int r = 0; r < nx; r++) acc[r] = finish(acc[r], isum[r], &x[r][k], dv, g);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nx; r++) settle(acc[r], carry, last, r, out);
}

KQ_DEFINE_VARIANT(avx512, AVX512)
