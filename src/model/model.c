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
    free(m->layers);
    free(m->rope_inv_freq);
    if (m->free_storage) m->free_storage(m->storage);
    free(m->path);
    free(m->format);
    free(m->arch_name);
    free(m);
}

int ds_model_own_f32(ds_model *m, const ds_tensor *t, int64_t n, float **out, ds_err *err) {
    if (ds_tensor_nelems(t) != n || t->ndim != 1)
        return ds_errf(err, "tensor '%s': expected shape [%lld], got %d dims with %lld elements",
                       t->name, (long long)n, t->ndim, (long long)ds_tensor_nelems(t));
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return ds_errf(err, "out of memory");
    if (ds_dequantize_row(t->type, t->data, buf, n) != 0) {
        free(buf);
        return ds_errf(err, "tensor '%s': type %s is not supported for a vector", t->name,
                       ds_dtype_name(t->type));
    }
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        float **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(buf);
            return ds_errf(err, "out of memory");
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = buf;
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

/* Rotary inverse frequencies, computed in float32 the way transformers does
 * (modeling_rope_utils: default, linear and llama3 rope types). */
static void rope_frequencies(const ds_hparams *hp, float *inv) {
    const int half = hp->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)hp->head_dim;
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
    }
}

int ds_model_finish(ds_model *m, ds_err *err) {
    ds_hparams *hp = &m->hp;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->head_dim <= 0 || hp->n_ff <= 0 || hp->n_vocab <= 0)
        return ds_errf(err, "%s: hyper-parameters must be positive (hidden %d, layers %d, heads %d, "
                       "kv heads %d, head_dim %d, intermediate %d, vocab %d)", m->path, hp->n_embd,
                       hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_vocab);
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
    if (!m->rope_inv_freq) {
        m->rope_inv_freq = malloc(sizeof(float) * (size_t)(hp->head_dim / 2));
        if (!m->rope_inv_freq) return ds_errf(err, "out of memory");
        rope_frequencies(hp, m->rope_inv_freq);
    }
    /* BOS never stops generation, even where a config lists it as EOS. */
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == m->bos_id) m->eos_ids[i--] = m->eos_ids[--m->n_eos];
    return 0;
}

static void count(const ds_tensor *t, int64_t *n_params, uint64_t bytes[DS_DTYPE_COUNT]) {
    if (!t->data) return;
    *n_params += ds_tensor_nelems(t);
    bytes[t->type] += t->nbytes;
}

void ds_model_weight_stats(const ds_model *m, int64_t *n_params, uint64_t bytes[DS_DTYPE_COUNT]) {
    *n_params = 0;
    memset(bytes, 0, sizeof(uint64_t) * DS_DTYPE_COUNT);
    const ds_hparams *hp = &m->hp;
    count(&m->tok_embd, n_params, bytes);
    if (m->output.data != m->tok_embd.data) count(&m->output, n_params, bytes);
    /* Vectors (norms, biases) are counted as the f32 copies the model keeps. */
    int64_t vec = hp->n_embd * (1 + 2 * (int64_t)hp->n_layer);
    if (hp->attn_bias) vec += (int64_t)hp->n_layer * (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    *n_params += vec;
    bytes[DS_F32] += (uint64_t)vec * 4;
    for (int l = 0; l < hp->n_layer; l++) {
        const ds_layer *L = &m->layers[l];
        const ds_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) count(ws[i], n_params, bytes);
    }
}

uint64_t ds_model_decode_bytes(const ds_model *m) {
    int64_t n_params;
    uint64_t bytes[DS_DTYPE_COUNT], total = 0;
    ds_model_weight_stats(m, &n_params, bytes);
    for (int t = 0; t < DS_DTYPE_COUNT; t++) total += bytes[t];
    const uint64_t emb = m->tok_embd.nbytes, row = emb / (uint64_t)m->tok_embd.shape[0];
    /* A tied head reads the embedding as the output matrix anyway. */
    return m->output.data == m->tok_embd.data ? total : total - emb + row;
}

void ds_model_kv_widths(const ds_model *m, int *width_k, int *width_v) {
    *width_k = *width_v = m->hp.n_head_kv * m->hp.head_dim;
}
