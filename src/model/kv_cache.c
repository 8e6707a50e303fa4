#include "model/kv_cache.h"

#include <stdlib.h>

uint64_t ds_kv_bytes(int n_layer, int width_k, int width_v, int block_size, int64_t n_tokens) {
    uint64_t blocks = (uint64_t)((n_tokens + block_size - 1) / block_size);
    return (uint64_t)n_layer * blocks * (uint64_t)block_size * (uint64_t)(width_k + width_v) * sizeof(float);
}

int ds_kv_create(ds_kv_cache **out, int n_layer, int width_k, int width_v, int block_size, int n_blocks,
                 ds_err *err) {
    *out = NULL;
    ds_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return ds_errf(err, "out of memory for the KV cache");
    kv->n_layer = n_layer;
    kv->width_k = width_k;
    kv->width_v = width_v;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    size_t slots = (size_t)n_layer * (size_t)n_blocks * (size_t)block_size;
    kv->k = malloc(slots * (size_t)width_k * sizeof(float));
    kv->v = width_v ? malloc(slots * (size_t)width_v * sizeof(float)) : NULL;
    kv->refcount = calloc((size_t)n_blocks, sizeof *kv->refcount);
    kv->free_ids = malloc((size_t)n_blocks * sizeof *kv->free_ids);
    if (!kv->k || (width_v && !kv->v) || !kv->refcount || !kv->free_ids) {
        ds_kv_free(kv);
        return ds_errf(err, "out of memory for a KV cache of %d blocks × %d positions (%.1f MiB)", n_blocks,
                       block_size, (double)slots * (width_k + width_v) * sizeof(float) / (1 << 20));
    }
    /* Hand out low block ids first. */
    for (int i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    *out = kv;
    return 0;
}

void ds_kv_free(ds_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->refcount);
    free(kv->free_ids);
    free(kv);
}

int32_t ds_kv_alloc_block(ds_kv_cache *kv) {
    if (kv->n_free == 0) return -1;
    int32_t b = kv->free_ids[--kv->n_free];
    kv->refcount[b] = 1;
    return b;
}

void ds_kv_ref(ds_kv_cache *kv, int32_t block) { kv->refcount[block]++; }

void ds_kv_unref(ds_kv_cache *kv, int32_t block) {
    if (--kv->refcount[block] == 0) kv->free_ids[kv->n_free++] = block;
}

int ds_kv_seq_reserve(ds_kv_cache *kv, ds_kv_seq *s, int n_positions, ds_err *err) {
    int need = (n_positions + kv->block_size - 1) / kv->block_size;
    if (need <= s->n_blocks) return 0;
    if (need - s->n_blocks > kv->n_free)
        return ds_errf(err, "KV cache full: %d more blocks of %d positions needed, %d free",
                       need - s->n_blocks, kv->block_size, kv->n_free);
    if (need > s->cap) {
        int cap = need > 2 * s->cap ? need : 2 * s->cap;
        int32_t *b = realloc(s->blocks, (size_t)cap * sizeof *b);
        if (!b) return ds_errf(err, "out of memory for a block table");
        s->blocks = b;
        s->cap = cap;
    }
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = ds_kv_alloc_block(kv);
    return 0;
}

void ds_kv_seq_release(ds_kv_cache *kv, ds_kv_seq *s) {
    for (int i = 0; i < s->n_blocks; i++) ds_kv_unref(kv, s->blocks[i]);
    free(s->blocks);
    *s = (ds_kv_seq){0};
}
