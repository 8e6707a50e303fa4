/* GGUF v3 writer (the layout gguf.c reads): metadata of every value type, arrays included,
 * tensor infos with offsets aligned to general.alignment (32 when unset), then the tensor data
 * streamed in declaration order, each tensor padded to the alignment.
 *
 * Usage: set keys and declare every tensor, write the header, then hand over each tensor's
 * bytes in order (in as many pieces as convenient), then finish. Shapes are PyTorch order, as
 * everywhere in dsinfer; they are written as GGUF's ne[] (reversed). */
#ifndef DS_FORMAT_GGUF_WRITE_H
#define DS_FORMAT_GGUF_WRITE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "format/gguf.h"
#include "tensor/tensor.h"

typedef struct gguf_writer gguf_writer;

/* NULL when memory runs out. */
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* ---- metadata: setting a key that exists replaces its value in place ---- */

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v, ds_err *err);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v, ds_err *err);
int gguf_set_f32(gguf_writer *w, const char *key, float v, ds_err *err);
int gguf_set_bool(gguf_writer *w, const char *key, bool v, ds_err *err);
int gguf_set_str(gguf_writer *w, const char *key, const char *s, size_t len, ds_err *err);

/* An array of n scalars of type elem (not STRING or ARRAY) from host memory (little-endian). */
int gguf_set_array(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n,
                   ds_err *err);

/* An array of n strings. */
int gguf_set_str_array(gguf_writer *w, const char *key, const gguf_str *items, uint64_t n, ds_err *err);

/* A copy of a key/value as gguf_parse read it (any type, arrays verbatim). */
int gguf_set_kv(gguf_writer *w, const gguf_kv *kv, ds_err *err);

/* Whether `key` has been set. */
bool gguf_writer_has(const gguf_writer *w, const char *key);

/* ---- tensors ---- */

/* Declares the next tensor. Fails for types GGUF has no id for (F8_E4M3, U8, BOOL), rows that
 * are not whole blocks, duplicate names, more than 4 dims. */
int gguf_add_tensor(gguf_writer *w, const char *name, ds_dtype type, int ndim, const int64_t *shape,
                    ds_err *err);

/* Bytes of the whole file once written. */
uint64_t gguf_writer_file_size(const gguf_writer *w);

/* Writes magic, counts, metadata, tensor infos and the padding before the data section. */
int gguf_write_header(gguf_writer *w, FILE *f, ds_err *err);

/* Appends n bytes of tensor data: the current tensor's bytes continue, and once it is complete
 * the padding follows and the next tensor starts. More bytes than declared is an error. */
int gguf_write_data(gguf_writer *w, FILE *f, const void *data, size_t n, ds_err *err);

/* Checks that every tensor was written in full and flushes f. */
int gguf_write_finish(gguf_writer *w, FILE *f, ds_err *err);

/* The ggml type id of a dtype; -1 when GGUF has none. */
int gguf_ggml_type_of(ds_dtype t);

#endif
