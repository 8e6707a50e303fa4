/* Internal to model/: helpers shared by the per-format loaders. */
#ifndef DS_MODEL_MODEL_INTERNAL_H
#define DS_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

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

#endif
