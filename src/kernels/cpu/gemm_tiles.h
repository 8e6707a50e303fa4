/* Internal to rows_avx2.c and rows_avx512.c: the loop that covers n_w weight rows × n_x
 * activation rows with tiles of at most TW × TX. Each variant defines NAME##_tile(w, ldw, x,
 * ldx, n, y, ldy, nw, nx) for one tile and a CASES(NAME) macro listing, with
 * DS_GEMM_TILE_CASE, every tile shape it needs (full, and the smaller ones at the edges), so
 * nw and nx are compile-time constants inside each tile. */
#ifndef DS_KERNELS_CPU_GEMM_TILES_H
#define DS_KERNELS_CPU_GEMM_TILES_H

#include <stddef.h>
#include <stdint.h>

#define DS_GEMM_TILE_CASE(NAME, NW, NX)                                                           \
    case (NW) * 8 + (NX): NAME##_tile(w, ldw, x, ldx, n, y, ldy, NW, NX); break;

/* Defines `ATTR static void NAME(...)`, a ds_gemm_kernel. */
#define DS_GEMM_TILES(NAME, ATTR, TW, TX, CASES)                                                  \
    _Static_assert((TX) < 8, "tile shapes are numbered nw * 8 + nx");                             \
    ATTR static void NAME(const void *wp, size_t w_row_bytes, int n_w, const float *x0, size_t ldx, \
                          int n_x, int n, float *y0, size_t ldy) {                                \
        for (int r = 0; r < n_x; r += (TX)) {                                                     \
            const int nx = n_x - r < (TX) ? n_x - r : (TX);                                       \
            for (int o = 0; o < n_w; o += (TW)) {                                                 \
                const int nw = n_w - o < (TW) ? n_w - o : (TW);                                   \
                const uint8_t *w = (const uint8_t *)wp + (size_t)o * w_row_bytes;                 \
                const float *x = x0 + (size_t)r * ldx;                                            \
                float *y = y0 + (size_t)r * ldy + o;                                              \
                const size_t ldw = w_row_bytes;                                                   \
                switch (nw * 8 + nx) { CASES(NAME) }                                              \
            }                                                                                     \
        }                                                                                         \
    }

#endif
