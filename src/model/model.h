/* What a model is: hyper-parameters, weights bound to tensors in mapped files, the token ids
 * generation needs, and the forward pass over a batch of tokens from many sequences.
 * Dense families only here (Llama and Qwen2 architectures, from Hugging Face directories or
 * GGUF files); DeepSeek-V2/V3 (MLA + MoE) will be a second family behind the same API. */
#ifndef DS_MODEL_MODEL_H
#define DS_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "model/kv_cache.h"
#include "tensor/tensor.h"

/* Dense Llama / Qwen2, or DeepSeek-V2/V3 (MLA attention + DeepSeekMoE), which share code. */
typedef enum ds_arch { DS_ARCH_LLAMA, DS_ARCH_QWEN2, DS_ARCH_DEEPSEEK2 } ds_arch;

typedef enum ds_moe_scoring { DS_MOE_SOFTMAX, DS_MOE_SIGMOID } ds_moe_scoring;

/* How experts are chosen (MODELS.md §4): top-k over all experts; top-k within the best groups
 * by max score (V2); or by biased scores within the best groups by top-2 sum (V3). */
typedef enum ds_moe_topk { DS_MOE_GREEDY, DS_MOE_GROUP_LIMITED_GREEDY, DS_MOE_NOAUX_TC } ds_moe_topk;

/* How rotary embedding pairs dimensions: NEOX pairs j with j + d/2 (Hugging Face's
 * rotate_half); NORM pairs 2j with 2j+1 (llama.cpp's Llama GGUFs, whose Q/K rows were
 * permuted at conversion). */
typedef enum ds_rope_style { DS_ROPE_NEOX, DS_ROPE_NORM } ds_rope_style;

typedef enum ds_rope_scaling {
    DS_ROPE_SCALING_NONE,
    DS_ROPE_SCALING_LINEAR,
    DS_ROPE_SCALING_LLAMA3,
    DS_ROPE_SCALING_YARN,
} ds_rope_scaling;

typedef struct ds_hparams {
    ds_arch arch;
    int n_vocab;        /* rows of the embedding / lm_head (may include padding rows) */
    int n_embd;         /* hidden size */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_ff;           /* MLP intermediate size */
    int n_ctx_train;    /* max_position_embeddings / context_length */
    float rms_eps;
    float rope_theta;
    ds_rope_style rope_style;
    ds_rope_scaling rope_scaling;
    float rope_factor;              /* linear and llama3 */
    float rope_low_freq_factor;     /* llama3 */
    float rope_high_freq_factor;    /* llama3 */
    int rope_orig_ctx;              /* llama3: original_max_position_embeddings */
    bool attn_bias;                 /* q/k/v biases (Qwen2) */
    float yarn_beta_fast, yarn_beta_slow;    /* yarn: correction range */
    float yarn_mscale, yarn_mscale_all_dim;  /* yarn: magnitude factors (0 = absent) */

    /* DeepSeek-V2/V3 only. head_dim above is qk_nope_dim + qk_rope_dim. */
    int q_lora_rank;                /* 0: a plain q_proj */
    int kv_lora_rank;               /* latent width (512) */
    int qk_nope_dim, qk_rope_dim, v_head_dim;
    int n_expert, n_expert_used, n_expert_shared;
    int moe_ff;                     /* moe_intermediate_size (per expert) */
    int first_dense;                /* first_k_dense_replace */
    int moe_layer_freq;
    int n_group, topk_group;
    ds_moe_scoring scoring;
    ds_moe_topk topk_method;
    bool norm_topk_prob;
    float routed_scale;
} ds_hparams;

typedef struct ds_layer {
    float *attn_norm;               /* [n_embd], f32 copy */
    ds_tensor wq, wk, wv, wo;       /* [n_head*head_dim, n_embd] ... [n_embd, n_head*v_dim] */
    float *bq, *bk, *bv;            /* biases as f32 copies, NULL when absent */
    float *ffn_norm;                /* [n_embd] */
    ds_tensor w_gate, w_up, w_down; /* dense MLP: [n_ff, n_embd], [n_ff, n_embd], [n_embd, n_ff] */

    /* MLA (wq is q_proj when q_lora_rank is 0) */
    ds_tensor wq_a, wq_b;           /* [q_lora, n_embd], [n_head*head_dim, q_lora] */
    float *q_a_norm;                /* [q_lora] */
    ds_tensor wkv_a;                /* [kv_lora + qk_rope, n_embd] */
    float *kv_a_norm;               /* [kv_lora] */
    ds_tensor *w_uk_t;              /* [n_head] f32 views [kv_lora, qk_nope]: W_UK_hᵀ (absorbs into q) */
    ds_tensor *w_uv;                /* [n_head] f32 views [v_head, kv_lora]: W_UV_h */

    /* MoE (when moe): router, experts, shared experts */
    bool moe;
    ds_tensor gate_inp;             /* [n_expert, n_embd], f32 copy */
    float *exp_bias;                /* [n_expert] e_score_correction_bias, NULL if none */
    ds_tensor *exp_gate, *exp_up, *exp_down; /* [n_expert] each: [moe_ff, n_embd], ..., [n_embd, moe_ff] */
    ds_tensor sh_gate, sh_up, sh_down;       /* [n_shared*moe_ff, n_embd], ..., [n_embd, n_shared*moe_ff] */
} ds_layer;

typedef struct ds_sampling_defaults {
    bool do_sample;
    float temperature, top_p, min_p, repetition_penalty;
    int top_k;
} ds_sampling_defaults;

typedef struct ds_model ds_model;

struct ds_model {
    char *path;
    char *format;            /* "safetensors" or "gguf" */
    char *arch_name;         /* as the file names it: "LlamaForCausalLM", "qwen2", ... */
    ds_hparams hp;
    ds_tensor tok_embd;      /* [n_vocab, n_embd] */
    float *out_norm;         /* [n_embd] */
    ds_tensor output;        /* [n_vocab, n_embd] (may alias tok_embd when tied) */
    ds_layer *layers;        /* [n_layer] */
    float *rope_inv_freq;    /* [rope dims / 2] */
    float rope_attn_factor;  /* multiplies cos/sin (yarn; 1 otherwise) */
    float attn_scale;        /* softmax scale: 1/sqrt(head_dim), times mscale² for yarn MLA */

    int bos_id;              /* -1 if none */
    int eos_ids[8];          /* stop set (never contains BOS) */
    int n_eos;
    int n_vocab_tokens;      /* ids the tokenizer defines (rows ≥ this are padding); n_vocab if unknown */
    bool has_tokenizer;      /* tokenizer files/metadata present */
    ds_sampling_defaults sampling;

    void *storage;           /* the mapped files, owned (format-specific) */
    void (*free_storage)(void *storage);
    float **owned;           /* f32 copies made at load, freed with the model */
    int n_owned, cap_owned;
};

/* Loads a Hugging Face directory or a .gguf file. */
int ds_model_load(const char *path, ds_model **out, ds_err *err);
void ds_model_free(ds_model *m);

/* Parameter count and weight bytes per dtype (bytes[t] for every ds_dtype t). */
void ds_model_weight_stats(const ds_model *m, int64_t *n_params, uint64_t bytes[DS_DTYPE_COUNT]);

/* Values per position per layer the KV cache keeps for this model, in K and in V. */
void ds_model_kv_widths(const ds_model *m, int *width_k, int *width_v);

/* Weight bytes one decode step reads: every layer weight, the output head, one embedding row
 * (the quantity that bounds decode speed by memory bandwidth). */
uint64_t ds_model_decode_bytes(const ds_model *m);

/* A batch: n_tokens tokens, token i at position pos[i] of sequence seq[i]; a sequence's block
 * table lists its KV blocks in position order. Every token's K/V is written to the cache;
 * attention of token i covers positions 0..pos[i] of its sequence, so all earlier positions
 * must already be in the cache or in this batch. Logits come out for tokens with
 * want_logits[i] != 0 (all tokens if want_logits is NULL), in batch order. */
typedef struct ds_batch {
    int n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const uint8_t *want_logits;
    int n_seqs;
    const int32_t *const *block_tables; /* [n_seqs] */
    const int32_t *block_counts;         /* [n_seqs] entries in each block table */
} ds_batch;

typedef struct ds_forward_ctx ds_forward_ctx;

/* Scratch for forward passes of up to max_tokens tokens and contexts up to max_ctx. */
ds_forward_ctx *ds_forward_ctx_create(const ds_model *m, int max_tokens, int max_ctx);
void ds_forward_ctx_free(ds_forward_ctx *c);

/* Runs the model on `batch`; writes n_logit_rows × n_vocab floats to logits. Fails only on
 * invalid batches (ids out of range, positions beyond the context or the block tables). */
int ds_forward(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool,
               const ds_batch *batch, float *logits, ds_err *err);

#endif
