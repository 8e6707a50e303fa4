/* Conversion of a model to a quantized GGUF (`dsinfer quantize`): a Hugging Face directory
 * (llama, qwen2, deepseek2 families; bf16 / f16 / f32 / block-scaled FP8 weights) or a GGUF
 * file of any of those architectures, written with llama.cpp's key and tensor names and
 * layouts so llama.cpp loads it as well as dsinfer does.
 *
 * A recipe names the file's main weight type and, as llama.cpp does, keeps sensitive tensors
 * at higher precision (docs/quantization.md has the table). Rows whose length is not a whole
 * number of the chosen type's blocks fall back to a 32-element type (or F16). 1-D tensors
 * (norms, biases) and the MoE router stay F32. The output is the same for any thread count. */
#ifndef DS_CONVERT_CONVERT_H
#define DS_CONVERT_CONVERT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "tensor/tensor.h"

typedef struct ds_recipe {
    const char *name;   /* "q4_k_m", as the user types it */
    ds_dtype base;      /* the type of most weights */
    bool mixed;         /* the _m mixes: attn_v / ffn_down at Q6_K in some layers */
    uint32_t file_type; /* llama.cpp's llama_ftype for general.file_type */
} ds_recipe;

/* The recipe called `name` (case-insensitive); -1 if none. */
int ds_recipe_find(const char *name, ds_recipe *out);

/* The recipe names, comma-separated, for usage messages. */
const char *ds_recipe_list(void);

typedef struct ds_quantize_opts {
    ds_recipe recipe;
    bool pure;       /* every weight matrix in the base type (no output / _m upgrades) */
    int threads;     /* >= 1 */
    /* Called from the calling thread after each piece of data written (may be NULL). */
    void (*progress)(void *ctx, uint64_t done_bytes, uint64_t total_bytes);
    void *progress_ctx;
    /* When it becomes nonzero the conversion stops with the error "interrupted". May be NULL. */
    const volatile sig_atomic_t *cancel;
    /* One line per note worth a user's attention (type fallbacks, a missing tokenizer); may be
     * NULL. */
    FILE *log;
} ds_quantize_opts;

/* Converts the model at `src` and writes the GGUF to `out` (positioned at its start). On
 * failure `out` holds a partial file: the caller removes it. */
int ds_quantize_model(const char *src, FILE *out, const ds_quantize_opts *o, ds_err *err);

#endif
