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

void ds_quantize_act_q8(const float *x, int n, ds_act_q8 *out) {
    for (int b = 0; b < n / 32; b++, x += 32) {
        const float amax = absmax(x, 32);
        out[b].d = amax / 127.0f;
        out[b].s = out[b].d * (float)quantize_block(x, 32, amax, out[b].qs);
    }
}

void ds_quantize_act_q8k(const float *x, int n, ds_act_q8k *out) {
    for (int b = 0; b < n / 256; b++, x += 256) {
        const float amax = absmax(x, 256);
        out[b].d = amax / 127.0f;
        quantize_block(x, 256, amax, out[b].qs);
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += out[b].qs[16 * j + i];
            out[b].bsums[j] = (int16_t)s;
        }
    }
}
