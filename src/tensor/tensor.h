/* Tensors: a dtype, a shape and a pointer to bytes that someone else owns (usually a memory
 * mapping). Shapes are in PyTorch order: shape[0] is the outermost dimension, so a linear
 * layer's weight is [out_features, in_features] and row r is contiguous. */
#ifndef DS_TENSOR_TENSOR_H
#define DS_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum ds_dtype {
    DS_F32,
    DS_F16,
    DS_BF16,
    DS_F64,
    DS_I8,
    DS_U8,
    DS_I16,
    DS_I32,
    DS_I64,
    DS_BOOL,
    DS_F8_E4M3,
    DS_F8_E5M2,
    /* GGUF block-quantized types (bit-compatible with ggml). */
    DS_Q4_0,
    DS_Q4_1,
    DS_Q5_0,
    DS_Q5_1,
    DS_Q8_0,
    DS_Q8_1,
    DS_Q2_K,
    DS_Q3_K,
    DS_Q4_K,
    DS_Q5_K,
    DS_Q6_K,
    DS_Q8_K,
    DS_DTYPE_COUNT
} ds_dtype;

#define DS_MAX_DIMS 4

typedef struct ds_tensor {
    const char *name;         /* owned by whoever built the tensor list */
    ds_dtype type;
    int ndim;                 /* 1..DS_MAX_DIMS (0 for a scalar) */
    int64_t shape[DS_MAX_DIMS];
    const void *data;         /* nbytes bytes, not owned */
    size_t nbytes;
    /* Block-scaled F8_E4M3 weights (DeepSeek-V3): element (r, c) is multiplied by
     * scale[(r / 128) * scale_cols + c / 128]. NULL for every other tensor. */
    const float *scale;
    int64_t scale_cols;
} ds_tensor;

#define DS_FP8_BLOCK 128

/* Upper-case name as the formats spell it ("F32", "BF16", "Q4_0", "F8_E4M3"). */
const char *ds_dtype_name(ds_dtype t);

/* The dtype called `name` (case-insensitive, as ds_dtype_name spells it); -1 if none. */
int ds_dtype_from_name(const char *name);

/* Elements per block (1 for plain scalar types, 32 for Q8_0, 256 for K-quants). */
int ds_dtype_block_elems(ds_dtype t);

/* Bytes per block (the element size for plain types). */
size_t ds_dtype_block_bytes(ds_dtype t);

/* Number of elements of a tensor (product of its shape; 1 for a scalar). */
int64_t ds_tensor_nelems(const ds_tensor *t);

/* Bytes needed for `nelems` elements of type t; fails (naming `what`) when nelems is not a
 * multiple of the block size or the size overflows. */
int ds_dtype_bytes_for(ds_dtype t, int64_t nelems, size_t *out, const char *what, ds_err *err);

/* Scalar conversions. */
float ds_f16_to_f32(uint16_t h);
uint16_t ds_f32_to_f16(float f);
static inline float ds_bf16_to_f32(uint16_t b) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)b << 16 };
    return v.f;
}
uint16_t ds_f32_to_bf16(float f); /* round to nearest even, NaN kept */
float ds_fp8_e4m3_to_f32(uint8_t v);

/* Whether ds_dequantize_row handles type t. */
int ds_dtype_can_dequantize(ds_dtype t);

/* Converts `n` consecutive elements of row data of type t (n a multiple of the block size) to
 * f32. Supports F32, F16, BF16, F8_E4M3, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K;
 * returns -1 for other types. */
int ds_dequantize_row(ds_dtype t, const void *src, float *dst, int64_t n);

#endif
