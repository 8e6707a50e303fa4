/* Row quantizers for the GGUF block formats (layouts as in tensor.c's dequantizers).
 *
 * The 32-element formats follow gguf-py 0.17.1's numpy code operation by operation, because
 * "the same bytes" depends on where it rounds: Q4_0/Q5_0 compute x·(1/d) + offset in double
 * and round that to float before truncating; Q4_1/Q5_1 stay in float; Q8_0 rounds half away
 * from zero; every block scale is rounded to f16 with round-to-nearest-even. Block maxima are
 * the first element of largest magnitude, as numpy's argmax picks it.
 *
 * The K formats (256-element super-blocks) are ours. Q4_K/Q5_K: x ≈ d·sc_j·q − dmin·m_j with
 * 6-bit sc_j, m_j per 32-element sub-block and q in [0, 15] or [0, 31]; Q6_K: x ≈ d·sc_j·q with
 * an 8-bit signed sc_j per 16 elements and q in [−32, 31]. For each sub-block a small grid of
 * inverse scales around the range fixes the q, a least-squares fit of (scale, offset) on those
 * q follows, and the fit with the smallest squared error wins. The super-block scales are the
 * largest sub-block values over the code range, rounded to f16; each sub-block then takes the
 * best of the neighbouring codes of its rounded value, judged with the final q. */
#include "tensor/quantize.h"

#include <math.h>
#include <string.h>

#define QK 32     /* elements per block of the 32-element formats */
#define QK_K 256  /* elements per K super-block */
/* Grid of inverse scales tried per sub-block: (levels + k·GRID_STEP) / range, |k| <= GRID_HALF. */
#define GRID_HALF 10
#define GRID_STEP 0.1f

static void put_f16(uint8_t *p, float v) {
    uint16_t h = ds_f32_to_f16(v);
    memcpy(p, &h, 2);
}

static float to_f16_and_back(float v) { return ds_f16_to_f32(ds_f32_to_f16(v)); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* v rounded half up and clamped to [lo, hi] (NaN gives lo); inline, unlike lrintf. */
static inline int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v > (float)hi) return hi;
    return lo + (int)(v - (float)lo + 0.5f);
}

/* ---- 32-element formats (gguf-py's rules) ---- */

/* The first element of largest magnitude, sign kept (numpy: take_along_axis(argmax(abs))). */
static float signed_absmax(const float *x) {
    float best = x[0], amax = fabsf(x[0]);
    for (int i = 1; i < QK; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            best = x[i];
        }
    return best;
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *lo) *lo = x[i];
        if (x[i] > *hi) *hi = x[i];
    }
}

/* Q4_0 / Q5_0 codes: trunc(float(double(x)·double(1/d) + offset)) clipped to [0, top]. */
static void symmetric_codes(const float *x, float d, double offset, int top, uint8_t *q) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++) {
        float v = (float)((double)x[i] * (double)id + offset);
        q[i] = (uint8_t)clampi((int)truncf(v), 0, top);
    }
}

/* Q4_1 / Q5_1 codes: trunc((x − min)·(1/d) + 0.5) in float, clipped to [0, top]. */
static void offset_codes(const float *x, float lo, float d, int top, uint8_t *q) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++) {
        float t = (x[i] - lo) * id;
        t = t + 0.5f;
        q[i] = (uint8_t)clampi((int)truncf(t), 0, top);
    }
}

/* Low nibbles: element j in bits 0-3 and element j+16 in bits 4-7 of byte j. */
static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0xf) | ((q[j + QK / 2] & 0xf) << 4));
}

/* Fifth bits: bit j of a little-endian u32 is bit 4 of element j. */
static void pack_high_bits(const uint8_t *q, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < QK; j++) h |= (uint32_t)(q[j] >> 4) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

static void q4_0_block(const float *x, uint8_t *b) {
    const float d = signed_absmax(x) / -8.0f;
    uint8_t q[QK];
    symmetric_codes(x, d, 8.5, 15, q);
    put_f16(b, d);
    pack_nibbles(q, b + 2);
}

static void q5_0_block(const float *x, uint8_t *b) {
    const float d = signed_absmax(x) / -16.0f;
    uint8_t q[QK];
    symmetric_codes(x, d, 16.5, 31, q);
    put_f16(b, d);
    pack_high_bits(q, b + 2);
    pack_nibbles(q, b + 6);
}

static void q4_1_block(const float *x, uint8_t *b) {
    float lo, hi;
    min_max(x, QK, &lo, &hi);
    const float d = (hi - lo) / 15.0f;
    uint8_t q[QK];
    offset_codes(x, lo, d, 15, q);
    put_f16(b, d);
    put_f16(b + 2, lo);
    pack_nibbles(q, b + 4);
}

static void q5_1_block(const float *x, uint8_t *b) {
    float lo, hi;
    min_max(x, QK, &lo, &hi);
    const float d = (hi - lo) / 31.0f;
    uint8_t q[QK];
    offset_codes(x, lo, d, 31, q);
    put_f16(b, d);
    put_f16(b + 2, lo);
    pack_high_bits(q, b + 4);
    pack_nibbles(q, b + 8);
}

static void q8_0_block(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int i = 0; i < QK; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int i = 0; i < QK; i++) b[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
}

/* ---- K formats: per-sub-block fits ---- */

/* Squared error of x ≈ s·q + b with q = clamp(round((x − b)/s), 0, nmax); q written out. */
static float affine_error(const float *x, int n, int nmax, float s, float b, uint8_t *q) {
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        int qi = round_clamp((x[i] - b) * is, 0, nmax);
        float e = s * (float)qi + b - x[i];
        err += e * e;
        if (q) q[i] = (uint8_t)qi;
    }
    return err;
}

/* Fits x ≈ s·q − m with q in [0, nmax], s >= 0 and m >= 0 (zero stays representable, as
 * ggml's asymmetric K formats require). */
static void fit_scale_min(const float *x, int n, int nmax, float *s_out, float *m_out) {
    float lo, hi;
    min_max(x, n, &lo, &hi);
    if (lo > 0.0f) lo = 0.0f;
    *s_out = 0.0f;
    *m_out = -lo;
    if (!(hi > lo)) return;
    float best_err = affine_error(x, n, nmax, 0.0f, lo, NULL);
    for (int k = -GRID_HALF; k <= GRID_HALF; k++) {
        const float iscale = ((float)nmax + GRID_STEP * (float)k) / (hi - lo);
        float sq = 0, sq2 = 0, sx = 0, sxq = 0, sx2 = 0;
        for (int i = 0; i < n; i++) {
            int qi = round_clamp((x[i] - lo) * iscale, 0, nmax);
            sq += (float)qi;
            sq2 += (float)(qi * qi);
            sx += x[i];
            sxq += x[i] * (float)qi;
            sx2 += x[i] * x[i];
        }
        /* least squares for x ≈ s·q + b, with b <= 0 */
        const float det = (float)n * sq2 - sq * sq;
        float s = 0.0f, b = 1.0f; /* one code for every element: fit the scale alone */
        if (det > 0.0f) {
            s = ((float)n * sxq - sq * sx) / det;
            b = (sq2 * sx - sq * sxq) / det;
        }
        if (b > 0.0f) {
            b = 0.0f;
            s = sq2 > 0.0f ? sxq / sq2 : 0.0f;
        }
        if (!(s > 0.0f)) continue;
        /* Σ(s·q + b − x)², expanded */
        const float err = s * s * sq2 + 2 * s * b * sq + (float)n * b * b - 2 * s * sxq - 2 * b * sx + sx2;
        if (err < best_err) {
            best_err = err;
            *s_out = s;
            *m_out = -b;
        }
    }
}

/* Squared error of x ≈ s·q with q = clamp(round(x/s), −32, 31); q (offset by 32) written out. */
static float sym_error(const float *x, int n, float s, uint8_t *q) {
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        int qi = round_clamp(x[i] * is, -32, 31);
        float e = s * (float)qi - x[i];
        err += e * e;
        if (q) q[i] = (uint8_t)(qi + 32);
    }
    return err;
}

/* Fits x ≈ s·q with q in [−32, 31] (s may be negative, so the largest magnitude can use −32). */
static float fit_scale_sym(const float *x, int n) {
    float xm = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(xm)) xm = x[i];
    if (xm == 0.0f) return 0.0f;
    float best_s = 0.0f, best_err = sym_error(x, n, 0.0f, NULL);
    for (int side = 0; side < 2; side++) {
        for (int k = 0; k <= 2 * GRID_HALF; k++) {
            /* the largest magnitude lands near −32 (side 0) or +31 (side 1) */
            const float t = side == 0 ? -32.0f + GRID_HALF * GRID_STEP - GRID_STEP * (float)k
                                      : 31.0f - GRID_HALF * GRID_STEP + GRID_STEP * (float)k;
            const float is = t / xm;
            float sxq = 0, sq2 = 0, sx2 = 0;
            for (int i = 0; i < n; i++) {
                int qi = round_clamp(x[i] * is, -32, 31);
                sxq += x[i] * (float)qi;
                sq2 += (float)(qi * qi);
                sx2 += x[i] * x[i];
            }
            if (!(sq2 > 0.0f)) continue;
            const float s = sxq / sq2;
            const float err = sx2 - s * sxq; /* Σ(x − s·q)² at the least-squares s */
            if (err < best_err) {
                best_err = err;
                best_s = s;
            }
        }
    }
    return best_s;
}

/* ---- K formats: super-blocks ---- */

/* Codes for 8 sub-blocks of 32 (Q4_K, Q5_K): f16 d and dmin, 6-bit sc[j] and mn[j], and the
 * final q[256] in [0, nmax]. */
static void k_scale_min_codes(const float *x, int nmax, float *d_out, float *dmin_out, uint8_t *sc,
                              uint8_t *mn, uint8_t *q) {
    float s[8], m[8], smax = 0.0f, mmax = 0.0f;
    for (int j = 0; j < 8; j++) {
        fit_scale_min(x + QK * j, QK, nmax, &s[j], &m[j]);
        if (s[j] > smax) smax = s[j];
        if (m[j] > mmax) mmax = m[j];
    }
    const float d = to_f16_and_back(smax / 63.0f), dmin = to_f16_and_back(mmax / 63.0f);
    for (int j = 0; j < 8; j++) {
        const float *xj = x + QK * j;
        const int sc0 = d > 0.0f ? round_clamp(s[j] / d, 0, 63) : 0;
        const int mn0 = dmin > 0.0f ? round_clamp(m[j] / dmin, 0, 63) : 0;
        float best = INFINITY;
        for (int a = -1; a <= 1; a++) {
            for (int b = -1; b <= 1; b++) {
                const int c = sc0 + a, e = mn0 + b;
                if (c < 0 || c > 63 || e < 0 || e > 63) continue;
                const float err = affine_error(xj, QK, nmax, d * (float)c, -(dmin * (float)e), NULL);
                if (err < best) {
                    best = err;
                    sc[j] = (uint8_t)c;
                    mn[j] = (uint8_t)e;
                }
            }
        }
        affine_error(xj, QK, nmax, d * (float)sc[j], -(dmin * (float)mn[j]), q + QK * j);
    }
    *d_out = d;
    *dmin_out = dmin;
}

/* The 12 scale bytes of Q4_K / Q5_K (the inverse of tensor.c's k4_scale_min). */
static void pack_k4_scales(const uint8_t *sc, const uint8_t *mn, uint8_t *out) {
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4));
    }
}

static void q4_k_block(const float *x, uint8_t *b) {
    float d, dmin;
    uint8_t sc[8], mn[8], q[QK_K];
    k_scale_min_codes(x, 15, &d, &dmin, sc, mn, q);
    put_f16(b, d);
    put_f16(b + 2, dmin);
    pack_k4_scales(sc, mn, b + 4);
    uint8_t *qs = b + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

static void q5_k_block(const float *x, uint8_t *b) {
    float d, dmin;
    uint8_t sc[8], mn[8], q[QK_K];
    k_scale_min_codes(x, 31, &d, &dmin, sc, mn, q);
    put_f16(b, d);
    put_f16(b + 2, dmin);
    pack_k4_scales(sc, mn, b + 4);
    uint8_t *qh = b + 16, *ql = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            const uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];
            ql[32 * c + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
            qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
}

static void q6_k_block(const float *x, uint8_t *b) {
    float s[16], smax = 0.0f;
    for (int j = 0; j < 16; j++) {
        s[j] = fit_scale_sym(x + 16 * j, 16);
        if (fabsf(s[j]) > smax) smax = fabsf(s[j]);
    }
    const float d = to_f16_and_back(smax / 127.0f);
    int8_t sc[16];
    uint8_t q[QK_K]; /* code + 32, in [0, 63] */
    for (int j = 0; j < 16; j++) {
        const float *xj = x + 16 * j;
        const int c0 = d > 0.0f ? round_clamp(s[j] / d, -128, 127) : 0;
        float best = INFINITY;
        for (int a = -1; a <= 1; a++) {
            const int c = c0 + a;
            if (c < -128 || c > 127) continue;
            const float err = sym_error(xj, 16, d * (float)c, NULL);
            if (err < best) {
                best = err;
                sc[j] = (int8_t)c;
            }
        }
        sym_error(xj, 16, d * (float)sc[j], q + 16 * j);
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int h = 0; h < 2; h++) {
        const uint8_t *L = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((L[l] & 0xf) | ((L[l + 64] & 0xf) << 4));
            ql[64 * h + l + 32] = (uint8_t)((L[l + 32] & 0xf) | ((L[l + 96] & 0xf) << 4));
            qh[32 * h + l] = (uint8_t)((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                       ((L[l + 96] >> 4) << 6));
        }
    }
    memcpy(b + 192, sc, 16);
    put_f16(b + 208, d);
}

/* ---- rows ---- */

int ds_dtype_can_quantize(ds_dtype t) {
    switch (t) {
    case DS_F32: case DS_F16: case DS_BF16: case DS_Q4_0: case DS_Q4_1: case DS_Q5_0: case DS_Q5_1:
    case DS_Q8_0: case DS_Q4_K: case DS_Q5_K: case DS_Q6_K:
        return 1;
    default: return 0;
    }
}

int ds_quantize_row(ds_dtype t, const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    void (*blk)(const float *, uint8_t *) = NULL;
    switch (t) {
    case DS_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
    case DS_F16:
    case DS_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = t == DS_F16 ? ds_f32_to_f16(src[i]) : ds_f32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return 0;
    case DS_Q4_0: blk = q4_0_block; break;
    case DS_Q4_1: blk = q4_1_block; break;
    case DS_Q5_0: blk = q5_0_block; break;
    case DS_Q5_1: blk = q5_1_block; break;
    case DS_Q8_0: blk = q8_0_block; break;
    case DS_Q4_K: blk = q4_k_block; break;
    case DS_Q5_K: blk = q5_k_block; break;
    case DS_Q6_K: blk = q6_k_block; break;
    default: return -1;
    }
    const int be = ds_dtype_block_elems(t);
    if (n % be != 0) return -1;
    const size_t bb = ds_dtype_block_bytes(t);
    for (int64_t i = 0; i < n / be; i++) blk(src + i * be, out + (size_t)i * bb);
    return 0;
}
