/* ds_attention: the tile loop shared by every variant. Per tile it gathers the rows of the 32
 * positions through the block table, has the variant transpose the keys once for all queries,
 * then runs the score/softmax step and the value step of every query still active (attention.h
 * describes the step). A query stops after the tile holding its pos and is then normalized. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/attention.h"

/* Slack for aligning the transposed keys to 64 bytes. */
#define ALIGN_FLOATS 16

size_t ds_attention_scratch_floats(int dk) { return (size_t)dk * DS_ATTN_TILE + ALIGN_FLOATS; }

static const ds_attn_ops *ops_for_level(void) {
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: return &ds_attn_ops_avx512;
    case DS_CPU_AVX2: return &ds_attn_ops_avx2;
    default: return &ds_attn_ops_scalar;
    }
}

static const float *row_at(const ds_attn_kv *kv, const float *base, int64_t stride, int p) {
    const size_t slot = (size_t)kv->blocks[p / kv->block_size] * (size_t)kv->block_size + (size_t)(p % kv->block_size);
    return base + slot * (size_t)stride;
}

/* Asks for the cache lines of n floats at x. */
static void prefetch(const float *x, int n) {
    const char *end = (const char *)(x + n);
    for (const char *c = (const char *)((uintptr_t)x & ~(uintptr_t)63); c < end; c += 64) __builtin_prefetch(c);
}

static void normalize(float *out, int dv, float l) {
    const float inv = 1.0f / l;
    for (int d = 0; d < dv; d++) out[d] *= inv;
}

/* Up to DS_ATTN_MAX_Q queries in one pass over the tiles. */
static void attend(const ds_attn_ops *ops, const ds_attn_kv *kv, const ds_attn_query *qs, int n_q, float scale,
                   float *scratch) {
    const int dk = kv->dk, dv = kv->dv;
    float *kt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    /* The active queries, in the caller's order, with their softmax state. */
    const float *q[DS_ATTN_MAX_Q];
    float *out[DS_ATTN_MAX_Q];
    int pos[DS_ATTN_MAX_Q], lim[DS_ATTN_MAX_Q];
    float m[DS_ATTN_MAX_Q], l[DS_ATTN_MAX_Q], alpha[DS_ATTN_MAX_Q];
    _Alignas(64) float p[DS_ATTN_MAX_Q * DS_ATTN_TILE];
    const float *krows[DS_ATTN_TILE], *vrows[DS_ATTN_TILE];
    int na = n_q;
    for (int i = 0; i < na; i++) {
        q[i] = qs[i].q, out[i] = qs[i].out, pos[i] = qs[i].pos;
        m[i] = -INFINITY, l[i] = 0.0f;
        memset(out[i], 0, sizeof(float) * (size_t)dv);
    }
    for (int t0 = 0;; t0 += DS_ATTN_TILE) {
        int k = 0, max_pos = -1;
        for (int i = 0; i < na; i++) {
            if (pos[i] < t0) {
                normalize(out[i], dv, l[i]);
                continue;
            }
            q[k] = q[i], out[k] = out[i], pos[k] = pos[i], m[k] = m[i], l[k] = l[i];
            lim[k] = pos[i] - t0 + 1 < DS_ATTN_TILE ? pos[i] - t0 + 1 : DS_ATTN_TILE;
            max_pos = pos[i] > max_pos ? pos[i] : max_pos;
            k++;
        }
        na = k;
        if (na == 0) return;
        const int n = max_pos - t0 + 1 < DS_ATTN_TILE ? max_pos - t0 + 1 : DS_ATTN_TILE;
        for (int j = 0; j < n; j++) {
            krows[j] = row_at(kv, kv->k, kv->k_stride, t0 + j);
            vrows[j] = row_at(kv, kv->v, kv->v_stride, t0 + j);
            prefetch(vrows[j], dv);
        }
        ops->load_keys(krows, n, dk, kt);
        /* In decode the cache comes from memory: have the next tile's keys on the way. */
        for (int p_next = t0 + DS_ATTN_TILE; p_next <= max_pos && p_next < t0 + 2 * DS_ATTN_TILE; p_next++)
            prefetch(row_at(kv, kv->k, kv->k_stride, p_next), dk);
        ops->scores(kt, dk, q, lim, na, scale, m, l, alpha, p);
        ops->accumulate(vrows, dv, p, lim, alpha, out, na);
    }
}

void ds_attention(const ds_attn_kv *kv, const ds_attn_query *q, int n_q, float scale, float *scratch) {
    const ds_attn_ops *ops = ops_for_level();
    for (int i = 0; i < n_q; i += DS_ATTN_MAX_Q)
        attend(ops, kv, q + i, n_q - i < DS_ATTN_MAX_Q ? n_q - i : DS_ATTN_MAX_Q, scale, scratch);
}
