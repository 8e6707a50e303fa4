/* Row quantizers: f32 rows to the GGUF block formats, bit-compatible with ggml's layouts (the
 * inverse of ds_dequantize_row).
 *
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16 and BF16 produce exactly the bytes of the reference
 * quantizers of the `gguf` Python package (gguf-py 0.17.1, gguf.quants.quantize), including its
 * rounding rules. Q4_K, Q5_K and Q6_K are our own search for the block scales (gguf-py has no
 * quantizer for them): a least-squares fit per sub-block, then the best of the neighbouring
 * 6-bit (8-bit for Q6_K) scale codes once the super-block scale is rounded to f16.
 *
 * Every function depends only on the row's values, so results do not depend on how rows are
 * spread over threads. */
#ifndef DS_TENSOR_QUANTIZE_H
#define DS_TENSOR_QUANTIZE_H

#include <stdint.h>

#include "tensor/tensor.h"

/* Whether ds_quantize_row can produce type t. */
int ds_dtype_can_quantize(ds_dtype t);

/* Quantizes n f32 values (n a multiple of t's block size, values finite) into ds_dtype_bytes_for
 * (t, n) bytes at dst. Returns -1 for a type it cannot produce or an n that is not a whole
 * number of blocks. */
int ds_quantize_row(ds_dtype t, const float *src, void *dst, int64_t n);

#endif
