/* Hugging Face model directories: config.json for the hyper-parameters, a single
 * model.safetensors or shards listed by model.safetensors.index.json for the weights, and
 * generation_config.json / tokenizer_config.json / tokenizer.json for BOS, EOS and sampling
 * defaults. config.json's bos/eos ids are wrong for several DeepSeek releases, so they are
 * used only when neither the generation config nor the tokenizer config names an EOS. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_util.h"
#include "format/safetensors.h"
#include "model/model_internal.h"

static int read_rope_scaling(const json_t *cfg, const char *file, ds_hparams *hp, ds_err *err) {
    /* transformers ≥ 5 writes rope_parameters (with rope_theta inside); older versions
     * rope_scaling. */
    const json_t *rs = json_object_get(cfg, "rope_parameters");
    const char *key = "rope_parameters";
    if (!rs || json_is_null(rs)) {
        rs = json_object_get(cfg, "rope_scaling");
        key = "rope_scaling";
    }
    hp->rope_scaling = DS_ROPE_SCALING_NONE;
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) return ds_errf(err, "%s: field '%s' must be an object or null", file, key);
    double theta;
    int rc = ds_json_num(rs, "rope_theta", file, &theta, err);
    if (rc < 0) return -1;
    if (rc == 1) hp->rope_theta = (float)theta;
    const char *type = NULL;
    if (ds_json_str(rs, "rope_type", file, &type, err) < 0) return -1;
    if (!type && ds_json_str(rs, "type", file, &type, err) < 0) return -1;
    if (!type || !strcmp(type, "default")) return 0;
    double v;
    if (!strcmp(type, "linear")) {
        hp->rope_scaling = DS_ROPE_SCALING_LINEAR;
    } else if (!strcmp(type, "llama3")) {
        hp->rope_scaling = DS_ROPE_SCALING_LLAMA3;
        int64_t orig;
        if ((rc = ds_json_num(rs, "low_freq_factor", file, &v, err)) < 0) return -1;
        hp->rope_low_freq_factor = rc ? (float)v : 1.0f;
        if ((rc = ds_json_num(rs, "high_freq_factor", file, &v, err)) < 0) return -1;
        hp->rope_high_freq_factor = rc ? (float)v : 4.0f;
        if (ds_json_req_int(rs, "original_max_position_embeddings", file, &orig, err) < 0)
            return ds_err_wrap(err, "%s", key);
        hp->rope_orig_ctx = (int)orig;
    } else {
        return ds_errf(err, "%s: %s type '%s' is not supported for this architecture (supported: "
                       "default, linear, llama3)", file, key, type);
    }
    if ((rc = ds_json_num(rs, "factor", file, &v, err)) < 0) return -1;
    if (rc == 0) return ds_errf(err, "%s: %s of type '%s' needs a 'factor'", file, key, type);
    hp->rope_factor = (float)v;
    return 0;
}

static int read_config(const char *dir, ds_model *m, bool *tied, json_t **cfg_out, ds_err *err) {
    char path[PATH_MAX];
    if (hf_path_join(path, sizeof path, dir, "config.json", err)) return -1;
    json_t *cfg;
    if (ds_json_load_file(path, false, &cfg, err) < 0) return -1;
    *cfg_out = cfg;
    const json_t *archs = json_object_get(cfg, "architectures");
    const char *arch = json_is_array(archs) ? json_string_value(json_array_get(archs, 0)) : NULL;
    if (!arch) return ds_errf(err, "%s: missing required field 'architectures'", path);
    ds_hparams *hp = &m->hp;
    m->arch_name = strdup(arch);
    if (!strcmp(arch, "LlamaForCausalLM")) {
        hp->arch = DS_ARCH_LLAMA;
    } else if (!strcmp(arch, "Qwen2ForCausalLM")) {
        hp->arch = DS_ARCH_QWEN2;
        hp->attn_bias = true;
    } else if (!strcmp(arch, "DeepseekV2ForCausalLM") || !strcmp(arch, "DeepseekV3ForCausalLM")) {
        hp->arch = DS_ARCH_DEEPSEEK2;
    } else {
        return ds_errf(err, "%s: unknown architecture '%s' (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                       "DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)", path, arch);
    }
    hp->rope_style = DS_ROPE_NEOX;
    int64_t v;
    struct { const char *key; int *dst; } req[] = {
        {"hidden_size", &hp->n_embd}, {"num_hidden_layers", &hp->n_layer},
        {"num_attention_heads", &hp->n_head}, {"intermediate_size", &hp->n_ff},
        {"vocab_size", &hp->n_vocab},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        if (ds_json_req_int(cfg, req[i].key, path, &v, err) < 0) return -1;
        if (v <= 0 || v > INT_MAX) return ds_errf(err, "%s: field '%s' must be positive, got %lld", path, req[i].key, (long long)v);
        *req[i].dst = (int)v;
    }
    int rc;
    hp->n_head_kv = hp->n_head;
    if ((rc = ds_json_int(cfg, "num_key_value_heads", path, &v, err)) < 0) return -1;
    if (rc) hp->n_head_kv = (int)v;
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = ds_json_int(cfg, "head_dim", path, &v, err)) < 0) return -1;
    if (rc) hp->head_dim = (int)v;
    hp->n_ctx_train = 2048;
    if ((rc = ds_json_int(cfg, "max_position_embeddings", path, &v, err)) < 0) return -1;
    if (rc) hp->n_ctx_train = (int)(v > INT_MAX ? INT_MAX : v);
    double d;
    hp->rms_eps = 1e-6f;
    if ((rc = ds_json_num(cfg, "rms_norm_eps", path, &d, err)) < 0) return -1;
    if (rc) hp->rms_eps = (float)d;
    hp->rope_theta = 10000.0f;
    if ((rc = ds_json_num(cfg, "rope_theta", path, &d, err)) < 0) return -1;
    if (rc) hp->rope_theta = (float)d;
    if (hp->arch == DS_ARCH_DEEPSEEK2 ? hf_read_deepseek2_config(cfg, path, hp, err) : read_rope_scaling(cfg, path, hp, err))
        return -1;
    *tied = false;
    if (ds_json_bool(cfg, "tie_word_embeddings", path, tied, err) < 0) return -1;
    const char *act = "silu";
    if (ds_json_str(cfg, "hidden_act", path, &act, err) < 0) return -1;
    if (strcmp(act, "silu") != 0) return ds_errf(err, "%s: hidden_act '%s' is not supported (only silu)", path, act);
    return 0;
}

/* Resolves a token string (tokenizer_config's bos_token / eos_token, a string or an
 * AddedToken dict) to its id through tokenizer.json's added tokens and vocabulary. */
static int token_id(const json_t *tok_json, const json_t *spec) {
    const char *s = json_is_string(spec) ? json_string_value(spec)
                    : json_is_object(spec) ? json_string_value(json_object_get(spec, "content")) : NULL;
    if (!s || !tok_json) return -1;
    size_t i;
    json_t *at;
    json_array_foreach(json_object_get(tok_json, "added_tokens"), i, at) {
        const char *c = json_string_value(json_object_get(at, "content"));
        if (c && !strcmp(c, s)) return (int)json_integer_value(json_object_get(at, "id"));
    }
    json_t *id = json_object_get(json_object_get(json_object_get(tok_json, "model"), "vocab"), s);
    return json_is_integer(id) ? (int)json_integer_value(id) : -1;
}

/* Number of ids tokenizer.json defines: 1 + the largest id in its vocabulary or added tokens. */
static int tokenizer_size(const json_t *tok_json) {
    int64_t max = -1;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(tok_json, "model"), "vocab"), k, v)
        if (json_is_integer(v) && json_integer_value(v) > max) max = json_integer_value(v);
    size_t i;
    json_array_foreach(json_object_get(tok_json, "added_tokens"), i, v) {
        json_t *id = json_object_get(v, "id");
        if (json_is_integer(id) && json_integer_value(id) > max) max = json_integer_value(id);
    }
    return (int)(max + 1);
}

/* Adds eos_token_id (int or list) from obj; returns how many ids it gave. */
static int add_eos_field(ds_model *m, const json_t *obj, const char *file, ds_err *err) {
    const json_t *e = json_object_get(obj, "eos_token_id");
    if (!e || json_is_null(e)) return 0;
    if (json_is_integer(e)) {
        ds_model_add_eos(m, (int)json_integer_value(e));
        return 1;
    }
    if (!json_is_array(e)) return ds_errf(err, "%s: field 'eos_token_id' must be an integer or a list", file);
    size_t i;
    json_t *x;
    json_array_foreach(e, i, x) {
        if (!json_is_integer(x)) return ds_errf(err, "%s: eos_token_id[%zu] must be an integer", file, i);
        ds_model_add_eos(m, (int)json_integer_value(x));
    }
    return (int)json_array_size(e);
}

static int read_sampling(ds_model *m, const json_t *gen, const char *file, ds_err *err) {
    ds_sampling_defaults *sd = &m->sampling;
    *sd = (ds_sampling_defaults){.temperature = 1.0f, .top_p = 1.0f, .repetition_penalty = 1.0f};
    if (!gen) return 0;
    double v;
    int64_t k;
    int rc;
    if (ds_json_bool(gen, "do_sample", file, &sd->do_sample, err) < 0) return -1;
    if ((rc = ds_json_num(gen, "temperature", file, &v, err)) < 0) return -1;
    if (rc) sd->temperature = (float)v;
    if ((rc = ds_json_num(gen, "top_p", file, &v, err)) < 0) return -1;
    if (rc) sd->top_p = (float)v;
    if ((rc = ds_json_num(gen, "min_p", file, &v, err)) < 0) return -1;
    if (rc) sd->min_p = (float)v;
    if ((rc = ds_json_num(gen, "repetition_penalty", file, &v, err)) < 0) return -1;
    if (rc) sd->repetition_penalty = (float)v;
    if ((rc = ds_json_int(gen, "top_k", file, &k, err)) < 0) return -1;
    if (rc) sd->top_k = (int)k;
    return 0;
}

static int read_generation_info(const char *dir, ds_model *m, const json_t *cfg, ds_err *err) {
    char gen_path[PATH_MAX], tc_path[PATH_MAX], tok_path[PATH_MAX];
    if (hf_path_join(gen_path, sizeof gen_path, dir, "generation_config.json", err) ||
        hf_path_join(tc_path, sizeof tc_path, dir, "tokenizer_config.json", err) ||
        hf_path_join(tok_path, sizeof tok_path, dir, "tokenizer.json", err))
        return -1;
    json_t *gen = NULL, *tc = NULL, *tok = NULL;
    int rc = -1;
    if (ds_json_load_file(gen_path, true, &gen, err) < 0 || ds_json_load_file(tc_path, true, &tc, err) < 0 ||
        ds_json_load_file(tok_path, true, &tok, err) < 0)
        goto done;
    m->has_tokenizer = tok != NULL;
    if (tok) m->n_vocab_tokens = tokenizer_size(tok);
    int64_t id;
    int found;
    if ((found = ds_json_int(gen, "bos_token_id", gen_path, &id, err)) < 0) goto done;
    if (found) m->bos_id = (int)id;
    else if (tc && (id = token_id(tok, json_object_get(tc, "bos_token"))) >= 0) m->bos_id = (int)id;
    else if ((found = ds_json_int(cfg, "bos_token_id", "config.json", &id, err)) < 0) goto done;
    else if (found) m->bos_id = (int)id;
    int n_eos = add_eos_field(m, gen, gen_path, err);
    if (n_eos < 0) goto done;
    if (tc && (id = token_id(tok, json_object_get(tc, "eos_token"))) >= 0) {
        ds_model_add_eos(m, (int)id);
        n_eos++;
    }
    if (n_eos == 0 && add_eos_field(m, cfg, "config.json", err) < 0) goto done;
    rc = read_sampling(m, gen, gen_path, err);
done:
    json_decref(gen);
    json_decref(tc);
    json_decref(tok);
    return rc;
}

/* One Llama / Qwen2 decoder layer. */
static int bind_dense_layer(ds_model *m, const hf_storage *s, const char *dir, int l, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    ds_layer *L = &m->layers[l];
    char n[160];
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
    if (hf_bind_vector(m, s, dir, NAME("input_layernorm.weight"), E, &L->attn_norm, err) ||
        hf_bind_vector(m, s, dir, NAME("post_attention_layernorm.weight"), E, &L->ffn_norm, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.q_proj.weight"), Q, E, &L->wq, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.k_proj.weight"), KV, E, &L->wk, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.v_proj.weight"), KV, E, &L->wv, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.o_proj.weight"), E, Q, &L->wo, err) ||
        hf_bind_weight(m, s, dir, NAME("mlp.gate_proj.weight"), hp->n_ff, E, &L->w_gate, err) ||
        hf_bind_weight(m, s, dir, NAME("mlp.up_proj.weight"), hp->n_ff, E, &L->w_up, err) ||
        hf_bind_weight(m, s, dir, NAME("mlp.down_proj.weight"), E, hp->n_ff, &L->w_down, err))
        return -1;
    if (hp->attn_bias &&
        (hf_bind_vector(m, s, dir, NAME("self_attn.q_proj.bias"), Q, &L->bq, err) ||
         hf_bind_vector(m, s, dir, NAME("self_attn.k_proj.bias"), KV, &L->bk, err) ||
         hf_bind_vector(m, s, dir, NAME("self_attn.v_proj.bias"), KV, &L->bv, err)))
        return -1;
#undef NAME
    return 0;
}

int ds_load_hf_dir(const char *dir, ds_model *m, ds_err *err) {
    m->format = strdup("safetensors");
    json_t *cfg = NULL;
    bool tied;
    int rc = -1;
    if (read_config(dir, m, &tied, &cfg, err)) goto done;
    hf_storage *s = calloc(1, sizeof *s);
    if (!s) {
        ds_errf(err, "out of memory");
        goto done;
    }
    m->storage = s;
    m->free_storage = hf_storage_free;
    ds_hparams *hp = &m->hp;
    if (hp->arch == DS_ARCH_DEEPSEEK2 && ds_deepseek2_check(m, err)) goto done;
    if (hf_open_weights(dir, s, err)) goto done;
    const int64_t E = hp->n_embd;
    if (hf_bind_weight(m, s, dir, "model.embed_tokens.weight", hp->n_vocab, E, &m->tok_embd, err)) goto done;
    if (hf_bind_vector(m, s, dir, "model.norm.weight", E, &m->out_norm, err)) goto done;
    if (hf_find(s, "lm_head.weight") || !tied) {
        if (hf_bind_weight(m, s, dir, "lm_head.weight", hp->n_vocab, E, &m->output, err)) goto done;
    } else {
        m->output = m->tok_embd;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        ds_errf(err, "out of memory");
        goto done;
    }
    for (int l = 0; l < hp->n_layer; l++) {
        if (hp->arch == DS_ARCH_DEEPSEEK2 ? hf_bind_deepseek2_layer(m, s, dir, l, err) : bind_dense_layer(m, s, dir, l, err))
            goto done;
    }
    rc = read_generation_info(dir, m, cfg, err);
done:
    json_decref(cfg);
    return rc;
}
