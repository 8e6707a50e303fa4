/* Internal to kernels/cpu: the per-variant steps of ds_attention (attention.c runs the tiles).
 *
 * Positions are taken in tiles of DS_ATTN_TILE, tile t covering [32t, 32t + 32). For one tile
 * and a set of queries, each query i sees the first lim[i] positions of the tile (1 ≤ lim[i] ≤
 * 32: those ≤ its pos) and keeps an online-softmax state: m (the running maximum score, -inf at
 * the start), l (the running sum of exp(score - m)) and out (the running Σ exp(score - m)·v).
 * One step per tile:
 *   s_j   = scale · Σ_d q[d]·k_j[d]           (d in order, one accumulator per position j)
 *   m'    = max(m, max_{j<lim} s_j)
 *   alpha = exp(m - m'),  p_j = exp(s_j - m') for j < lim, 0 beyond
 *   l     = l·alpha + Σ_j p_j                 (a fixed sum over the 32 lanes)
 *   out   = out·alpha + Σ_{j<lim} p_j·v_j     (j in order)
 * Every operation on query i depends on its q, lim[i] and the tile only, never on which other
 * queries share the call or where in the call it sits: that is what keeps attention batch-,
 * chunking- and thread-invariant. */
#ifndef DS_KERNELS_CPU_ATTENTION_H
#define DS_KERNELS_CPU_ATTENTION_H

#include "kernels/kernels.h"

#define DS_ATTN_TILE 32

typedef struct ds_attn_ops {
    /* kt[d·32 + j] = rows[j][d] for j < n, 0 for n ≤ j < 32; d < dk. kt is 64-byte aligned. */
    void (*load_keys)(const float *const *rows, int n, int dk, float *kt);
    /* The score and softmax part of the step for nq queries (q[i] of dk floats): updates m[i]
     * and l[i], writes alpha[i] and p[i·32 .. i·32 + 32). */
    void (*scores)(const float *kt, int dk, const float *const *q, const int *lim, int nq, float scale, float *m,
                   float *l, float *alpha, float *p);
    /* The value part: out[i] = out[i]·alpha[i] + Σ_{j<lim[i]} p[i·32 + j]·rows[j], dv floats. */
    void (*accumulate)(const float *const *rows, int dv, const float *p, const int *lim, const float *alpha,
                       float *const *out, int nq);
} ds_attn_ops;

extern const ds_attn_ops ds_attn_ops_scalar;
extern const ds_attn_ops ds_attn_ops_avx2;
extern const ds_attn_ops ds_attn_ops_avx512;

#endif
