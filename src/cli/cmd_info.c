/* dsinfer info: what a model is and what it costs to run — architecture, shapes, parameter
 * count, bytes per dtype, and memory for weights plus KV cache at a given context. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/model.h"

#define CMD "info"
#define KV_BLOCK 16

static const char *rope_scaling_name(ds_rope_scaling s) {
    return s == DS_ROPE_SCALING_LINEAR ? "linear" : s == DS_ROPE_SCALING_LLAMA3 ? "llama3" : s == DS_ROPE_SCALING_YARN ? "yarn" : "none";
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int64_t ctx = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c")) {
            if (!(v = arg_value(argc, argv, &i, CMD)) || arg_int(CMD, "--ctx", v, 1, 1 << 30, &ctx)) return 2;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dsinfer info MODEL [--ctx N] [--json]\n"
                   "  --ctx N  context for the KV-cache estimate (default: the model's maximum)\n");
            return 0;
        } else if (argv[i][0] == '-' && strcmp(argv[i], "-m")) {
            fprintf(stderr, "dsinfer info: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "-m")) {
            if (!(path = arg_value(argc, argv, &i, CMD))) return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "usage: dsinfer info MODEL [--ctx N] [--json]\n");
        return 2;
    }
    ds_err err = {0};
    ds_model *m;
    if (ds_model_load(path, &m, &err)) {
        fprintf(stderr, "dsinfer info: %s\n", err.msg);
        return 1;
    }
    const ds_hparams *hp = &m->hp;
    if (!ctx) ctx = hp->n_ctx_train;
    int64_t n_params;
    uint64_t bytes[DS_DTYPE_COUNT], total = 0;
    ds_model_weight_stats(m, &n_params, bytes);
    for (int t = 0; t < DS_DTYPE_COUNT; t++) total += bytes[t];
    int wk, wv;
    ds_model_kv_widths(m, &wk, &wv);
    const uint64_t kv_token = (uint64_t)hp->n_layer * (uint64_t)(wk + wv) * sizeof(float);
    const uint64_t kv_total = ds_kv_bytes(hp->n_layer, wk, wv, KV_BLOCK, ctx);
    /* What a cache of per-head K and V would cost (MLA stores one latent per token instead). */
    const uint64_t kv_naive = hp->arch == DS_ARCH_DEEPSEEK2
                                  ? (uint64_t)hp->n_layer * hp->n_head * (hp->head_dim + hp->v_head_dim) * sizeof(float)
                                  : kv_token;
    const char *family = hp->arch == DS_ARCH_QWEN2 ? "qwen2" : hp->arch == DS_ARCH_DEEPSEEK2 ? "deepseek2" : "llama";
    if (json) {
        json_t *by_type = json_object();
        for (int t = 0; t < DS_DTYPE_COUNT; t++)
            if (bytes[t]) json_object_set_new(by_type, ds_dtype_name((ds_dtype)t), json_integer((json_int_t)bytes[t]));
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:I, s:o, s:I, s:I, s:I, "
            "s:s, s:I, s:I, s:I, s:I}",
            "path", path, "format", m->format, "architecture", m->arch_name, "family", family, "vocab_size",
            hp->n_vocab, "vocab_tokens", m->n_vocab_tokens, "hidden_size", hp->n_embd, "layers", hp->n_layer,
            "heads", hp->n_head, "kv_heads", hp->n_head_kv, "head_dim", hp->head_dim, "intermediate_size", hp->n_ff,
            "max_context", hp->n_ctx_train, "rope_theta", (double)hp->rope_theta, "rope_scaling",
            rope_scaling_name(hp->rope_scaling), "parameters", (json_int_t)n_params, "bytes_per_dtype", by_type,
            "weight_bytes", (json_int_t)total, "context", (json_int_t)ctx, "kv_bytes_per_token", (json_int_t)kv_token,
            "kv_dtype", "F32", "kv_bytes", (json_int_t)kv_total, "total_bytes", (json_int_t)(total + kv_total),
            "decode_bytes_per_token", (json_int_t)ds_model_decode_bytes(m), "kv_bytes_per_token_naive", (json_int_t)kv_naive);
        char *text = o ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;
        if (!text) {
            fprintf(stderr, "dsinfer info: cannot encode JSON (is the path valid UTF-8?)\n");
            json_decref(o);
            ds_model_free(m);
            return 1;
        }
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("model:          %s (%s)\n", path, m->format);
        printf("architecture:   %s (%s family)\n", m->arch_name, family);
        printf("shape:          hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, intermediate %d\n",
               hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff);
        if (hp->arch == DS_ARCH_DEEPSEEK2) {
            static const char *methods[] = {"greedy", "group_limited_greedy", "noaux_tc"};
            printf("MLA:            q_lora %d, kv_lora %d, qk nope/rope %d/%d, v %d\n", hp->q_lora_rank, hp->kv_lora_rank,
                   hp->qk_nope_dim, hp->qk_rope_dim, hp->v_head_dim);
            if (hp->n_expert)
                printf("MoE:            %d experts (%d per token, %d shared) of %d, from layer %d; %s, %s, groups %d/%d, "
                       "scale %g%s\n", hp->n_expert, hp->n_expert_used, hp->n_expert_shared, hp->moe_ff, hp->first_dense,
                       methods[hp->topk_method], hp->scoring == DS_MOE_SIGMOID ? "sigmoid" : "softmax", hp->topk_group,
                       hp->n_group, hp->routed_scale, hp->norm_topk_prob ? ", normalized" : "");
        }
        printf("vocabulary:     %d rows (%d tokens)\n", hp->n_vocab, m->n_vocab_tokens);
        printf("context:        %d (rope theta %g, scaling %s)\n", hp->n_ctx_train, hp->rope_theta,
               rope_scaling_name(hp->rope_scaling));
        printf("parameters:     %lld (%.3f B)\n", (long long)n_params, (double)n_params / 1e9);
        printf("weights:\n");
        for (int t = 0; t < DS_DTYPE_COUNT; t++)
            if (bytes[t])
                printf("  %-8s %12llu bytes (%.1f MiB)\n", ds_dtype_name((ds_dtype)t), (unsigned long long)bytes[t],
                       (double)bytes[t] / (1 << 20));
        printf("decode reads:   %.1f MiB of weights per token\n", (double)ds_model_decode_bytes(m) / (1 << 20));
        printf("KV cache:       %llu bytes per token (F32); %.1f MiB at context %lld\n", (unsigned long long)kv_token,
               (double)kv_total / (1 << 20), (long long)ctx);
        if (kv_naive != kv_token)
            printf("                (MLA latent cache; per-head K and V would take %llu bytes per token, %.1fx more)\n",
                   (unsigned long long)kv_naive, (double)kv_naive / (double)kv_token);
        printf("memory:         %.1f MiB weights + %.1f MiB KV cache = %.1f MiB\n", (double)total / (1 << 20),
               (double)kv_total / (1 << 20), (double)(total + kv_total) / (1 << 20));
    }
    ds_model_free(m);
    return 0;
}
