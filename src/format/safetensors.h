/* safetensors reader: an 8-byte little-endian header length, a JSON header mapping tensor
 * names to {dtype, shape, data_offsets}, then the data. Tensors point into the mapping. */
#ifndef DS_FORMAT_SAFETENSORS_H
#define DS_FORMAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mapped_file.h"
#include "tensor/tensor.h"

typedef struct st_file {
    ds_mapped map;       /* set by st_open; zeroed when parsed from caller memory */
    int n_tensors;
    ds_tensor *tensors;  /* n_tensors entries, sorted by data offset; names owned here */
} st_file;

/* Maps and parses `path`. Every error names the file and the tensor or field at fault. */
int st_open(const char *path, st_file *out, ds_err *err);

/* Parses `size` bytes at `data` (which must outlive `out`); `label` names the source in
 * messages. Validates: header length within the file, JSON syntax and types, known dtypes,
 * shape × dtype size == byte count, offsets inside the data section, no two tensors
 * overlapping. "__metadata__" is allowed and ignored. */
int st_parse(const uint8_t *data, size_t size, const char *label, st_file *out, ds_err *err);

/* The tensor called `name`, or NULL. */
const ds_tensor *st_find(const st_file *f, const char *name);

/* Frees everything (and unmaps when opened by path); safe on a zeroed struct. */
void st_close(st_file *f);

#endif
