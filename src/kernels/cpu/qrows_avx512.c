/* AVX-512 VNNI row kernels for the 32-element weight formats against ds_act_q8 activations.
 *
 * A group of four weight blocks is decoded once into two registers of signed bytes, block p in
 * 128-bit lane p (lo: elements 0..15, hi: 16..31, the order ds_act_q8 uses), plus its scales
 * spread to match (d_w, and m_w for the formats with a minimum). Then, per activation row,
 *   acc = corr + vpdpbusd(u_lo, w_lo) + vpdpbusd(u_hi, w_hi)
 * where u = q + 128 is the unsigned operand and corr = -128 * (sum of the lane's weights)
 * removes the offset, so every 32-bit lane holds an exact integer partial dot of one block.
 * The lanes are scaled by d_w * d_x in f32 and accumulated lane-wise; the per-block minimum adds
 * m_w * s_x, s_x sitting in the block's first lane only. Lanes are summed once at the end.
 * The products cannot overflow: 4 * 255 * 128 per instruction, and a lane sums 8 of them.
 *
 * A partial last group (rows whose length is not a multiple of 128) is read with masked loads
 * that stop at the row's end; the missing blocks decode to zero weights and zero scales. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/cpu/variants.h"
#include "kernels/cpu/x86_common.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))

typedef struct wgroup {
    __m512i lo, hi; /* signed weights, block p in 128-bit lane p */
    __m512 d, m;    /* scale and minimum of block p in lanes 4p..4p+3 (m unused without a minimum) */
} wgroup;

/* ---- where the f16 fields of a group are ----
 * A group's scale words are gathered with one two-source word permute from the 64 bytes at the
 * group's start and the 64 bytes at byte S of the group (S + 64 <= the group's size, so the
 * loads stay inside the row). WORD gives a field's index in that pair of registers from its
 * byte offset in the group; every field lies wholly in one of the two windows. */
#define WORD(S, off) ((off) + 2 <= 64 ? (off) / 2 : 32 + ((off) - (S)) / 2)
/* Block p's field at byte f of blocks of B bytes, repeated for its four lanes. */
#define SPREAD(S, B, f)                                                                        \
    WORD(S, (f)), WORD(S, (f)), WORD(S, (f)), WORD(S, (f)), WORD(S, (f) + (B)), WORD(S, (f) + (B)), \
        WORD(S, (f) + (B)), WORD(S, (f) + (B)), WORD(S, (f) + 2 * (B)), WORD(S, (f) + 2 * (B)),   \
        WORD(S, (f) + 2 * (B)), WORD(S, (f) + 2 * (B)), WORD(S, (f) + 3 * (B)),                 \
        WORD(S, (f) + 3 * (B)), WORD(S, (f) + 3 * (B)), WORD(S, (f) + 3 * (B))
/* The 16-bit halves of the Q5 high-bit fields (32 bits at byte f): low halves of blocks 0..3,
 * then high halves, eight words that become two 64-bit masks. */
#define QH_HALVES(S, B, f)                                                                     \
    WORD(S, (f)), WORD(S, (f) + (B)), WORD(S, (f) + 2 * (B)), WORD(S, (f) + 3 * (B)),          \
        WORD(S, (f) + 2), WORD(S, (f) + (B) + 2), WORD(S, (f) + 2 * (B) + 2), WORD(S, (f) + 3 * (B) + 2)

/* Second windows: the group size minus 64, except Q8_0, whose third scale (byte 68) would fall
 * between the first window and a second one at byte 72. */
enum { S_Q8_0 = 64, S_Q4_0 = 8, S_Q4_1 = 16, S_Q5_0 = 24, S_Q5_1 = 32 };
static const uint16_t k_idx_q8_0[32] = {SPREAD(S_Q8_0, 34, 0)};
static const uint16_t k_idx_q4_0[32] = {SPREAD(S_Q4_0, 18, 0)};
static const uint16_t k_idx_q4_1[32] = {SPREAD(S_Q4_1, 20, 0), SPREAD(S_Q4_1, 20, 2)};
static const uint16_t k_idx_q5_0[32] = {SPREAD(S_Q5_0, 22, 0), QH_HALVES(S_Q5_0, 22, 2)};
static const uint16_t k_idx_q5_1[32] = {SPREAD(S_Q5_1, 24, 0), SPREAD(S_Q5_1, 24, 2)};
static const uint16_t k_idx_q5_1_qh[32] = {QH_HALVES(S_Q5_1, 24, 4)};

/* The n bytes at p, zeros after them (n <= 0: none); bytes past p + n are not touched. */
AVX512_INLINE __m512i load_upto(const uint8_t *p, int n) {
    if (n >= 64) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi8(n > 0 ? _cvtu64_mask64((1ull << n) - 1) : 0, p);
}

/* `size`: the group's bytes that belong to the row. */
AVX512_INLINE __m512i gather_words(const uint8_t *g, int size, int S, const uint16_t *idx) {
    return _mm512_permutex2var_epi16(load_upto(g, size), _mm512_loadu_si512(idx), load_upto(g + S, size - S));
}

AVX512_INLINE __m512 f16_lo(__m512i words) { return _mm512_cvtph_ps(_mm512_castsi512_si256(words)); }
AVX512_INLINE __m512 f16_hi(__m512i words) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(words, 1)); }

/* Q5's fifth bits as byte masks for lo and hi, from the eight words QH_HALVES put at word 16
 * (or at word 0: `at` is the 128-bit lane that holds them). */
AVX512_INLINE void qh_masks(__m512i words, int at, __mmask64 *klo, __mmask64 *khi) {
    __m128i h = at == 2 ? _mm512_extracti32x4_epi32(words, 2) : _mm512_castsi512_si128(words);
    *klo = _cvtu64_mask64((uint64_t)_mm_cvtsi128_si64(h));
    *khi = _cvtu64_mask64((uint64_t)_mm_extract_epi64(h, 1));
}

/* The 16-byte field at byte f of block p (blocks of B bytes), zero for a block past the row. */
AVX512_INLINE __m128i field16(const uint8_t *g, int B, int f, int p, int nblk) {
    return p < nblk ? _mm_loadu_si128((const __m128i *)(g + f + p * B)) : _mm_setzero_si128();
}

/* The nblk (<= 4) blocks' 16-byte fields at byte f, block p in 128-bit lane p. */
AVX512_INLINE __m512i lanes16(const uint8_t *g, int B, int f, int nblk) {
    __m512i v = _mm512_castsi128_si512(field16(g, B, f, 0, nblk));
    v = _mm512_inserti32x4(v, field16(g, B, f, 1, nblk), 1);
    v = _mm512_inserti32x4(v, field16(g, B, f, 2, nblk), 2);
    return _mm512_inserti32x4(v, field16(g, B, f, 3, nblk), 3);
}

/* Elements j and j + 16 of a 4-bit block are the low and high nibble of byte j. */
AVX512_INLINE void split_nibbles(__m512i q, __m512i *lo, __m512i *hi) {
    const __m512i m = _mm512_set1_epi8(0x0f);
    *lo = _mm512_and_si512(q, m);
    *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
}

/* ---- decoders: the nblk (4, or fewer at the row's end) blocks starting at g ---- */

AVX512_INLINE __m256i q8_0_qs(const uint8_t *g, int p, int nblk) {
    return p < nblk ? _mm256_loadu_si256((const __m256i *)(g + 2 + 34 * p)) : _mm256_setzero_si256();
}

AVX512_INLINE wgroup dec_q8_0(const uint8_t *g, int nblk) {
    wgroup o;
    const __m512i b01 = _mm512_inserti64x4(_mm512_castsi256_si512(q8_0_qs(g, 0, nblk)), q8_0_qs(g, 1, nblk), 1);
    const __m512i b23 = _mm512_inserti64x4(_mm512_castsi256_si512(q8_0_qs(g, 2, nblk)), q8_0_qs(g, 3, nblk), 1);
    o.lo = _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(2, 0, 2, 0));
    o.hi = _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(3, 1, 3, 1));
    o.d = f16_lo(gather_words(g, 34 * nblk, S_Q8_0, k_idx_q8_0));
    o.m = _mm512_setzero_ps();
    return o;
}

AVX512_INLINE wgroup dec_q4_0(const uint8_t *g, int nblk) {
    wgroup o;
    split_nibbles(lanes16(g, 18, 2, nblk), &o.lo, &o.hi);
    const __m512i eight = _mm512_set1_epi8(8);
    o.lo = _mm512_sub_epi8(o.lo, eight);
    o.hi = _mm512_sub_epi8(o.hi, eight);
    o.d = f16_lo(gather_words(g, 18 * nblk, S_Q4_0, k_idx_q4_0));
    o.m = _mm512_setzero_ps();
    return o;
}

AVX512_INLINE wgroup dec_q4_1(const uint8_t *g, int nblk) {
    wgroup o;
    split_nibbles(lanes16(g, 20, 4, nblk), &o.lo, &o.hi);
    const __m512i dm = gather_words(g, 20 * nblk, S_Q4_1, k_idx_q4_1);
    o.d = f16_lo(dm), o.m = f16_hi(dm);
    return o;
}

/* Q5_0: w = (nibble | fifth bit << 4) - 16, i.e. nibble - 16 where the fifth bit is clear. */
AVX512_INLINE wgroup dec_q5_0(const uint8_t *g, int nblk) {
    wgroup o;
    split_nibbles(lanes16(g, 22, 6, nblk), &o.lo, &o.hi);
    const __m512i words = gather_words(g, 22 * nblk, S_Q5_0, k_idx_q5_0), sixteen = _mm512_set1_epi8(16);
    __mmask64 klo, khi;
    qh_masks(words, 2, &klo, &khi);
    o.lo = _mm512_mask_sub_epi8(o.lo, _knot_mask64(klo), o.lo, sixteen);
    o.hi = _mm512_mask_sub_epi8(o.hi, _knot_mask64(khi), o.hi, sixteen);
    o.d = f16_lo(words);
    o.m = _mm512_setzero_ps();
    return o;
}

AVX512_INLINE wgroup dec_q5_1(const uint8_t *g, int nblk) {
    wgroup o;
    split_nibbles(lanes16(g, 24, 8, nblk), &o.lo, &o.hi);
    const __m512i sixteen = _mm512_set1_epi8(16);
    __mmask64 klo, khi;
    qh_masks(gather_words(g, 24 * nblk, S_Q5_1, k_idx_q5_1_qh), 0, &klo, &khi);
    o.lo = _mm512_mask_add_epi8(o.lo, klo, o.lo, sixteen);
    o.hi = _mm512_mask_add_epi8(o.hi, khi, o.hi, sixteen);
    const __m512i dm = gather_words(g, 24 * nblk, S_Q5_1, k_idx_q5_1);
    o.d = f16_lo(dm), o.m = f16_hi(dm);
    return o;
}

/* -128 * (sum of each lane's eight weights): what the +128 offset of the activations adds. */
AVX512_INLINE __m512i offset_correction(const wgroup *w) {
    const __m512i c128 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, c128, w->lo), c128, w->hi);
    return _mm512_sub_epi32(zero, s);
}

/* One group against nx activation rows (unrolled, so the accumulators stay in registers). */
AVX512_INLINE void group_dot(const wgroup *w, int has_min, const void *const *xq, int gi, int nx, __m512 *acc) {
    const __m512i corr = offset_correction(w);
#pragma GCC unroll 16
    for (int r = 0; r < nx; r++) {
        const ds_act_q8 *a = (const ds_act_q8 *)xq[r] + gi;
        __m512i dot = _mm512_dpbusd_epi32(corr, _mm512_loadu_si512(a->u), w->lo);
        dot = _mm512_dpbusd_epi32(dot, _mm512_loadu_si512(a->u + 64), w->hi);
        const __m512 scale = _mm512_mul_ps(w->d, _mm512_loadu_ps(a->d));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r]);
        if (has_min) acc[r] = _mm512_fmadd_ps(w->m, _mm512_loadu_ps(a->s), acc[r]);
    }
}

#define AVX512_QROW_KERNEL(NAME, DECODE, B, HAS_MIN)                                             \
    AVX512_INLINE void NAME##_body(const void *w, const void *const *xq, const int nx, int n, float *out) { \
        const uint8_t *row = w;                                                                  \
        const int nb = n / 32, full = nb / 4;                                                    \
        __m512 acc[DS_QNX_MAX];                                                                   \
        for (int r = 0; r < nx; r++) acc[r] = _mm512_setzero_ps();                               \
        for (int gi = 0; gi < full; gi++) {                                                      \
            const uint8_t *g = row + (size_t)gi * 4 * (B);                                       \
            for (int o = 0; o < 4 * (B); o += 64) _mm_prefetch((const char *)g + DS_PREFETCH_AHEAD + o, _MM_HINT_T0); \
            const wgroup wg = DECODE(g, 4);                                                      \
            group_dot(&wg, HAS_MIN, xq, gi, nx, acc);                                            \
        }                                                                                        \
        if (nb % 4) {                                                                            \
            const wgroup wg = DECODE(row + (size_t)full * 4 * (B), nb % 4);                      \
            group_dot(&wg, HAS_MIN, xq, full, nx, acc);                                          \
        }                                                                                        \
        for (int r = 0; r < nx; r++) out[r] = _mm512_reduce_add_ps(acc[r]);                      \
    }                                                                                            \
    AVX512 static void NAME(const void *w, const void *const *xq, int nx, int n, float *out) {  \
        switch (nx) {                                                                            \
        case 1: NAME##_body(w, xq, 1, n, out); break;                                           \
        case 2: NAME##_body(w, xq, 2, n, out); break;                                           \
        case 3: NAME##_body(w, xq, 3, n, out); break;                                           \
        case 4: NAME##_body(w, xq, 4, n, out); break;                                           \
        case 5: NAME##_body(w, xq, 5, n, out); break;                                           \
        case 6: NAME##_body(w, xq, 6, n, out); break;                                           \
        case 7: NAME##_body(w, xq, 7, n, out); break;                                           \
        case 8: NAME##_body(w, xq, 8, n, out); break;                                           \
        case 9: NAME##_body(w, xq, 9, n, out); break;                                           \
        case 10: NAME##_body(w, xq, 10, n, out); break;                                         \
        case 11: NAME##_body(w, xq, 11, n, out); break;                                         \
        case 12: NAME##_body(w, xq, 12, n, out); break;                                         \
        case 13: NAME##_body(w, xq, 13, n, out); break;                                         \
        case 14: NAME##_body(w, xq, 14, n, out); break;                                         \
        case 15: NAME##_body(w, xq, 15, n, out); break;                                         \
        default: NAME##_body(w, xq, 16, n, out); break;                                         \
        }                                                                                        \
    }

AVX512_QROW_KERNEL(qrow_q8_0, dec_q8_0, 34, 0)
AVX512_QROW_KERNEL(qrow_q4_0, dec_q4_0, 18, 0)
AVX512_QROW_KERNEL(qrow_q4_1, dec_q4_1, 20, 1)
AVX512_QROW_KERNEL(qrow_q5_0, dec_q5_0, 22, 0)
AVX512_QROW_KERNEL(qrow_q5_1, dec_q5_1, 24, 1)

_Static_assert(DS_QNX_MAX == 16, "the kernels' nx switch lists 1..16");

ds_qrow_kernel ds_qrow_kernel_avx512(ds_dtype t) {
    switch (t) {
    case DS_Q8_0: return qrow_q8_0;
    case DS_Q4_0: return qrow_q4_0;
    case DS_Q4_1: return qrow_q4_1;
    case DS_Q5_0: return qrow_q5_0;
    case DS_Q5_1: return qrow_q5_1;
    default: return NULL;
    }
}
