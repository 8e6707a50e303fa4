/* dtype table, scalar conversions and the reference (scalar) dequantizers for every block
 * format we read. Block layouts follow ggml's (ggml-common.h), so GGUF files are read as is. */
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>
#include <strings.h>

typedef struct dtype_info {
    const char *name;
    int block_elems;
    size_t block_bytes;
} dtype_info;

static const dtype_info k_dtypes[DS_DTYPE_COUNT] = {
    [DS_F32] = {"F32", 1, 4},       [DS_F16] = {"F16", 1, 2},     [DS_BF16] = {"BF16", 1, 2},
    [DS_F64] = {"F64", 1, 8},       [DS_I8] = {"I8", 1, 1},       [DS_U8] = {"U8", 1, 1},
    [DS_I16] = {"I16", 1, 2},       [DS_I32] = {"I32", 1, 4},     [DS_I64] = {"I64", 1, 8},
    [DS_BOOL] = {"BOOL", 1, 1},     [DS_F8_E4M3] = {"F8_E4M3", 1, 1},
    [DS_F8_E5M2] = {"F8_E5M2", 1, 1},
    [DS_Q4_0] = {"Q4_0", 32, 18},   [DS_Q4_1] = {"Q4_1", 32, 20}, [DS_Q5_0] = {"Q5_0", 32, 22},
    [DS_Q5_1] = {"Q5_1", 32, 24},   [DS_Q8_0] = {"Q8_0", 32, 34}, [DS_Q8_1] = {"Q8_1", 32, 36},
    [DS_Q2_K] = {"Q2_K", 256, 84},  [DS_Q3_K] = {"Q3_K", 256, 110},
    [DS_Q4_K] = {"Q4_K", 256, 144}, [DS_Q5_K] = {"Q5_K", 256, 176},
    [DS_Q6_K] = {"Q6_K", 256, 210}, [DS_Q8_K] = {"Q8_K", 256, 292},
};

const char *ds_dtype_name(ds_dtype t) {
    return (unsigned)t < DS_DTYPE_COUNT ? k_dtypes[t].name : "?";
}

int ds_dtype_from_name(const char *name) {
    for (int t = 0; t < DS_DTYPE_COUNT; t++)
        if (!strcasecmp(k_dtypes[t].name, name)) return t;
    return -1;
}

int ds_dtype_block_elems(ds_dtype t) { return k_dtypes[t].block_elems; }

size_t ds_dtype_block_bytes(ds_dtype t) { return k_dtypes[t].block_bytes; }

int64_t ds_tensor_nelems(const ds_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int ds_dtype_bytes_for(ds_dtype t, int64_t nelems, size_t *out, const char *what, ds_err *err) {
    int64_t be = k_dtypes[t].block_elems;
    if (nelems < 0) return ds_errf(err, "%s: negative element count", what);
    if (nelems % be != 0)
        return ds_errf(err, "%s: %lld elements is not a multiple of the %s block size %lld", what,
                       (long long)nelems, k_dtypes[t].name, (long long)be);
    uint64_t blocks = (uint64_t)(nelems / be);
    if (blocks > SIZE_MAX / k_dtypes[t].block_bytes)
        return ds_errf(err, "%s: size overflows", what);
    *out = (size_t)blocks * k_dtypes[t].block_bytes;
    return 0;
}

float ds_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else if (exp == 31) {
        v.u = sign | 0x7f800000u | (man << 13);
    } else {
        v.u = sign | ((exp + 112) << 23) | (man << 13);
    }
    return v.f;
}

uint16_t ds_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    uint32_t sign = (v.u >> 16) & 0x8000;
    uint32_t abs = v.u & 0x7fffffff;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to infinity */
    if (abs < 0x38800000u) {
        /* subnormal half: value = m * 2^-24, round to nearest even */
        float a = fabsf(f) * 16777216.0f;
        float r = nearbyintf(a);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t e = ((abs >> 23) - 112) << 10;
    uint32_t m = (abs >> 13) & 0x3ff;
    uint32_t rest = abs & 0x1fff;
    uint32_t h = e | m;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

uint16_t ds_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    if ((v.u & 0x7fffffff) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t rounding = 0x7fff + ((v.u >> 16) & 1);
    return (uint16_t)((v.u + rounding) >> 16);
}

float ds_fp8_e4m3_to_f32(uint8_t v) {
    int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
    float r;
    if (exp == 0xf && man == 7) return NAN;
    if (exp == 0) r = ldexpf((float)man / 8.0f, -6);
    else r = ldexpf(1.0f + (float)man / 8.0f, exp - 7);
    return sign ? -r : r;
}

/* ---- block dequantizers (one block each) ---- */

static float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ds_f16_to_f32(h);
}

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xf) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xf) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
        y[j] = (float)(((qs[j] & 0xf) | xh0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | xh1) - 16) * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
        y[j] = (float)((qs[j] & 0xf) | xh0) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | xh1) * d + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

/* 6-bit scale and min number j of a Q4_K / Q5_K block (ggml's get_scale_min_k4). */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void deq_q4_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        int sc, m;
        k4_scale_min(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k4_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void deq_q5_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        int sc, m;
        k4_scale_min(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k4_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

int ds_dtype_can_dequantize(ds_dtype t) {
    switch (t) {
    case DS_F32: case DS_F16: case DS_BF16: case DS_F8_E4M3: case DS_Q4_0: case DS_Q4_1: case DS_Q5_0:
    case DS_Q5_1: case DS_Q8_0: case DS_Q4_K: case DS_Q5_K: case DS_Q6_K:
        return 1;
    default: return 0;
    }
}

int ds_dequantize_row(ds_dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    void (*blk)(const uint8_t *, float *) = NULL;
    switch (t) {
    case DS_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case DS_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(s + 2 * i);
        return 0;
    case DS_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, s + 2 * i, 2);
            dst[i] = ds_bf16_to_f32(b);
        }
        return 0;
    case DS_F8_E4M3:
        for (int64_t i = 0; i < n; i++) dst[i] = ds_fp8_e4m3_to_f32(s[i]);
        return 0;
    case DS_Q4_0: blk = deq_q4_0; break;
    case DS_Q4_1: blk = deq_q4_1; break;
    case DS_Q5_0: blk = deq_q5_0; break;
    case DS_Q5_1: blk = deq_q5_1; break;
    case DS_Q8_0: blk = deq_q8_0; break;
    case DS_Q4_K: blk = deq_q4_k; break;
    case DS_Q5_K: blk = deq_q5_k; break;
    case DS_Q6_K: blk = deq_q6_k; break;
    default: return -1;
    }
    int be = k_dtypes[t].block_elems;
    size_t bb = k_dtypes[t].block_bytes;
    for (int64_t i = 0; i < n / be; i++) blk(s + (size_t)i * bb, dst + i * be);
    return 0;
}
