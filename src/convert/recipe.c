/* Recipes and the per-tensor type choice, following llama.cpp's published mixes
 * (llama_tensor_get_type): the output head gets Q6_K unless the file is Q8_0; the _m mixes also
 * give Q6_K to attn_v (attn_kv_b, attn_qkv) and to every ffn_down of the layers where
 * "more bits" pays off: the first and last eighth of the layers and every third one between. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "convert/convert_internal.h"

static const ds_recipe k_recipes[] = {
    {"q8_0", DS_Q8_0, false, 7},    {"q4_0", DS_Q4_0, false, 2},    {"q4_1", DS_Q4_1, false, 3},
    {"q5_0", DS_Q5_0, false, 8},    {"q5_1", DS_Q5_1, false, 9},    {"q4_k", DS_Q4_K, false, 14},
    {"q5_k", DS_Q5_K, false, 16},   {"q6_k", DS_Q6_K, false, 18},   {"q4_k_m", DS_Q4_K, true, 15},
    {"q5_k_m", DS_Q5_K, true, 17},  {"f16", DS_F16, false, 1},      {"bf16", DS_BF16, false, 32},
    {"f32", DS_F32, false, 0},
};
#define N_RECIPES (sizeof k_recipes / sizeof k_recipes[0])

int ds_recipe_find(const char *name, ds_recipe *out) {
    for (size_t i = 0; i < N_RECIPES; i++)
        if (!strcasecmp(k_recipes[i].name, name)) {
            *out = k_recipes[i];
            return 0;
        }
    return -1;
}

const char *ds_recipe_list(void) {
    static char list[256];
    if (!list[0])
        for (size_t i = 0; i < N_RECIPES; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, k_recipes[i].name, sizeof list - strlen(list) - 1);
        }
    return list;
}

static bool use_more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

/* The value projection in any of its forms: llama.cpp's most quantization-sensitive tensor. */
static bool is_attn_v(const char *name) {
    return strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight");
}

static bool is_output_head(const char *name, bool tied) {
    return !strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"));
}

static int layer_of(const char *name) {
    int l;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

/* The position of attn_v tensor i among all of them in llama.cpp's processing order: by layer
 * number, then by name (llama_model_loader sorts so), not in file order — GGUF files often
 * store blk.10 before blk.2, and counting in file order upgrades the wrong layers. */
static int attn_v_rank(const cv_plan *p, int i) {
    const int li = layer_of(p->t[i].name);
    int rank = 0;
    for (int j = 0; j < p->n; j++) {
        if (j == i || !p->t[j].quantizable || !is_attn_v(p->t[j].name)) continue;
        const int lj = layer_of(p->t[j].name);
        rank += lj < li || (lj == li && strcmp(p->t[j].name, p->t[i].name) < 0);
    }
    return rank;
}

/* A type whose blocks fit rows of length n: llama.cpp's fallbacks, then F16. */
static ds_dtype fit_row(ds_dtype t, int64_t n) {
    if (n % ds_dtype_block_elems(t) == 0) return t;
    switch (t) {
    case DS_Q4_K: t = DS_Q5_0; break;
    case DS_Q5_K: t = DS_Q5_1; break;
    case DS_Q6_K: t = DS_Q8_0; break;
    default: break;
    }
    return n % ds_dtype_block_elems(t) == 0 ? t : DS_F16;
}

void cv_choose_types(cv_plan *p, const ds_quantize_opts *o) {
    const ds_recipe *r = &o->recipe;
    const bool quantized = ds_dtype_block_elems(r->base) > 1;
    int n_attn_v = 0;
    for (int i = 0; i < p->n; i++) n_attn_v += p->t[i].quantizable && is_attn_v(p->t[i].name);
    for (int i = 0; i < p->n; i++) {
        cv_tensor *t = &p->t[i];
        if (!t->quantizable) {
            t->type = t->keep;
            continue;
        }
        ds_dtype type = r->base;
        if (quantized && !o->pure) {
            if (is_output_head(t->name, p->tied)) {
                if (r->base != DS_Q8_0) type = DS_Q6_K;
            } else if (r->mixed && is_attn_v(t->name)) {
                if (use_more_bits(attn_v_rank(p, i), n_attn_v)) type = DS_Q6_K;
            } else if (r->mixed && strstr(t->name, "ffn_down")) {
                int l = layer_of(t->name);
                if (l >= 0 && use_more_bits(l, p->n_layer)) type = DS_Q6_K;
            }
        }
        const int64_t row = t->shape[t->ndim - 1];
        t->type = fit_row(type, row);
        if (t->type != type && o->log)
            fprintf(o->log, "note: %s: row length %lld is not a multiple of the %s block size %d; using %s\n", t->name,
                    (long long)row, ds_dtype_name(type), ds_dtype_block_elems(type), ds_dtype_name(t->type));
    }
}
