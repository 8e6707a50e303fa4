/* K-quant (Q4_K, Q5_K, Q6_K) row kernels against Q8_K activations, avx2 variant. */
#include "kernels/cpu/variants.h"

ds_qrow_kernel ds_kquant_kernel_avx2(ds_dtype t) {
    (void)t;
    return NULL; /* not written yet: matmul falls back to dequantized weights */
}
