/* Single-thread speed of the K-quant row kernels (Q4_K, Q5_K, Q6_K against Q8_K activations),
 * per variant, next to the path they replace (dequantize a weight row, then the f32 kernel):
 *   - nx=1 GB/s: weight bytes consumed per second, one activation row (decode), with the
 *     weights resident in L2 (1 MiB) and streamed from memory (256 MiB, past the L3);
 *   - nx=DS_NX_MAX GFLOP/s: 2·n·rows·nx per second, weights in L2 (prefill).
 * Each figure is the median of ROUNDS rounds; a round measures every variant in turn, so a
 * noisy neighbour hurts all of them alike. Not a test: build it by hand after `make`:
 *   gcc -O2 -Isrc bench/kquant-dot.c build/libdsinfer_core.a -lm -o build/kquant-dot
 *   build/kquant-dot            (or taskset -c 1 build/kquant-dot on a quiet core) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/variants.h"

#define N 4096 /* row length: a typical hidden size */
#define ROUNDS 5
#define L2_BYTES (1u << 20)
#define MEM_BYTES (256u << 20)

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_u64(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Random bytes with f16 scales of 0.0039 (0x1c00) so every value is finite. */
static uint8_t *make_weights(ds_dtype t, size_t rows) {
    const size_t bb = ds_dtype_block_bytes(t), nb = rows * (N / 256);
    uint8_t *w = malloc(nb * bb);
    if (!w) return NULL;
    for (size_t i = 0; i < nb * bb; i++) w[i] = (uint8_t)next_u64();
    const uint16_t d = 0x1c00;
    for (size_t k = 0; k < nb; k++) {
        uint8_t *b = w + k * bb;
        if (t == DS_Q6_K) memcpy(b + 208, &d, 2);
        else memcpy(b, &d, 2), memcpy(b + 2, &d, 2);
    }
    return w;
}

typedef struct path {
    const char *name;
    ds_qrow_kernel kernel; /* NULL: dequantize + f32 kernel */
    ds_gemm_kernel f32_kernel;
} path;

typedef struct inputs {
    ds_dtype t;
    const void *const *xq; /* DS_NX_MAX rows of Q8_K activations */
    const float *const *xf; /* the same rows as f32, N apart */
    float *deq;             /* one dequantized weight row */
} inputs;

/* Seconds for one pass of p over `rows` weight rows with nx activation rows. */
static double pass(const path *p, const inputs *in, const uint8_t *w, size_t rows, int nx) {
    const size_t rb = (size_t)(N / 256) * ds_dtype_block_bytes(in->t);
    float out[DS_NX_MAX];
    volatile float sink = 0;
    const double t0 = now();
    for (size_t o = 0; o < rows; o++) {
        if (p->kernel) {
            p->kernel(w + o * rb, in->xq, nx, N, out);
        } else {
            ds_dequantize_row(in->t, w + o * rb, in->deq, N);
            p->f32_kernel(in->deq, sizeof(float) * N, 1, in->xf[0], N, nx, N, out, 1);
        }
        sink += out[0];
    }
    return now() - t0;
}

/* Median over ROUNDS of the best of `reps` passes, every path measured in each round. */
static void measure(const path *paths, int np, const inputs *in, const uint8_t *w, size_t rows, int nx, int reps,
                    double *secs) {
    double t[8][ROUNDS];
    for (int k = 0; k < ROUNDS; k++)
        for (int i = 0; i < np; i++) {
            double best = 1e9;
            for (int r = 0; r < reps; r++) {
                const double s = pass(&paths[i], in, w, rows, nx);
                best = s < best ? s : best;
            }
            t[i][k] = best;
        }
    for (int i = 0; i < np; i++) {
        for (int a = 0; a < ROUNDS; a++)
            for (int b = a + 1; b < ROUNDS; b++)
                if (t[i][b] < t[i][a]) {
                    const double s = t[i][a];
                    t[i][a] = t[i][b], t[i][b] = s;
                }
        secs[i] = t[i][ROUNDS / 2];
    }
}

int main(void) {
    const ds_dtype types[] = {DS_Q4_K, DS_Q5_K, DS_Q6_K};
    float *xf = malloc(sizeof(float) * N * DS_NX_MAX), *deq = malloc(sizeof(float) * N);
    ds_act_q8k *xq = malloc(sizeof(ds_act_q8k) * (N / 256) * DS_NX_MAX);
    if (!xf || !deq || !xq) return fprintf(stderr, "kquant-dot: out of memory\n"), 1;
    const void *xq_rows[DS_NX_MAX];
    const float *xf_rows[DS_NX_MAX];
    for (int r = 0; r < DS_NX_MAX; r++) {
        for (int i = 0; i < N; i++) xf[r * N + i] = (float)(int64_t)(next_u64() % 2001 - 1000) / 1000.0f;
        ds_quantize_act_q8k(xf + r * N, N, xq + r * (N / 256));
        xq_rows[r] = xq + r * (N / 256);
        xf_rows[r] = xf + r * N;
    }
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = avx2 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                       __builtin_cpu_supports("avx512vnni");
    printf("row length %d, single thread; nx=1 from L2 (%u KiB) and memory (%u MiB); nx=%d from L2\n", N,
           L2_BYTES >> 10, MEM_BYTES >> 20, DS_NX_MAX);
    printf("%-5s %-12s %12s %12s %16s\n", "type", "path", "nx=1 L2", "nx=1 mem", "nx=max L2");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const ds_dtype t = types[ti];
        const size_t rb = (size_t)(N / 256) * ds_dtype_block_bytes(t);
        const size_t rows_l2 = L2_BYTES / rb, rows_mem = MEM_BYTES / rb;
        path paths[6];
        int np = 0;
        paths[np++] = (path){"scalar", ds_kquant_kernel_scalar(t), NULL};
        if (avx2) paths[np++] = (path){"avx2", ds_kquant_kernel_avx2(t), NULL};
        if (avx512) paths[np++] = (path){"avx512", ds_kquant_kernel_avx512(t), NULL};
        paths[np++] = (path){"deq+f32", NULL, avx2 ? ds_gemm_kernel_avx2(DS_F32) : ds_gemm_kernel_scalar(DS_F32)};
        uint8_t *w_l2 = make_weights(t, rows_l2), *w_mem = make_weights(t, rows_mem);
        if (!w_l2 || !w_mem) return fprintf(stderr, "kquant-dot: out of memory\n"), 1;
        const inputs in = {t, xq_rows, xf_rows, deq};
        double l2[6], mem[6], batch[6];
        measure(paths, np, &in, w_l2, rows_l2, 1, 20, l2);
        measure(paths, np, &in, w_mem, rows_mem, 1, 1, mem);
        measure(paths, np, &in, w_l2, rows_l2, DS_NX_MAX, 5, batch);
        for (int i = 0; i < np; i++)
            printf("%-5s %-12s %7.2f GB/s %7.2f GB/s %8.1f GFLOP/s\n", ds_dtype_name(t), paths[i].name,
                   (double)(rows_l2 * rb) / l2[i] * 1e-9, (double)(rows_mem * rb) / mem[i] * 1e-9,
                   2.0 * N * (double)rows_l2 * DS_NX_MAX / batch[i] * 1e-9);
        free(w_l2);
        free(w_mem);
    }
    free(xf), free(deq), free(xq);
    return 0;
}
