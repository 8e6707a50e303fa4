/* Model-level code shared by both formats: loading dispatch, validation of hyper-parameters,
 * rotary frequencies, weight statistics, teardown. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/kernels.h"
#include "model/model_internal.h"

int ds_model_load(const char *path, ds_model **out, ds_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return ds_errf(err, "%s: no such file or directory", path);
    ds_model *m = calloc(1, sizeof *m);
    if (!m) return ds_errf(err, "out of memory");
    m->path = strdup(path);
    m->bos_id = -1;
    int rc = S_ISDIR(st.st_mode) ? ds_load_hf_dir(path, m, err) : ds_load_gguf(path, m, err);
    if (rc == 0) rc = ds_model_finish(m, err);
    if (rc != 0) {
        ds_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void ds_model_free(ds_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int l = 0; m->layers && l < m->hp.n_layer; l++) {
        free(m->layers[l].w_uk_t); /* also holds w_uv */
        free(m->layers[l].exp_gate); /* also holds exp_up, exp_down */
    }
    free(m->layers);
    free(m->rope_inv_freq);
    if (m->free_storage) m->free_storage(m->storage);
    free(m->path);
    free(m->format);
    free(m->arch_name);
    free(m);
}

float *ds_model_alloc_f32(ds_model *m, size_t n) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        float **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) return NULL;
        m->owned = o;
        m->cap_owned = cap;
    }
    float *buf = malloc((n ? n : 1) * sizeof(float));
    if (buf) m->owned[m->n_owned++] = buf;
    return buf;
}

int ds_model_own_f32(ds_model *m, const ds_tensor *t, int64_t n, float **out, ds_err *err) {
    if (ds_tensor_nelems(t) != n || t->ndim != 1)
        return ds_errf(err, "tensor '%s': expected shape [%lld], got %d dims with %lld elements",
                       t->name, (long long)n, t->ndim, (long long)ds_tensor_nelems(t));
    if (t->type == DS_F8_E4M3 || !ds_dtype_can_dequantize(t->type))
        return ds_errf(err, "tensor '%s': type %s is not supported for a vector", t->name, ds_dtype_name(t->type));
    float *buf = ds_model_alloc_f32(m, (size_t)n);
    if (!buf) return ds_errf(err, "out of memory");
    ds_dequantize_row(t->type, t->data, buf, n);
    *out = buf;
    return 0;
}

int ds_check_weight(const ds_tensor *t, int64_t rows, int64_t cols, const char *where, ds_err *err) {
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char got[96] = "";
        int n = 0;
        for (int i = 0; i < t->ndim && n < (int)sizeof got - 24; i++)
            n += snprintf(got + n, sizeof got - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        return ds_errf(err, "%s: tensor '%s' has shape [%s], expected [%lld, %lld]", where, t->name,
                       got, (long long)rows, (long long)cols);
    }
    if (!ds_matmul_supports(t->type))
        return ds_errf(err, "%s: tensor '%s' has type %s, which dsinfer cannot compute with yet", where,
                       t->name, ds_dtype_name(t->type));
    return 0;
}

void ds_model_add_eos(ds_model *m, int id) {
    if (id < 0 || id == m->bos_id) return;
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == id) return;
    if (m->n_eos < (int)(sizeof m->eos_ids / sizeof m->eos_ids[0])) m->eos_ids[m->n_eos++] = id;
}

/* yarn's "mscale": 0.1·m·ln(factor) + 1 (1 for factor ≤ 1). */
static float yarn_get_mscale(float factor, float m) { return factor <= 1 ? 1.0f : 0.1f * m * logf(factor) + 1.0f; }

/* Rotary inverse frequencies for `dim` rotated dimensions, computed in float32 the way
 * transformers does (modeling_rope_utils: default, linear, llama3; DeepSeek's yarn). */
static void rope_frequencies(const ds_hparams *hp, int dim, float *inv) {
    const int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv[i] = 1.0f / powf(hp->rope_theta, e);
    }
    if (hp->rope_scaling == DS_ROPE_SCALING_LINEAR) {
        for (int i = 0; i < half; i++) inv[i] /= hp->rope_factor;
    } else if (hp->rope_scaling == DS_ROPE_SCALING_LLAMA3) {
        const float factor = hp->rope_factor, lo = hp->rope_low_freq_factor, hi = hp->rope_high_freq_factor;
        const float old_ctx = (float)hp->rope_orig_ctx;
        const float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
        for (int i = 0; i < half; i++) {
            float wavelen = 2.0f * (float)M_PI / inv[i];
            float scaled = wavelen > low_wavelen ? inv[i] / factor : inv[i];
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                float smooth = (old_ctx / wavelen - lo) / (hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            inv[i] = scaled;
        }
    } else if (hp->rope_scaling == DS_ROPE_SCALING_YARN) {
        /* MODELS.md §5: keep high frequencies, divide low ones by the factor, blend between. */
        const double base = hp->rope_theta, orig = hp->rope_orig_ctx;
        double lo = floor(dim * log(orig / (hp->yarn_beta_fast * 2 * M_PI)) / (2 * log(base)));
        double hi = ceil(dim * log(orig / (hp->yarn_beta_slow * 2 * M_PI)) / (2 * log(base)));
        if (lo < 0) lo = 0;
        if (hi > dim - 1) hi = dim - 1;
        if (hi == lo) hi += 0.001;
        for (int i = 0; i < half; i++) {
            float pos_freq = powf(hp->rope_theta, (float)(2 * i) / (float)dim);
            float extra = 1.0f / pos_freq, inter = 1.0f / (hp->rope_factor * pos_freq);
            float ramp = (float)(((double)i - lo) / (hi - lo));
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float keep = 1.0f - ramp;
            inv[i] = inter * (1.0f - keep) + extra * keep;
        }
    }
}

int ds_model_finish(ds_model *m, ds_err *err) {
    ds_hparams *hp = &m->hp;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->head_dim <= 0 || hp->n_ff <= 0 || hp->n_vocab <= 0)
        return ds_errf(err, "%s: hyper-parameters must be positive (hidden %d, layers %d, heads %d, "
                       "kv heads %d, head_dim %d, intermediate %d, vocab %d)", m->path, hp->n_embd,
                       hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_vocab);
    if (hp->arch == DS_ARCH_DEEPSEEK2 && ds_deepseek2_check(m, err)) return -1;
    if (hp->n_head % hp->n_head_kv != 0)
        return ds_errf(err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       m->path, hp->n_head, hp->n_head_kv);
    if (hp->head_dim % 2 != 0) return ds_errf(err, "%s: head_dim %d is odd", m->path, hp->head_dim);
    if (hp->rope_theta <= 0) return ds_errf(err, "%s: rope_theta must be positive", m->path);
    if (hp->rope_scaling != DS_ROPE_SCALING_NONE && !(hp->rope_factor > 0))
        return ds_errf(err, "%s: rope_scaling factor must be positive", m->path);
    if (hp->rope_scaling == DS_ROPE_SCALING_LLAMA3 &&
        !(hp->rope_orig_ctx > 0 && hp->rope_high_freq_factor > hp->rope_low_freq_factor && hp->rope_low_freq_factor > 0))
        return ds_errf(err, "%s: llama3 rope_scaling needs original_max_position_embeddings > 0 and "
                       "high_freq_factor > low_freq_factor > 0", m->path);
    if (hp->n_ctx_train <= 0) hp->n_ctx_train = 2048;
    if (m->n_vocab_tokens <= 0 || m->n_vocab_tokens > hp->n_vocab) m->n_vocab_tokens = hp->n_vocab;
    const int rope_dims = hp->arch == DS_ARCH_DEEPSEEK2 ? hp->qk_rope_dim : hp->head_dim;
    if (!m->rope_inv_freq) {
        m->rope_inv_freq = malloc(sizeof(float) * (size_t)(rope_dims / 2));
        if (!m->rope_inv_freq) return ds_errf(err, "out of memory");
        rope_frequencies(hp, rope_dims, m->rope_inv_freq);
    }
    m->rope_attn_factor = 1.0f;
    m->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (hp->rope_scaling == DS_ROPE_SCALING_YARN) {
        m->rope_attn_factor = yarn_get_mscale(hp->rope_factor, hp->yarn_mscale) /
                              yarn_get_mscale(hp->rope_factor, hp->yarn_mscale_all_dim);
        if (hp->yarn_mscale_all_dim != 0) {
            float ms = yarn_get_mscale(hp->rope_factor, hp->yarn_mscale_all_dim);
            m->attn_scale *= ms * ms;
        }
    }
    /* BOS never stops generation, even where a config lists it as EOS. */
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == m->bos_id) m->eos_ids[i--] = m->eos_ids[--m->n_eos];
    return 0;
}

/* Calls fn on every weight the model computes with, with the fraction of it one decode step
 * reads (1; one row of the embedding; K of N experts). */
typedef void (*weight_fn)(const ds_tensor *t, double read_fraction, void *ctx);

static void for_each_weight(const ds_model *m, weight_fn fn, void *ctx) {
    const ds_hparams *hp = &m->hp;
    const bool tied = m->output.data == m->tok_embd.data;
    fn(&m->tok_embd, tied ? 1.0 : 1.0 / (double)m->tok_embd.shape[0], ctx);
    if (!tied) fn(&m->output, 1.0, ctx);
    for (int l = 0; l < hp->n_layer; l++) {
        const ds_layer *L = &m->layers[l];
        const ds_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &L->wq_a,
                                 &L->wq_b, &L->wkv_a, &L->gate_inp, &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) fn(ws[i], 1.0, ctx);
        for (int h = 0; L->w_uk_t && h < hp->n_head; h++) {
            fn(&L->w_uk_t[h], 1.0, ctx);
            fn(&L->w_uv[h], 1.0, ctx);
        }
        for (int e = 0; L->exp_gate && e < hp->n_expert; e++) {
            const double f = (double)hp->n_expert_used / hp->n_expert;
            fn(&L->exp_gate[e], f, ctx);
            fn(&L->exp_up[e], f, ctx);
            fn(&L->exp_down[e], f, ctx);
        }
    }
}

/* f32 vectors (norms, biases) the model keeps beside its weights. */
static int64_t vector_params(const ds_model *m) {
    const ds_hparams *hp = &m->hp;
    int64_t n = hp->n_embd * (1 + 2 * (int64_t)hp->n_layer);
    if (hp->attn_bias) n += (int64_t)hp->n_layer * (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    for (int l = 0; l < hp->n_layer; l++) {
        const ds_layer *L = &m->layers[l];
        if (L->q_a_norm) n += hp->q_lora_rank;
        if (L->kv_a_norm) n += hp->kv_lora_rank;
        if (L->exp_bias) n += hp->n_expert;
    }
    return n;
}

typedef struct stats_acc {
    int64_t params;
    uint64_t *bytes;
    double read;
} stats_acc;

static void add_stats(const ds_tensor *t, double read_fraction, void *ctx) {
    stats_acc *a = ctx;
    if (!t->data) return;
    a->params += ds_tensor_nelems(t);
    a->bytes[t->type] += t->nbytes;
    a->read += (double)t->nbytes * read_fraction;
}

void ds_model_weight_stats(const ds_model *m, int64_t *n_params, uint64_t bytes[DS_DTYPE_COUNT]) {
    memset(bytes, 0, sizeof(uint64_t) * DS_DTYPE_COUNT);
    stats_acc a = {.bytes = bytes};
    for_each_weight(m, add_stats, &a);
    const int64_t vec = vector_params(m);
    *n_params = a.params + vec;
    bytes[DS_F32] += (uint64_t)vec * 4;
}

uint64_t ds_model_decode_bytes(const ds_model *m) {
    uint64_t bytes[DS_DTYPE_COUNT] = {0};
    stats_acc a = {.bytes = bytes};
    for_each_weight(m, add_stats, &a);
    return (uint64_t)(a.read + 0.5) + (uint64_t)vector_params(m) * 4;
}

void ds_model_kv_widths(const ds_model *m, int *width_k, int *width_v) {
    if (m->hp.arch == DS_ARCH_DEEPSEEK2) {
        /* MLA: the normalized latent and the roped shared key; V is read from the latent */
        *width_k = m->hp.kv_lora_rank + m->hp.qk_rope_dim;
        *width_v = 0;
        return;
    }
    *width_k = *width_v = m->hp.n_head_kv * m->hp.head_dim;
}
