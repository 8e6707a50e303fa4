/* Normalization and activation kernels (f32). */
#include <math.h>

#include "kernels/kernels.h"

void ds_rmsnorm(float *out, const float *x, const float *g, int n, float eps) {
    /* Double accumulation: the statistic then barely depends on summation order. */
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float inv = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = g[i] * (x[i] * inv);
}

void ds_swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ds_softmax(float *x, int n) {
    float max = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - max));
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}
