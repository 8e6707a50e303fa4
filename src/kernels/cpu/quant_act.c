/* Activation quantization for the integer row kernels (see variants.h). */
#include <math.h>

#include "kernels/cpu/variants.h"

ds_act_kind ds_act_kind_for(ds_dtype t) {
    switch (t) {
    case DS_Q8_0: case DS_Q4_0: case DS_Q4_1: case DS_Q5_0: case DS_Q5_1: return DS_ACT_Q8;
    case DS_Q4_K: case DS_Q5_K: case DS_Q6_K: return DS_ACT_Q8K;
    default: return DS_ACT_F32;
    }
}

static float absmax(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* qs = round(x * 127 / amax), returning the sum of the quantized values. */
static int quantize_block(const float *x, int n, float amax, int8_t *qs) {
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int q = (int)nearbyintf(x[i] * id);
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        qs[i] = (int8_t)q;
        sum += q;
    }
    return sum;
}

/* The 32-element blocks keep d and s at f16 precision, as llama.cpp's Q8_0 / Q8_1 blocks do, so
 * that our results track llama.cpp's; the values themselves are rounded with the exact scale. */
static float f16_round(float v) { return ds_f16_to_f32(ds_f32_to_f16(v)); }

void ds_quantize_act_q8(const float *x, int n, ds_act_q8 *out) {
    const int nb = n / 32;
    for (int g = 0; g < ds_act_q8_groups(n); g++) {
        ds_act_q8 *a = &out[g];
        for (int p = 0; p < 4; p++) {
            const int b = 4 * g + p;
            int8_t q[32] = {0};
            float d = 0.0f, s = 0.0f;
            if (b < nb) {
                const float amax = absmax(x + 32 * b, 32);
                const int sum = quantize_block(x + 32 * b, 32, amax, q);
                d = f16_round(amax / 127.0f);
                s = f16_round(amax / 127.0f * (float)sum);
            }
            for (int i = 0; i < 16; i++) {
                a->u[16 * p + i] = (uint8_t)(q[i] + 128);
                a->u[64 + 16 * p + i] = (uint8_t)(q[16 + i] + 128);
            }
            for (int l = 0; l < 4; l++) {
                a->d[4 * p + l] = d;
                a->s[4 * p + l] = l == 0 ? s : 0.0f;
            }
        }
    }
}

void ds_quantize_act_q8k(const float *x, int n, ds_act_q8k *out) {
    for (int b = 0; b < n / 256; b++, x += 256) {
        const float amax = absmax(x, 256), d = amax / 127.0f;
        out[b].d = d;
        quantize_block(x, 256, amax, out[b].qs);
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += out[b].qs[16 * j + i];
            out[b].dsums[j] = d * (float)s;
        }
    }
}
