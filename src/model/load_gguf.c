/* GGUF files of the `llama` and `qwen2` architectures, with llama.cpp's key and tensor names.
 * llama.cpp permutes the Q/K rows of Llama checkpoints so that rotary pairs are adjacent
 * (rope style NORM); Qwen2 files keep Hugging Face's layout (NEOX). Llama-3 rope scaling comes
 * as a precomputed `rope_freqs.weight` tensor of per-frequency divisors. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "model/model_internal.h"

static void gguf_storage_free(void *p) {
    gguf_file *g = p;
    if (!g) return;
    gguf_close(g);
    free(g);
}

/* Integer hyper-parameter "<arch>.<key>"; required unless a default is given (def >= 0). */
int gg_arch_int(const gguf_file *g, const char *arch, const char *key, int64_t def, int *out, ds_err *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    int rc = gguf_get_int(g, full, &v, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (def < 0) return ds_errf(err, "%s: missing required key '%s'", g->label, full);
        v = def;
    }
    if (v < 0 || v > INT_MAX) return ds_errf(err, "%s: key '%s' is out of range (%lld)", g->label, full, (long long)v);
    *out = (int)v;
    return 0;
}

int gg_arch_float(const gguf_file *g, const char *arch, const char *key, double def, float *out, ds_err *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    int rc = gguf_get_float(g, full, &v, err);
    if (rc < 0) return -1;
    *out = (float)(rc ? v : def);
    return 0;
}

int gg_bind_weight(const gguf_file *g, const char *name, int64_t rows, int64_t cols, ds_tensor *out, ds_err *err) {
    const ds_tensor *t = gguf_find_tensor(g, name);
    if (!t) return ds_errf(err, "%s: missing tensor '%s'", g->label, name);
    *out = *t;
    return ds_check_weight(t, rows, cols, g->label, err);
}

int gg_bind_vector(ds_model *m, const gguf_file *g, const char *name, int64_t n, float **out, ds_err *err) {
    const ds_tensor *t = gguf_find_tensor(g, name);
    if (!t) return ds_errf(err, "%s: missing tensor '%s'", g->label, name);
    if (ds_model_own_f32(m, t, n, out, err)) return ds_err_wrap(err, "%s", g->label);
    return 0;
}

static int read_hparams(const gguf_file *g, const char *arch, ds_hparams *hp, ds_err *err) {
    if (gg_arch_int(g, arch, "embedding_length", -1, &hp->n_embd, err) ||
        gg_arch_int(g, arch, "block_count", -1, &hp->n_layer, err) ||
        gg_arch_int(g, arch, "feed_forward_length", -1, &hp->n_ff, err) ||
        gg_arch_int(g, arch, "attention.head_count", -1, &hp->n_head, err) ||
        gg_arch_int(g, arch, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, err) ||
        gg_arch_int(g, arch, "context_length", 2048, &hp->n_ctx_train, err) ||
        gg_arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5, &hp->rms_eps, err) ||
        gg_arch_float(g, arch, "rope.freq_base", 10000.0, &hp->rope_theta, err))
        return -1;
    if (hp->n_head <= 0) return ds_errf(err, "%s: %s.attention.head_count must be positive", g->label, arch);
    if (hp->arch == DS_ARCH_DEEPSEEK2) return gg_read_deepseek2(g, hp, err);
    if (gg_arch_int(g, arch, "attention.key_length", hp->n_embd / hp->n_head, &hp->head_dim, err)) return -1;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    gguf_str type = {0};
    int rc = gguf_get_str(g, key, &type, err);
    if (rc < 0) return -1;
    hp->rope_scaling = DS_ROPE_SCALING_NONE;
    if (rc == 1 && !(type.len == 4 && !memcmp(type.ptr, "none", 4))) {
        if (!(type.len == 6 && !memcmp(type.ptr, "linear", 6)))
            return ds_errf(err, "%s: %s '%.*s' is not supported for this architecture (none, linear)",
                           g->label, key, (int)(type.len > 32 ? 32 : type.len), type.ptr);
        hp->rope_scaling = DS_ROPE_SCALING_LINEAR;
        if (gg_arch_float(g, arch, "rope.scaling.factor", 1.0, &hp->rope_factor, err)) return -1;
    }
    return 0;
}

/* Llama-3 style scaling: inv_freq[i] = theta^(-2i/d) / rope_freqs[i]. */
static int read_rope_freqs(ds_model *m, const gguf_file *g, ds_err *err) {
    const ds_tensor *t = gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return 0;
    const int half = m->hp.head_dim / 2;
    float *factors;
    if (ds_model_own_f32(m, t, half, &factors, err)) return ds_err_wrap(err, "%s", g->label);
    m->rope_inv_freq = malloc(sizeof(float) * (size_t)half);
    if (!m->rope_inv_freq) return ds_errf(err, "out of memory");
    for (int i = 0; i < half; i++) {
        if (!(factors[i] > 0)) return ds_errf(err, "%s: rope_freqs.weight[%d] must be positive", g->label, i);
        float e = (float)(2 * i) / (float)m->hp.head_dim;
        m->rope_inv_freq[i] = 1.0f / powf(m->hp.rope_theta, e) / factors[i];
    }
    return 0;
}

static int read_tokens(ds_model *m, const gguf_file *g, ds_err *err) {
    const gguf_kv *tokens = gguf_find(g, "tokenizer.ggml.tokens");
    if (tokens && tokens->type == GGUF_ARRAY) {
        m->has_tokenizer = true;
        m->n_vocab_tokens = tokens->arr_len > INT_MAX ? INT_MAX : (int)tokens->arr_len;
    }
    int64_t id;
    int rc = gguf_get_int(g, "tokenizer.ggml.bos_token_id", &id, err);
    if (rc < 0) return -1;
    if (rc) m->bos_id = (int)id;
    const char *eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof eos_keys / sizeof eos_keys[0]; i++) {
        if ((rc = gguf_get_int(g, eos_keys[i], &id, err)) < 0) return -1;
        if (rc) ds_model_add_eos(m, (int)id);
    }
    m->sampling = (ds_sampling_defaults){.temperature = 1.0f, .top_p = 1.0f, .repetition_penalty = 1.0f};
    return 0;
}

/* One Llama / Qwen2 decoder layer. */
static int bind_dense_layer(ds_model *m, const gguf_file *g, int l, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    ds_layer *L = &m->layers[l];
    char n[96];
#define NAME(fmt) (snprintf(n, sizeof n, "blk.%d." fmt, l), n)
    if (gg_bind_vector(m, g, NAME("attn_norm.weight"), E, &L->attn_norm, err) ||
        gg_bind_vector(m, g, NAME("ffn_norm.weight"), E, &L->ffn_norm, err) ||
        gg_bind_weight(g, NAME("attn_q.weight"), Q, E, &L->wq, err) ||
        gg_bind_weight(g, NAME("attn_k.weight"), KV, E, &L->wk, err) ||
        gg_bind_weight(g, NAME("attn_v.weight"), KV, E, &L->wv, err) ||
        gg_bind_weight(g, NAME("attn_output.weight"), E, Q, &L->wo, err) ||
        gg_bind_weight(g, NAME("ffn_gate.weight"), hp->n_ff, E, &L->w_gate, err) ||
        gg_bind_weight(g, NAME("ffn_up.weight"), hp->n_ff, E, &L->w_up, err) ||
        gg_bind_weight(g, NAME("ffn_down.weight"), E, hp->n_ff, &L->w_down, err))
        return -1;
    if (hp->attn_bias &&
        (gg_bind_vector(m, g, NAME("attn_q.bias"), Q, &L->bq, err) ||
         gg_bind_vector(m, g, NAME("attn_k.bias"), KV, &L->bk, err) ||
         gg_bind_vector(m, g, NAME("attn_v.bias"), KV, &L->bv, err)))
        return -1;
#undef NAME
    return 0;
}

int ds_load_gguf(const char *path, ds_model *m, ds_err *err) {
    m->format = strdup("gguf");
    gguf_file *g = calloc(1, sizeof *g);
    if (!g) return ds_errf(err, "out of memory");
    if (gguf_open(path, g, err)) {
        free(g);
        return -1;
    }
    m->storage = g;
    m->free_storage = gguf_storage_free;
    gguf_str arch_s;
    int rc = gguf_get_str(g, "general.architecture", &arch_s, err);
    if (rc < 0) return -1;
    if (rc == 0) return ds_errf(err, "%s: missing required key 'general.architecture'", path);
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(arch_s.len < 63 ? arch_s.len : 63), arch_s.ptr);
    m->arch_name = strdup(arch);
    ds_hparams *hp = &m->hp;
    if (!strcmp(arch, "llama")) {
        hp->arch = DS_ARCH_LLAMA;
        hp->rope_style = DS_ROPE_NORM;
    } else if (!strcmp(arch, "qwen2")) {
        hp->arch = DS_ARCH_QWEN2;
        hp->rope_style = DS_ROPE_NEOX;
        hp->attn_bias = true;
    } else if (!strcmp(arch, "deepseek2")) {
        hp->arch = DS_ARCH_DEEPSEEK2;
        hp->rope_style = DS_ROPE_NORM;
    } else {
        return ds_errf(err, "%s: unknown architecture '%s' (supported: llama, qwen2, deepseek2)", path, arch);
    }
    if (read_hparams(g, arch, hp, err)) return -1;
    if (hp->arch == DS_ARCH_DEEPSEEK2 && ds_deepseek2_check(m, err)) return -1;
    const ds_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return ds_errf(err, "%s: missing tensor 'token_embd.weight'", path);
    if (emb->ndim != 2) return ds_errf(err, "%s: tensor 'token_embd.weight' must be 2-D", path);
    if (emb->shape[0] > INT_MAX) return ds_errf(err, "%s: vocabulary too large", path);
    hp->n_vocab = (int)emb->shape[0];
    const int64_t E = hp->n_embd;
    if (gg_bind_weight(g, "token_embd.weight", hp->n_vocab, E, &m->tok_embd, err)) return -1;
    if (gg_bind_vector(m, g, "output_norm.weight", E, &m->out_norm, err)) return -1;
    if (gguf_find_tensor(g, "output.weight")) {
        if (gg_bind_weight(g, "output.weight", hp->n_vocab, E, &m->output, err)) return -1;
    } else {
        m->output = m->tok_embd;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return ds_errf(err, "out of memory");
    for (int l = 0; l < hp->n_layer; l++)
        if (hp->arch == DS_ARCH_DEEPSEEK2 ? gg_bind_deepseek2_layer(m, g, l, err) : bind_dense_layer(m, g, l, err))
            return -1;
    if (read_rope_freqs(m, g, err)) return -1;
    return read_tokens(m, g, err);
}
