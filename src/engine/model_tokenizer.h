/* The tokenizer that belongs to a loaded model: tokenizer.json beside a Hugging Face model, or
 * the vocabulary inside a GGUF file. */
#ifndef DS_ENGINE_MODEL_TOKENIZER_H
#define DS_ENGINE_MODEL_TOKENIZER_H

#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* Loads it; fails with a message saying why when the model ships none. */
int ds_model_tokenizer(const ds_model *m, tok_tokenizer **out, ds_err *err);

#endif
