/* Internal to model/: helpers shared by the per-format loaders. */
#ifndef DS_MODEL_MODEL_INTERNAL_H
#define DS_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

#include <jansson.h>

#include "format/safetensors.h"

int ds_load_hf_dir(const char *dir, ds_model *m, ds_err *err);
int ds_load_gguf(const char *path, ds_model *m, ds_err *err);

/* An f32 copy of a 1-D tensor of length n (norm weights, biases), owned by the model. */
int ds_model_own_f32(ds_model *m, const ds_tensor *t, int64_t n, float **out, ds_err *err);

/* Checks that a weight has the expected 2-D shape and a type the kernels accept; `where`
 * names the file for messages. */
int ds_check_weight(const ds_tensor *t, int64_t rows, int64_t cols, const char *where, ds_err *err);

/* Validates hyper-parameters after a loader filled them; computes rope_inv_freq unless the
 * loader already did (GGUF llama3 files carry their own factors). */
int ds_model_finish(ds_model *m, ds_err *err);

/* Adds an id to the EOS set (ignores duplicates, negatives and the BOS id). */
void ds_model_add_eos(ds_model *m, int id);

/* Hugging Face weight files and the helpers that bind tensors by name (load_hf*.c). */
typedef struct hf_storage {
    int n_files;
    st_file *files;
    char **names; /* file names (relative), for messages */
} hf_storage;

void hf_storage_free(void *p);
int hf_path_join(char *out, size_t cap, const char *dir, const char *name, ds_err *err);
/* Opens model.safetensors, or every shard named by model.safetensors.index.json. */
int hf_open_weights(const char *dir, hf_storage *s, ds_err *err);
const ds_tensor *hf_find(const hf_storage *s, const char *name);
/* Binds a 2-D weight of shape [rows, cols] (F8_E4M3 ones with their block scales). */
int hf_bind_weight(ds_model *m, const hf_storage *s, const char *dir, const char *name, int64_t rows, int64_t cols,
                   ds_tensor *out, ds_err *err);
/* Binds a vector of n values as an f32 copy owned by the model. */
int hf_bind_vector(ds_model *m, const hf_storage *s, const char *dir, const char *name, int64_t n, float **out,
                   ds_err *err);

/* GGUF helpers (load_gguf.c): "<arch>.<key>" numbers (def < 0: required) and tensor binding. */
#include "format/gguf.h"
int gg_arch_int(const gguf_file *g, const char *arch, const char *key, int64_t def, int *out, ds_err *err);
int gg_arch_float(const gguf_file *g, const char *arch, const char *key, double def, float *out, ds_err *err);
int gg_bind_weight(const gguf_file *g, const char *name, int64_t rows, int64_t cols, ds_tensor *out, ds_err *err);
int gg_bind_vector(ds_model *m, const gguf_file *g, const char *name, int64_t n, float **out, ds_err *err);
/* deepseek2 GGUFs (load_gguf_deepseek2.c): hyper-parameters and one layer, both tensor layouts. */
int gg_read_deepseek2(const gguf_file *g, ds_hparams *hp, ds_err *err);
int gg_bind_deepseek2_layer(ds_model *m, const gguf_file *g, int layer, ds_err *err);

/* DeepSeek-V2/V3 (load_hf_deepseek2.c): MLA / MoE / YaRN fields of config.json, and one layer. */
int hf_read_deepseek2_config(const json_t *cfg, const char *file, ds_hparams *hp, ds_err *err);
int hf_bind_deepseek2_layer(ds_model *m, const hf_storage *s, const char *dir, int layer, ds_err *err);

/* MLA absorption (deepseek2.c): per-head f32 W_UK_hᵀ and W_UV_h from kv_b_proj
 * [n_head·(qk_nope + v_head), kv_lora], or from GGUF's split k_b [n_head, kv_lora, qk_nope] and
 * v_b [n_head, v_head, kv_lora]. */
int ds_mla_absorb_kv_b(ds_model *m, ds_layer *L, const ds_tensor *kv_b, const char *where, ds_err *err);
int ds_mla_absorb_k_v(ds_model *m, ds_layer *L, const ds_tensor *k_b, const ds_tensor *v_b, const char *where,
                      ds_err *err);

/* Shapes and rules shared by both formats: validates the MoE / MLA hyper-parameters. */
int ds_deepseek2_check(const ds_model *m, ds_err *err);

/* Whether layer l of a DeepSeek model has an MoE FFN (MODELS.md §1.3). */
bool ds_deepseek2_layer_is_moe(const ds_hparams *hp, int l);

/* A float buffer owned by the model (freed with it); NULL when memory runs out. */
float *ds_model_alloc_f32(ds_model *m, size_t n);
#endif
