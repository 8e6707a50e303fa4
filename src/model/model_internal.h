/* Internal to model/: helpers shared by the per-format loaders. */
#ifndef DS_MODEL_MODEL_INTERNAL_H
#define DS_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

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

#endif
