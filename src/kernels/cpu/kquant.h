/* Internal to the K-quant row kernels (kquant_scalar.c, kquant_avx2.c, kquant_avx512.c): the
 * ggml block layouts of Q4_K, Q5_K and Q6_K and the pieces every variant shares.
 *
 * Each block holds 256 weights. With q the stored unsigned integers and x ≈ dx·qx a Q8_K
 * activation block, a block's dot product is an exact integer sum, scaled once, less an offset
 * term that is constant over 16-wide runs j of the block:
 *   Q4_K, Q5_K: w = d·sc_s·q − dmin·m_s over 8 sub-blocks s of 32 (sc, m: 6 bits; q: 4 or 5 bits)
 *               dot = d·dx·Σ_s sc_s·Σ q·qx − Σ_j (dmin·m_{j/2})·dsums_j
 *   Q6_K:       w = d·sc_j·(q − 32) over 16 sub-blocks j of 16 (sc: int8; q: 6 bits)
 *               dot = d·dx·Σ_j sc_j·Σ q·qx − Σ_j (32·d·sc_j)·dsums_j
 * where dsums_j = dx·(sum of qx over run j) comes with the activations. */
#ifndef DS_KERNELS_CPU_KQUANT_H
#define DS_KERNELS_CPU_KQUANT_H

#include <stdint.h>
#include <string.h>

#include "kernels/cpu/variants.h"

enum {
    KQ_BLOCK = 256,
    /* Q4_K: f16 d, f16 dmin, scales[12] (packed 6-bit scales and mins), qs[128] (4-bit pairs) */
    KQ_Q4_K_BYTES = 144,
    KQ_Q4_K_QS = 16,
    /* Q5_K: as Q4_K with qh[32] (the fifth bits) before qs */
    KQ_Q5_K_BYTES = 176,
    KQ_Q5_K_QH = 16,
    KQ_Q5_K_QS = 48,
    KQ_SCALES = 4, /* offset of the packed scales in Q4_K and Q5_K */
    /* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d */
    KQ_Q6_K_BYTES = 210,
    KQ_Q6_K_QH = 128,
    KQ_Q6_K_SCALES = 192,
    KQ_Q6_K_D = 208,
};

/* The 12 packed bytes of a Q4_K / Q5_K block → out[0..8) the eight 6-bit scales, out[8..16)
 * the eight 6-bit mins. Scales and mins 0..3 are the low 6 bits of bytes 0..3 and 4..7; 4..7
 * take their low 4 bits from the nibbles of bytes 8..11 and their top 2 bits from the spare
 * top bits of bytes 0..3 and 4..7. Done four bytes at a time (x86 is little-endian). */
static inline void kq_unpack_scales_mins(const uint8_t *packed, uint8_t out[16]) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint32_t v[4] = {
        u[0] & 0x3f3f3f3fu,
        (u[2] & 0x0f0f0f0fu) | ((u[0] >> 2) & 0x30303030u),
        u[1] & 0x3f3f3f3fu,
        ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 2) & 0x30303030u),
    };
    memcpy(out, v, 16);
}

/* Calls BODY(w, xq, k, n, carry, first, last, out) with k == nx a compile-time constant, so
 * every group size gets its own copy of the loop with the per-row accumulators in registers
 * (cases above DS_NX_MAX are never reached and compile to nothing). */
#if DS_NX_MAX > 8
#error "the K-quant kernels specialise nx up to 8: extend KQ_CALL_NX"
#endif
#define KQ_NX_CASE(BODY, K)                                                                     \
    case K:                                                                                     \
        if (K <= DS_NX_MAX) BODY(w, xq, K, n, carry, first, last, out);                         \
        break;
#define KQ_CALL_NX(BODY)                                                                        \
    switch (nx) {                                                                               \
        KQ_NX_CASE(BODY, 1)                                                                     \
        KQ_NX_CASE(BODY, 2)                                                                     \
        KQ_NX_CASE(BODY, 3)                                                                     \
        KQ_NX_CASE(BODY, 4)                                                                     \
        KQ_NX_CASE(BODY, 5)                                                                     \
        KQ_NX_CASE(BODY, 6)                                                                     \
        KQ_NX_CASE(BODY, 7)                                                                     \
        KQ_NX_CASE(BODY, 8)                                                                     \
    }

/* One entry point per type and kind: the part kernel (ds_kq_part_kernel) and the whole-row
 * kernel (ds_qrow_kernel), which is the part kernel over the whole row. */
#define KQ_TYPE_ENTRIES(T, ATTR)                                                                \
    ATTR static void part_##T(const void *w, const void *const *xq, int nx, int n, float *carry, int first, \
                              int last, float *out) {                                           \
        KQ_CALL_NX(T##_body)                                                                    \
    }                                                                                           \
    ATTR static void row_##T(const void *w, const void *const *xq, int nx, int n, float *out) { \
        part_##T(w, xq, nx, n, NULL, 1, 1, out);                                                \
    }

/* Defines ds_kquant_kernel_SUFFIX and ds_kquant_part_kernel_SUFFIX from the variant's
 * q4_k_body, q5_k_body and q6_k_body (each `void (const void *w, const void *const *xq, int nx,
 * int n, float *carry, int first, int last, float *out)`), compiled with the variant's target
 * attribute ATTR. */
#define KQ_DEFINE_VARIANT(SUFFIX, ATTR)                                                         \
    KQ_TYPE_ENTRIES(q4_k, ATTR)                                                                 \
    KQ_TYPE_ENTRIES(q5_k, ATTR)                                                                 \
    KQ_TYPE_ENTRIES(q6_k, ATTR)                                                                 \
    ds_qrow_kernel ds_kquant_kernel_##SUFFIX(ds_dtype t) {                                      \
        switch (t) {                                                                            \
        case DS_Q4_K: return row_q4_k;                                                          \
        case DS_Q5_K: return row_q5_k;                                                          \
        case DS_Q6_K: return row_q6_k;                                                          \
        default: return NULL;                                                                   \
        }                                                                                       \
    }                                                                                           \
    ds_kq_part_kernel ds_kquant_part_kernel_##SUFFIX(ds_dtype t) {                              \
        switch (t) {                                                                            \
        case DS_Q4_K: return part_q4_k;                                                         \
        case DS_Q5_K: return part_q5_k;                                                         \
        case DS_Q6_K: return part_q6_k;                                                         \
        default: return NULL;                                                                   \
        }                                                                                       \
    }

#endif
