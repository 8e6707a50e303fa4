/* GGUF reader (versions 2 and 3): header, metadata key/values, tensor infos, aligned data.
 * Everything is validated at parse time, so the accessors below never read out of bounds.
 * Strings and arrays point into the mapping; tensor shapes are given in PyTorch order
 * (GGUF's ne[] reversed: ne[0], the contiguous dimension, becomes the last entry). */
#ifndef DS_FORMAT_GGUF_H
#define DS_FORMAT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mapped_file.h"
#include "tensor/tensor.h"

typedef enum gguf_type {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4,
    GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9,
    GGUF_UINT64 = 10, GGUF_INT64 = 11, GGUF_FLOAT64 = 12,
} gguf_type;

typedef struct gguf_str {
    const char *ptr; /* not NUL-terminated; points into the file */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    char *key;              /* NUL-terminated, owned */
    gguf_type type;
    union {
        uint64_t u;         /* UINT8..UINT64, BOOL */
        int64_t i;          /* INT8..INT64 */
        double f;           /* FLOAT32, FLOAT64 */
        gguf_str s;         /* STRING */
    } v;
    /* ARRAY only: element type, count, and the raw bytes of the elements in the file.
     * For arrays of strings use gguf_get_str_array(). Nested arrays are rejected. */
    gguf_type arr_type;
    uint64_t arr_len;
    const uint8_t *arr_data;
} gguf_kv;

typedef struct gguf_file {
    ds_mapped map;          /* set by gguf_open */
    const char *label;      /* file name for messages (points into map.path or caller's) */
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    ds_tensor *tensors;     /* names owned here; data points into the mapping */
    uint32_t alignment;     /* general.alignment or 32 */
    size_t data_offset;     /* start of the tensor data section */
} gguf_file;

/* Maps and parses `path`. */
int gguf_open(const char *path, gguf_file *out, ds_err *err);

/* Parses caller memory (must outlive `out`). Rejects: bad magic, versions other than 2/3,
 * counts or string lengths that cannot fit in the file, unknown value types, alignment that
 * is zero or not a power of two, tensor types unknown to dsinfer (named, e.g. "IQ2_XXS"),
 * more than 4 dims, row lengths not a multiple of the block size, tensor data outside the file
 * or misaligned, duplicate tensor names. */
int gguf_parse(const uint8_t *data, size_t size, const char *label, gguf_file *out, ds_err *err);

void gguf_close(gguf_file *f);

/* Lookup. NULL if absent. */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const ds_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return 1 and set *out when the key exists with a compatible type (any integer
 * type for get_int, any float or integer type for get_float), 0 when absent, and -1 with a
 * message naming the key when it has an incompatible type. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, ds_err *err);
int gguf_get_float(const gguf_file *f, const char *key, double *out, ds_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, ds_err *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ds_err *err);

/* Arrays of strings (tokenizer.ggml.tokens, .merges): returns 1 and a malloc'd array of n
 * gguf_str pointing into the file (caller frees the array), 0 absent, -1 wrong type. */
int gguf_get_str_array(const gguf_file *f, const char *key, gguf_str **out, uint64_t *n,
                       ds_err *err);

/* Arrays of numbers (token_type, scores, eos_token_id lists): converts any numeric element
 * type; returns 1 and a malloc'd array, 0 absent, -1 wrong type. */
int gguf_get_int_array(const gguf_file *f, const char *key, int64_t **out, uint64_t *n, ds_err *err);
int gguf_get_float_array(const gguf_file *f, const char *key, float **out, uint64_t *n, ds_err *err);

/* ggml's name for a GGUF tensor type id ("Q4_K", "IQ2_XXS", ...), or NULL if unknown. */
const char *gguf_ggml_type_name(uint32_t ggml_type);

#endif
