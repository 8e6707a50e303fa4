/* Internal to convert/: the plan of a conversion — the output file's metadata (already in a
 * gguf_writer) and its tensors, each with where its rows come from and the type it gets. */
#ifndef DS_CONVERT_CONVERT_INTERNAL_H
#define DS_CONVERT_CONVERT_INTERNAL_H

#include "convert/convert.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "model/model.h"

/* One output tensor. Its rows (all dimensions but the last flattened) are the rows of its
 * parts in order: one part for most tensors, one per expert for stacked MoE weights, one per
 * head for MLA's attn_k_b / attn_v_b. */
typedef struct cv_tensor {
    char *name;              /* GGUF name, owned */
    int ndim;
    int64_t shape[DS_MAX_DIMS]; /* PyTorch order */
    const ds_tensor *parts;  /* n_parts tensors of equal row length and row count; NULL: &single */
    int n_parts;
    ds_tensor single;        /* the one part when it is not in someone else's array */
    int perm_heads;          /* llama Q/K from Hugging Face: rows regrouped per head so rotary
                                pairs are adjacent (llama.cpp's permute); 0: rows as they are */
    bool quantizable;        /* a weight matrix the recipe chooses a type for */
    ds_dtype keep;           /* its type otherwise */
    ds_dtype type;           /* the type written (set by cv_choose_types) */
} cv_tensor;

typedef struct cv_plan {
    gguf_writer *w;
    cv_tensor *t;
    int n, cap;
    int n_layer;
    bool tied;               /* no output.weight: token_embd is the output head too */
    ds_model *model;         /* Hugging Face source, owned */
    gguf_file *gguf;         /* GGUF source, owned */
    float *rope_freqs;       /* llama3 rope factors computed for a Hugging Face source, owned */
} cv_plan;

/* Part i of t. */
static inline const ds_tensor *cv_part(const cv_tensor *t, int i) {
    return t->parts ? &t->parts[i] : &t->single;
}

/* Appends a tensor of `n_parts` parts (parts == NULL: one part, copied into `single`). */
int cv_plan_add(cv_plan *p, const char *name, int ndim, const int64_t *shape, const ds_tensor *parts,
                int n_parts, ds_err *err);
void cv_plan_free(cv_plan *p);

/* Sources: fill p->w's metadata and the tensor list. */
int cv_plan_hf(cv_plan *p, const char *dir, FILE *log, ds_err *err);
int cv_plan_gguf(cv_plan *p, const char *path, ds_err *err);

/* tokenizer.ggml.* keys from a Hugging Face tokenizer.json (+ tokenizer_config.json) in dir, for
 * a model whose embedding has n_vocab rows. Without tokenizer.json only the BOS/EOS ids of the
 * model are written (and a note goes to log). */
int cv_hf_vocab(const char *dir, const ds_model *m, gguf_writer *w, FILE *log, ds_err *err);

/* Sets every tensor's type from the recipe (notes about fallbacks go to log). */
void cv_choose_types(cv_plan *p, const ds_quantize_opts *o);

/* Writes the header and streams every tensor's rows, converted, to out. */
int cv_write(cv_plan *p, FILE *out, const ds_quantize_opts *o, ds_err *err);

#endif
