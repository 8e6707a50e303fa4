/* K-quant (Q4_K, Q5_K, Q6_K) row kernels against Q8_K activations, scalar reference: each
 * block's dot product is an exact integer sum scaled to float once, less the float offset term
 * (see kquant.h); the blocks of a row are summed in order. Activation rows are independent of
 * each other. */
#include "kernels/cpu/kquant.h"

static float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ds_f16_to_f32(h);
}

/* Σ_j g_j·dsums_j over the sixteen 16-wide runs of the block: g_j is the weight block's offset
 * for run j (see kquant.h). */
static float offsets_dot(const float g[16], const ds_act_q8k *x) {
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += g[j] * x->dsums[j];
    return s;
}

/* Q4_K and Q5_K differ only in the fifth bit: hb is NULL for Q4_K. */
static float q45_k_block(const uint8_t *b, const uint8_t *ql, const uint8_t *hb, const ds_act_q8k *x) {
    uint8_t sm[16];
    kq_unpack_scales_mins(b + KQ_SCALES, sm);
    int32_t isum = 0;
    for (int j = 0; j < 4; j++, ql += 32) {
        const int8_t *xlo = x->qs + 64 * j, *xhi = xlo + 32;
        int32_t lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
            int qlo = ql[l] & 0xf, qhi = ql[l] >> 4;
            if (hb) {
                qlo |= ((hb[l] >> (2 * j)) & 1) << 4;
                qhi |= ((hb[l] >> (2 * j + 1)) & 1) << 4;
            }
            lo += qlo * xlo[l];
            hi += qhi * xhi[l];
        }
        isum += sm[2 * j] * lo + sm[2 * j + 1] * hi;
    }
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    float g[16];
    for (int j = 0; j < 16; j++) g[j] = dmin * (float)sm[8 + j / 2];
    return d * x->d * (float)isum - offsets_dot(g, x);
}

static float q4_k_block(const uint8_t *b, const ds_act_q8k *x) {
    return q45_k_block(b, b + KQ_Q4_K_QS, NULL, x);
}

static float q5_k_block(const uint8_t *b, const ds_act_q8k *x) {
    return q45_k_block(b, b + KQ_Q5_K_QS, b + KQ_Q5_K_QH, x);
}

/* Q6_K: each half of the block (128 weights) takes 64 bytes of ql and 32 of qh; byte l of
 * ql/qh feeds weights l, l+32, l+64, l+96 of the half (low nibble of ql[l] and ql[l+32], then
 * the high nibbles; qh's four 2-bit fields in the same order). */
static float q6_k_block(const uint8_t *b, const ds_act_q8k *x) {
    const int8_t *sc = (const int8_t *)(b + KQ_Q6_K_SCALES);
    int32_t sub[16] = {0}; /* Σ q·qx per 16-wide sub-block */
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + KQ_Q6_K_QH + 32 * h;
        const int8_t *xq = x->qs + 128 * h;
        int32_t *s = sub + 8 * h;
        for (int l = 0; l < 32; l++) {
            const int g = l / 16;
            s[g] += ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) * xq[l];
            s[g + 2] += ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) * xq[l + 32];
            s[g + 4] += ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) * xq[l + 64];
            s[g + 6] += ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) * xq[l + 96];
        }
    }
    const float d = rd_f16(b + KQ_Q6_K_D);
    int32_t isum = 0;
    float g[16];
    for (int k = 0; k < 16; k++) isum += sc[k] * sub[k], g[k] = 32.0f * d * (float)sc[k];
    return d * x->d * (float)isum - offsets_dot(g, x);
}

/* Each activation row on its own: the blocks of the row summed in order, continuing from the
 * carried sum unless this is the first part of the row. */
#define SCALAR_BODY(NAME, BLOCK, BYTES)                                                         \
    static inline void NAME(const void *w, const void *const *xq, int nx, int n, float *carry, int first, int last, \
                            float *out) {                                                       \
        for (int r = 0; r < nx; r++) {                                                          \
            const ds_act_q8k *x = xq[r];                                                        \
            float s = first ? 0.0f : carry[DS_KQ_CARRY * r];                                    \
            for (int k = 0; k < n / KQ_BLOCK; k++) s += BLOCK((const uint8_t *)w + (size_t)k * (BYTES), x + k); \
            if (last) out[r] = s;                                                               \
            else carry[DS_KQ_CARRY * r] = s;                                                    \
        }                                                                                       \
    }

SCALAR_BODY(q4_k_body, q4_k_block, KQ_Q4_K_BYTES)
SCALAR_BODY(q5_k_body, q5_k_block, KQ_Q5_K_BYTES)
SCALAR_BODY(q6_k_body, q6_k_block, KQ_Q6_K_BYTES)

KQ_DEFINE_VARIANT(scalar, )
