/* AVX-512 ds_quantize_act_q8 and ds_quantize_act_q8k: the same values as the scalar quantizers
 * in quant_act.c, 16 lanes at a time. The operations are the scalar ones, exactly: max of |x|
 * (max is exact in any order), one f32 multiply by 127 / amax, conversion rounding to nearest
 * even (the default MXCSR mode, as nearbyintf uses), the clamp, an integer sum, and for Q8 d and
 * d * sum rounded to f16 (nearest even, as ds_f32_to_f16). */
#include <immintrin.h>

#include "kernels/cpu/variants.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

/* round(x * id) clamped to [-127, 127], sixteen lanes. */
AVX512 static inline __m512i quantize16(__m512 x, __m512 id) {
    const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(x, id));
    return _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
}

AVX512 void ds_quantize_act_q8_avx512(const float *x, int n, ds_act_q8 *out) {
    const int nb = n / 32;
    const __m512i offset = _mm512_set1_epi32(128);
    for (int g = 0; g < ds_act_q8_groups(n); g++) {
        ds_act_q8 *a = &out[g];
        for (int p = 0; p < 4; p++) {
            const int b = 4 * g + p;
            float d = 0.0f, s = 0.0f;
            __m512i q0 = _mm512_setzero_si512(), q1 = q0;
            if (b < nb) {
                const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
                const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
                const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
                q0 = quantize16(x0, id);
                q1 = quantize16(x1, id);
                const float sum = (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
                d = _cvtsh_ss(_cvtss_sh(amax / 127.0f, 0));
                s = _cvtsh_ss(_cvtss_sh(amax / 127.0f * sum, 0));
            }
            _mm_storeu_si128((__m128i *)(a->u + 16 * p), _mm512_cvtepi32_epi8(_mm512_add_epi32(q0, offset)));
            _mm_storeu_si128((__m128i *)(a->u + 64 + 16 * p), _mm512_cvtepi32_epi8(_mm512_add_epi32(q1, offset)));
            _mm_storeu_ps(a->d + 4 * p, _mm_set1_ps(d));
            _mm_storeu_ps(a->s + 4 * p, _mm_setr_ps(s, 0.0f, 0.0f, 0.0f));
        }
    }
}

/* One 16-float vector is one 16-wide run of the block, so its quantized sum is one dsums entry. */
AVX512 void ds_quantize_act_q8k_avx512(const float *x, int n, ds_act_q8k *out) {
    for (int b = 0; b < n / 256; b++, x += 256) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * j)));
        const float amax = _mm512_reduce_max_ps(m), d = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        for (int j = 0; j < 16; j++) {
            const __m512i q = quantize16(_mm512_loadu_ps(x + 16 * j), id);
            _mm_storeu_si128((__m128i *)(out[b].qs + 16 * j), _mm512_cvtepi32_epi8(q));
            out[b].dsums[j] = d * (float)_mm512_reduce_add_epi32(q);
        }
        out[b].d = d;
    }
}
