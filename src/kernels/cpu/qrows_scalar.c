/* Scalar reference for the quantized-activation row kernels of the 32-element weight formats
 * (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 against ds_act_q8). Each weight block is decoded to signed
 * integers w, a scale and a minimum (0 for the formats without one), so that the block's
 * weights are d_w * w + m_w; with activations d_x * q the block's dot product is
 *   d_w * d_x * sum(w * q) + m_w * (d_x * sum(q)),
 * the integer sum exact, the rest f32 accumulated block by block. */
#include <string.h>

#include "kernels/cpu/variants.h"

typedef struct wblock {
    int8_t w[32];
    float d, m;
} wblock;

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ds_f16_to_f32(h);
}

static uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Elements j and j + 16 of a 4-bit block live in the low and high nibble of byte j. */
static void nibbles(const uint8_t *qs, int off, int8_t *w) {
    for (int j = 0; j < 16; j++) {
        w[j] = (int8_t)((qs[j] & 0xf) - off);
        w[j + 16] = (int8_t)((qs[j] >> 4) - off);
    }
}

/* Q5: bit j of qh is the fifth bit of element j. */
static void fifth_bits(uint32_t qh, int8_t *w) {
    for (int j = 0; j < 32; j++) w[j] = (int8_t)(w[j] + (int)(((qh >> j) & 1) << 4));
}

static void dec_q8_0(const uint8_t *b, wblock *o) {
    o->d = f16_at(b), o->m = 0.0f;
    memcpy(o->w, b + 2, 32);
}

static void dec_q4_0(const uint8_t *b, wblock *o) {
    o->d = f16_at(b), o->m = 0.0f;
    nibbles(b + 2, 8, o->w);
}

static void dec_q4_1(const uint8_t *b, wblock *o) {
    o->d = f16_at(b), o->m = f16_at(b + 2);
    nibbles(b + 4, 0, o->w);
}

static void dec_q5_0(const uint8_t *b, wblock *o) {
    o->d = f16_at(b), o->m = 0.0f;
    nibbles(b + 6, 16, o->w);
    fifth_bits(u32_at(b + 2), o->w);
}

static void dec_q5_1(const uint8_t *b, wblock *o) {
    o->d = f16_at(b), o->m = f16_at(b + 2);
    nibbles(b + 8, 0, o->w);
    fifth_bits(u32_at(b + 4), o->w);
}

/* The integer dot of weight block b with activation block b of a ds_act_q8 row. */
static int32_t block_dot(const int8_t *w, const ds_act_q8 *a, int b) {
    const uint8_t *u = a[b / 4].u + 16 * (b % 4);
    int32_t s = 0;
    for (int i = 0; i < 16; i++) s += w[i] * ((int)u[i] - 128) + w[16 + i] * ((int)u[64 + i] - 128);
    return s;
}

#define SCALAR_QROW_KERNEL(NAME, DECODE, BLOCK_BYTES)                                         \
    static void NAME(const void *w, const void *const *xq, int nx, int n, float *out) {      \
        for (int r = 0; r < nx; r++) {                                                        \
            const ds_act_q8 *a = xq[r];                                                       \
            float acc = 0.0f;                                                                 \
            for (int b = 0; b < n / 32; b++) {                                                \
                wblock wb;                                                                    \
                DECODE((const uint8_t *)w + (size_t)b * (BLOCK_BYTES), &wb);                  \
                const float dx = a[b / 4].d[4 * (b % 4)], sx = a[b / 4].s[4 * (b % 4)];       \
                acc += wb.d * dx * (float)block_dot(wb.w, a, b) + wb.m * sx;                  \
            }                                                                                 \
            out[r] = acc;                                                                     \
        }                                                                                     \
    }

SCALAR_QROW_KERNEL(qrow_q8_0, dec_q8_0, 34)
SCALAR_QROW_KERNEL(qrow_q4_0, dec_q4_0, 18)
SCALAR_QROW_KERNEL(qrow_q4_1, dec_q4_1, 20)
SCALAR_QROW_KERNEL(qrow_q5_0, dec_q5_0, 22)
SCALAR_QROW_KERNEL(qrow_q5_1, dec_q5_1, 24)

ds_qrow_kernel ds_qrow_kernel_scalar(ds_dtype t) {
    switch (t) {
    case DS_Q8_0: return qrow_q8_0;
    case DS_Q4_0: return qrow_q4_0;
    case DS_Q4_1: return qrow_q4_1;
    case DS_Q5_0: return qrow_q5_0;
    case DS_Q5_1: return qrow_q5_1;
    default: return NULL;
    }
}
