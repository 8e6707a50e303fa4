/* ds_attention: every variant against a double-precision softmax, the SIMD variants against the
 * scalar one, and the invariance the forward pass relies on: a query's output is bit-identical
 * alone or among other queries, in any order. The caches are paged through shuffled block
 * tables with odd block sizes, and every slot past the last position holds NaN, so reading one
 * would show. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1.0p-53) * 2.0f - 1.0f;
}

static const ds_cpu_level k_levels[] = {DS_CPU_SCALAR, DS_CPU_AVX2, DS_CPU_AVX512};
#define N_LEVELS 3

#define N_POS 101
#define N_QUERIES 70 /* more than DS_ATTN_MAX_Q: the call takes them in two passes */

typedef struct shape {
    int dk, dv;
    int mla;        /* values are the first dv floats of the key rows, as MLA's latents */
    int block_size;
    float q_amp;    /* query magnitude */
    float scale;
    int rising;     /* scores grow with the position, so the running maximum moves every tile */
    float tol;      /* absolute, on outputs of magnitude ≤ 1: a score's rounding grows with its size */
} shape;

static const shape k_shapes[] = {
    {8, 8, 0, 16, 1.0f, 0.35f, 0, 1e-6f},      /* stories260k's head */
    {64, 64, 0, 16, 2.0f, 0.125f, 0, 1e-6f},   /* SmolLM2 */
    {128, 128, 0, 7, 2.0f, 0.088f, 1, 1e-6f},  /* Qwen2.5; blocks that straddle tiles */
    {20, 36, 0, 5, 3.0f, 0.5f, 0, 2e-6f},      /* remainders of every vector width */
    {576, 512, 1, 16, 1.0f, 0.07f, 1, 2e-6f},  /* MLA: 512 latents + 64 rope dims */
    {64, 64, 0, 32, 4.0f, 1.0f, 1, 2e-5f},     /* scores up to ~±100 */
};

typedef struct cache {
    float *k, *v;
    int32_t *blocks;
    ds_attn_kv kv;
} cache;

/* A cache holding N_POS positions in shuffled blocks; unused slots are NaN. */
static void make_cache(const shape *s, cache *c) {
    const int bs = s->block_size, nb = (N_POS + bs - 1) / bs + 2;
    const int64_t ks = s->dk + 3, vs = s->mla ? ks : s->dv + 1;
    c->k = malloc(sizeof(float) * (size_t)(nb * bs) * (size_t)ks);
    c->v = s->mla ? c->k : malloc(sizeof(float) * (size_t)(nb * bs) * (size_t)vs);
    c->blocks = malloc(sizeof(int32_t) * (size_t)nb);
    for (size_t i = 0; i < (size_t)(nb * bs) * (size_t)ks; i++) c->k[i] = NAN;
    if (!s->mla)
        for (size_t i = 0; i < (size_t)(nb * bs) * (size_t)vs; i++) c->v[i] = NAN;
    for (int b = 0; b < nb; b++) c->blocks[b] = (b * 5 + 3) % nb; /* nb is never a multiple of 5 here */
    c->kv = (ds_attn_kv){.k = c->k, .v = c->v, .blocks = c->blocks, .block_size = bs, .k_stride = ks,
                         .v_stride = vs, .dk = s->dk, .dv = s->dv};
    for (int p = 0; p < N_POS; p++) {
        const size_t slot = (size_t)c->blocks[p / bs] * (size_t)bs + (size_t)(p % bs);
        float *k = c->k + slot * (size_t)ks, *v = c->v + slot * (size_t)vs;
        for (int d = 0; d < s->dk; d++) k[d] = frand();
        if (s->rising) k[0] = 0.05f * (float)p;
        if (!s->mla)
            for (int d = 0; d < s->dv; d++) v[d] = frand();
    }
}

static void free_cache(cache *c, const shape *s) {
    free(c->k);
    if (!s->mla) free(c->v);
    free(c->blocks);
}

static const float *row(const cache *c, const float *base, int64_t stride, int p) {
    const int bs = c->kv.block_size;
    return base + ((size_t)c->blocks[p / bs] * (size_t)bs + (size_t)(p % bs)) * (size_t)stride;
}

/* Softmax attention in double, the plain way: all scores, their maximum, the weighted sum. */
static void reference(const cache *c, const float *q, int pos, float scale, double *out) {
    const int dk = c->kv.dk, dv = c->kv.dv;
    double s[N_POS], mx = -INFINITY, sum = 0;
    for (int p = 0; p <= pos; p++) {
        const float *k = row(c, c->k, c->kv.k_stride, p);
        double acc = 0;
        for (int d = 0; d < dk; d++) acc += (double)q[d] * k[d];
        s[p] = acc * scale;
        mx = s[p] > mx ? s[p] : mx;
    }
    for (int d = 0; d < dv; d++) out[d] = 0;
    for (int p = 0; p <= pos; p++) {
        const double w = exp(s[p] - mx);
        const float *v = row(c, c->v, c->kv.v_stride, p);
        sum += w;
        for (int d = 0; d < dv; d++) out[d] += w * v[d];
    }
    for (int d = 0; d < dv; d++) out[d] /= sum;
}

/* Query positions: tile edges, the first and last position, and a prompt-like run. */
static int query_pos(int i) {
    static const int edges[] = {0, 1, 30, 31, 32, 33, 63, 64, 65, 95, 96, 97, 100};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    return i < n_edges ? edges[i] : (i * 37) % N_POS;
}

typedef struct setup {
    const shape *s;
    cache c;
    float *q;          /* [N_QUERIES][dk] */
    ds_attn_query qs[N_QUERIES];
    float *out;        /* [N_QUERIES][dv] */
    float *scratch;
} setup;

static void make_setup(const shape *s, setup *u) {
    u->s = s;
    make_cache(s, &u->c);
    u->q = malloc(sizeof(float) * N_QUERIES * (size_t)s->dk);
    u->out = malloc(sizeof(float) * N_QUERIES * (size_t)s->dv);
    u->scratch = malloc(sizeof(float) * ds_attention_scratch_floats(s->dk));
    for (int i = 0; i < N_QUERIES * s->dk; i++) u->q[i] = s->q_amp * frand();
    for (int i = 0; i < N_QUERIES; i++) {
        if (s->rising) u->q[(size_t)i * s->dk] = s->q_amp * 2.0f;
        u->qs[i] = (ds_attn_query){.q = u->q + (size_t)i * s->dk, .out = u->out + (size_t)i * s->dv,
                                   .pos = query_pos(i)};
    }
}

static void free_setup(setup *u) {
    free_cache(&u->c, u->s);
    free(u->q), free(u->out), free(u->scratch);
}

/* All queries in one call (in the order given), outputs copied to res[query][dv]. */
static void run_all(setup *u, const int *order, float *res) {
    ds_attn_query qs[N_QUERIES];
    for (int i = 0; i < N_QUERIES; i++) qs[i] = u->qs[order[i]];
    ds_attention(&u->c.kv, qs, N_QUERIES, u->s->scale, u->scratch);
    memcpy(res, u->out, sizeof(float) * N_QUERIES * (size_t)u->s->dv);
}

static void test_against_double_reference(void **state) {
    const ds_cpu_level saved = ds_cpu_level_get();
    for (size_t si = 0; si < sizeof k_shapes / sizeof k_shapes[0]; si++) {
        const shape *s = &k_shapes[si];
        setup u;
        make_setup(s, &u);
        double *ref = malloc(sizeof(double) * (size_t)s->dv);
        int order[N_QUERIES];
        for (int i = 0; i < N_QUERIES; i++) order[i] = i;
        float *got = malloc(sizeof(float) * N_QUERIES * (size_t)s->dv);
        float *scalar = malloc(sizeof(float) * N_QUERIES * (size_t)s->dv);
        for (int lv = 0; lv < N_LEVELS; lv++) {
            if (ds_cpu_level_set(k_levels[lv]) != 0) continue;
            run_all(&u, order, got);
            if (lv == 0) memcpy(scalar, got, sizeof(float) * N_QUERIES * (size_t)s->dv);
            for (int i = 0; i < N_QUERIES; i++) {
                reference(&u.c, u.qs[i].q, u.qs[i].pos, s->scale, ref);
                for (int d = 0; d < s->dv; d++) {
                    const float g = got[(size_t)i * s->dv + d], sc = scalar[(size_t)i * s->dv + d];
                    if (!(fabs(g - ref[d]) <= s->tol))
                        fail_msg("%s dk=%d dv=%d query %d (pos %d) dim %d: %.9g, double reference %.9g",
                                 ds_cpu_level_name(k_levels[lv]), s->dk, s->dv, i, u.qs[i].pos, d, g, ref[d]);
                    if (!(fabsf(g - sc) <= s->tol))
                        fail_msg("%s dk=%d dv=%d query %d dim %d: %.9g, scalar %.9g", ds_cpu_level_name(k_levels[lv]),
                                 s->dk, s->dv, i, d, g, sc);
                }
            }
        }
        free(ref), free(got), free(scalar);
        free_setup(&u);
    }
    ds_cpu_level_set(saved);
}

/* Alone, in a group in order, in a group reversed, in a small group whose queries end in
 * different tiles: the same bytes, for every variant. */
static void test_grouping_invariance(void **state) {
    const ds_cpu_level saved = ds_cpu_level_get();
    for (size_t si = 0; si < sizeof k_shapes / sizeof k_shapes[0]; si++) {
        const shape *s = &k_shapes[si];
        setup u;
        make_setup(s, &u);
        const size_t n = N_QUERIES * (size_t)s->dv;
        float *alone = malloc(sizeof(float) * n), *fwd = malloc(sizeof(float) * n), *rev = malloc(sizeof(float) * n);
        int order[N_QUERIES], reversed[N_QUERIES];
        for (int i = 0; i < N_QUERIES; i++) order[i] = i, reversed[i] = N_QUERIES - 1 - i;
        for (int lv = 0; lv < N_LEVELS; lv++) {
            if (ds_cpu_level_set(k_levels[lv]) != 0) {
                print_message("skipping %s: not supported by this CPU\n", ds_cpu_level_name(k_levels[lv]));
                continue;
            }
            for (int i = 0; i < N_QUERIES; i++) {
                ds_attention(&u.c.kv, &u.qs[i], 1, s->scale, u.scratch);
                memcpy(alone + (size_t)i * s->dv, u.qs[i].out, sizeof(float) * (size_t)s->dv);
            }
            run_all(&u, order, fwd);
            run_all(&u, reversed, rev);
            for (int i = 0; i < N_QUERIES; i++) {
                const size_t o = (size_t)i * s->dv, bytes = sizeof(float) * (size_t)s->dv;
                if (memcmp(fwd + o, alone + o, bytes) || memcmp(rev + o, alone + o, bytes))
                    fail_msg("%s dk=%d: query %d (pos %d) differs between alone and grouped",
                             ds_cpu_level_name(k_levels[lv]), s->dk, i, u.qs[i].pos);
            }
            ds_attn_query trio[3] = {u.qs[5], u.qs[0], u.qs[12]};
            ds_attention(&u.c.kv, trio, 3, s->scale, u.scratch);
            assert_memory_equal(u.qs[5].out, alone + 5 * (size_t)s->dv, sizeof(float) * (size_t)s->dv);
            assert_memory_equal(u.qs[12].out, alone + 12 * (size_t)s->dv, sizeof(float) * (size_t)s->dv);
        }
        free(alone), free(fwd), free(rev);
        free_setup(&u);
    }
    ds_cpu_level_set(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_double_reference),
        cmocka_unit_test(test_grouping_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
