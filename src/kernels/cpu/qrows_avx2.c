/* AVX2 row kernels for the 32-element weight formats against ds_act_q8 activations: the
 * scheme of qrows_avx512.c on 256-bit halves of a group (blocks 2h and 2h+1, one per 128-bit
 * lane), with pmaddubsw + pmaddwd for the integer dot.
 *
 * pmaddubsw saturates its 16-bit pair sums, so the operands must stay small enough:
 *  - 4- and 5-bit formats: weights in [-16, 31], activations u = q + 128 in [1, 255]; a pair
 *    sum is at most 2 * 255 * 31 and the lo and hi sums add up in 16 bits without overflow.
 *    The +128 offset is removed by corr = -128 * (sum of the lane's weights), per group.
 *  - Q8_0: weights in [-128, 127] would saturate against u, so the activations go back to
 *    signed (u ^ 0x80 = q) and the product is |w| * (q * sign(w)): at most 2 * 128 * 127 per
 *    pair; lo and hi are widened to 32 bits before they are added.
 * In a partial last group a missing block reads as an all-zero block (zero scales); a half
 * with no block of the row is skipped. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/variants.h"
#include "kernels/cpu/x86_common.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))

static const uint8_t k_zero_block[34];

/* Activation rows per pass over the weight row: their accumulators and the decoded weights
 * must fit the 16 registers; more rows take more passes (each row's operations unchanged). */
#define PASS_ROWS 8

typedef struct whalf {
    __m256i lo, hi;  /* signed weights, block 2h + k in 128-bit lane k */
    __m256 d, m;     /* scale, minimum of block 2h + k in lanes 4k..4k+3 (m: formats with one) */
    __m256i corr;    /* -128 * sum of each lane's weights (4- and 5-bit formats) */
} whalf;

AVX2_INLINE float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2_INLINE uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The f16 field at byte f of blocks a and b, spread over their lanes. */
AVX2_INLINE __m256 spread2(const uint8_t *a, const uint8_t *b, int f) {
    return _mm256_set_m128(_mm_set1_ps(f16_at(b + f)), _mm_set1_ps(f16_at(a + f)));
}

AVX2_INLINE void split_nibbles(const uint8_t *a, const uint8_t *b, int f, whalf *o) {
    const __m256i q = _mm256_loadu2_m128i((const __m128i *)(b + f), (const __m128i *)(a + f));
    const __m256i m = _mm256_set1_epi8(0x0f);
    o->lo = _mm256_and_si256(q, m);
    o->hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
}

/* 16 where bit j of v is set, 0 elsewhere, for bytes j = 0..31. */
AVX2_INLINE __m256i bits_to_16s(uint32_t v) {
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)v), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                    2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(16));
}

/* Q5 fifth bits of blocks a and b (32-bit fields at byte f) added to the nibbles. */
AVX2_INLINE void add_fifth_bits(const uint8_t *a, const uint8_t *b, int f, whalf *o) {
    const uint32_t qa = u32_at(a + f), qb = u32_at(b + f);
    o->lo = _mm256_add_epi8(o->lo, bits_to_16s((qa & 0xffff) | (qb << 16)));
    o->hi = _mm256_add_epi8(o->hi, bits_to_16s((qa >> 16) | (qb & 0xffff0000u)));
}

AVX2_INLINE __m256i correction(const whalf *o) {
    const __m256i c128 = _mm256_set1_epi8((char)0x80);
    const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(c128, o->lo), _mm256_maddubs_epi16(c128, o->hi));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(-1));
}

/* ---- decoders: blocks a and b (consecutive) ---- */

AVX2_INLINE whalf dec_q8_0(const uint8_t *a, const uint8_t *b) {
    whalf o;
    const __m256i qa = _mm256_loadu_si256((const __m256i *)(a + 2)), qb = _mm256_loadu_si256((const __m256i *)(b + 2));
    o.lo = _mm256_permute2x128_si256(qa, qb, 0x20);
    o.hi = _mm256_permute2x128_si256(qa, qb, 0x31);
    o.d = spread2(a, b, 0);
    o.m = _mm256_setzero_ps();
    o.corr = _mm256_setzero_si256();
    return o;
}

AVX2_INLINE whalf dec_q4_0(const uint8_t *a, const uint8_t *b) {
    whalf o;
    split_nibbles(a, b, 2, &o);
    const __m256i eight = _mm256_set1_epi8(8);
    o.lo = _mm256_sub_epi8(o.lo, eight);
    o.hi = _mm256_sub_epi8(o.hi, eight);
    o.d = spread2(a, b, 0);
    o.m = _mm256_setzero_ps();
    o.corr = correction(&o);
    return o;
}

AVX2_INLINE whalf dec_q4_1(const uint8_t *a, const uint8_t *b) {
    whalf o;
    split_nibbles(a, b, 4, &o);
    o.d = spread2(a, b, 0), o.m = spread2(a, b, 2);
    o.corr = correction(&o);
    return o;
}

AVX2_INLINE whalf dec_q5_0(const uint8_t *a, const uint8_t *b) {
    whalf o;
    split_nibbles(a, b, 6, &o);
    add_fifth_bits(a, b, 2, &o);
    const __m256i sixteen = _mm256_set1_epi8(16);
    o.lo = _mm256_sub_epi8(o.lo, sixteen);
    o.hi = _mm256_sub_epi8(o.hi, sixteen);
    o.d = spread2(a, b, 0);
    o.m = _mm256_setzero_ps();
    o.corr = correction(&o);
    return o;
}

AVX2_INLINE whalf dec_q5_1(const uint8_t *a, const uint8_t *b) {
    whalf o;
    split_nibbles(a, b, 8, &o);
    add_fifth_bits(a, b, 4, &o);
    o.d = spread2(a, b, 0), o.m = spread2(a, b, 2);
    o.corr = correction(&o);
    return o;
}

/* Exact integer partial dots of one half-group, one 32-bit lane per 8 elements of a block. */
AVX2_INLINE __m256i idot_small(const whalf *w, __m256i ulo, __m256i uhi) {
    const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(ulo, w->lo), _mm256_maddubs_epi16(uhi, w->hi));
    return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), w->corr);
}

AVX2_INLINE __m256i idot_q8(const whalf *w, __m256i ulo, __m256i uhi) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), one = _mm256_set1_epi16(1);
    const __m256i qlo = _mm256_sign_epi8(_mm256_xor_si256(ulo, flip), w->lo);
    const __m256i qhi = _mm256_sign_epi8(_mm256_xor_si256(uhi, flip), w->hi);
    return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w->lo), qlo), one),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w->hi), qhi), one));
}

#define AVX2_QROW_KERNEL(NAME, DECODE, IDOT, B, HAS_MIN)                                          \
    AVX2_INLINE void NAME##_group(const uint8_t *g, int nblk, const void *const *xq, int gi, int nx,  \
                                  __m256 *acc) {                                             \
        for (int h = 0; h < 2 && 2 * h < nblk; h++) {                                             \
            const whalf w = DECODE(g + 2 * h * (B), 2 * h + 1 < nblk ? g + (2 * h + 1) * (B) : k_zero_block); \
            _Pragma("GCC unroll 8")                                                               \
            for (int r = 0; r < nx; r++) {                                                        \
                const ds_act_q8 *a = (const ds_act_q8 *)xq[r] + gi;                               \
                const __m256i dot = IDOT(&w, _mm256_loadu_si256((const __m256i *)(a->u + 32 * h)), \
                                         _mm256_loadu_si256((const __m256i *)(a->u + 64 + 32 * h))); \
                const __m256 scale = _mm256_mul_ps(w.d, _mm256_loadu_ps(a->d + 8 * h));           \
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);                 \
                if (HAS_MIN) acc[r] = _mm256_fmadd_ps(w.m, _mm256_loadu_ps(a->s + 8 * h), acc[r]);   \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    AVX2_INLINE void NAME##_body(const void *w, const void *const *xq, const int nx, int n, float *out) { \
        const uint8_t *row = w;                                                                   \
        const int nb = n / 32, full = nb / 4;                                                     \
        __m256 acc[PASS_ROWS]; /* one per row: eight rows fill half the registers */             \
        for (int r = 0; r < nx; r++) acc[r] = _mm256_setzero_ps();                                \
        for (int gi = 0; gi < full; gi++) {                                                       \
            const uint8_t *g = row + (size_t)gi * 4 * (B);                                        \
            for (int o = 0; o < 4 * (B); o += 64) _mm_prefetch((const char *)g + DS_PREFETCH_AHEAD + o, _MM_HINT_T0); \
            NAME##_group(g, 4, xq, gi, nx, acc);                                                  \
        }                                                                                         \
        if (nb % 4) NAME##_group(row + (size_t)full * 4 * (B), nb % 4, xq, full, nx, acc);        \
        for (int r = 0; r < nx; r++) {                                                            \
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1)); \
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                               \
            out[r] = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));                            \
        }                                                                                         \
    }                                                                                             \
    AVX2 static void NAME(const void *w, const void *const *xq, int nx, int n, float *out) {     \
        for (; nx > PASS_ROWS; xq += PASS_ROWS, out += PASS_ROWS, nx -= PASS_ROWS)               \
            NAME##_body(w, xq, PASS_ROWS, n, out);                                                \
        switch (nx) {                                                                            \
        case 1: NAME##_body(w, xq, 1, n, out); break;                                           \
        case 2: NAME##_body(w, xq, 2, n, out); break;                                           \
        case 3: NAME##_body(w, xq, 3, n, out); break;                                           \
        case 4: NAME##_body(w, xq, 4, n, out); break;                                           \
        case 5: NAME##_body(w, xq, 5, n, out); break;                                           \
        case 6: NAME##_body(w, xq, 6, n, out); break;                                           \
        case 7: NAME##_body(w, xq, 7, n, out); break;                                           \
        default: NAME##_body(w, xq, PASS_ROWS, n, out); break;                                  \
        }                                                                                         \
    }

AVX2_QROW_KERNEL(qrow_q8_0, dec_q8_0, idot_q8, 34, 0)
AVX2_QROW_KERNEL(qrow_q4_0, dec_q4_0, idot_small, 18, 0)
AVX2_QROW_KERNEL(qrow_q4_1, dec_q4_1, idot_small, 20, 1)
AVX2_QROW_KERNEL(qrow_q5_0, dec_q5_0, idot_small, 22, 0)
AVX2_QROW_KERNEL(qrow_q5_1, dec_q5_1, idot_small, 24, 1)

ds_qrow_kernel ds_qrow_kernel_avx2(ds_dtype t) {
    switch (t) {
    case DS_Q8_0: return qrow_q8_0;
    case DS_Q4_0: return qrow_q4_0;
    case DS_Q4_1: return qrow_q4_1;
    case DS_Q5_0: return qrow_q5_0;
    case DS_Q5_1: return qrow_q5_1;
    default: return NULL;
    }
}
