#include "engine/model_tokenizer.h"

#include <string.h>

#include "format/gguf.h"

int ds_model_tokenizer(const ds_model *m, tok_tokenizer **out, ds_err *err) {
    *out = NULL;
    if (!m->has_tokenizer)
        return ds_errf(err, "%s has no tokenizer (no tokenizer.json, or no tokenizer.ggml.* metadata)", m->path);
    /* A GGUF model's storage is its parsed file: reuse it rather than parse it again. */
    int rc = !strcmp(m->format, "gguf") ? tok_load_gguf((const gguf_file *)m->storage, out, err) : tok_load(m->path, out, err);
    return rc ? ds_err_wrap(err, "tokenizer") : 0;
}
