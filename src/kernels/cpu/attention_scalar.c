/* Scalar reference of the attention step (attention.h): plain loops over the 32 positions of a
 * tile, libm expf, the lane sum as a pairwise tree (16 + 8 + 4 + 2 + 1 additions). */
#include <math.h>
#include <string.h>

#include "kernels/cpu/attention.h"

#define TILE DS_ATTN_TILE

static void load_keys(const float *const *rows, int n, int dk, float *kt) {
    for (int j = 0; j < n; j++)
        for (int d = 0; d < dk; d++) kt[(size_t)d * TILE + j] = rows[j][d];
    for (int d = 0; d < dk; d++)
        for (int j = n; j < TILE; j++) kt[(size_t)d * TILE + j] = 0.0f;
}

static float tree_sum(const float *x) {
    float t[TILE];
    memcpy(t, x, sizeof t);
    for (int w = TILE / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) t[j] += t[j + w];
    return t[0];
}

static void scores(const float *kt, int dk, const float *const *q, const int *lim, int nq, float scale, float *m,
                   float *l, float *alpha, float *p) {
    for (int i = 0; i < nq; i++) {
        float s[TILE] = {0};
        for (int d = 0; d < dk; d++) {
            const float qd = q[i][d];
            for (int j = 0; j < TILE; j++) s[j] += qd * kt[(size_t)d * TILE + j];
        }
        float mx = m[i];
        for (int j = 0; j < lim[i]; j++) {
            s[j] *= scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        float *pi = p + (size_t)i * TILE;
        for (int j = 0; j < TILE; j++) pi[j] = j < lim[i] ? expf(s[j] - mx) : 0.0f;
        alpha[i] = expf(m[i] - mx);
        l[i] = l[i] * alpha[i] + tree_sum(pi);
        m[i] = mx;
    }
}

static void accumulate(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                       float *const *out, int nq) {
    for (int i = 0; i < nq; i++) {
        float *o = out[i];
        for (int d = 0; d < dv; d++) o[d] *= alpha[i];
        for (int j = 0; j < lim[i]; j++) {
            const float w = p[(size_t)i * TILE + j], *v = rows[j];
            for (int d = 0; d < dv; d++) o[d] += w * v[d];
        }
    }
}

const ds_attn_ops ds_attn_ops_scalar = {load_keys, scores, accumulate};
