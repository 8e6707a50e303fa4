/* Paged KV cache: a pool of fixed-size blocks, each holding block_size positions of K and V
 * for every layer. A sequence owns a block table (block ids in position order); blocks carry
 * reference counts so that sequences can share identical prefixes (the server's prefix cache
 * builds on this). Values are f32: K/V rounding would otherwise break agreement with the
 * f32 references. */
#ifndef DS_MODEL_KV_CACHE_H
#define DS_MODEL_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct ds_kv_cache {
    int n_layer;
    int width_k;        /* values per position per layer in k: n_head_kv*head_dim, or MLA's latent + rope key */
    int width_v;        /* values per position per layer in v (0 for MLA, whose V is the latent) */
    int block_size;     /* positions per block */
    int n_blocks;
    float *k;           /* [n_layer][n_blocks][block_size][width_k] */
    float *v;           /* [n_layer][n_blocks][block_size][width_v], NULL when width_v is 0 */
    int32_t *refcount;  /* [n_blocks] */
    int32_t *free_ids;  /* stack of free block ids */
    int n_free;
} ds_kv_cache;

/* A sequence's block table. */
typedef struct ds_kv_seq {
    int32_t *blocks;
    int n_blocks, cap;
} ds_kv_seq;

int ds_kv_create(ds_kv_cache **out, int n_layer, int width_k, int width_v, int block_size, int n_blocks,
                 ds_err *err);
void ds_kv_free(ds_kv_cache *kv);

/* Bytes a cache of n_tokens positions needs (rounded up to whole blocks). */
uint64_t ds_kv_bytes(int n_layer, int width_k, int width_v, int block_size, int64_t n_tokens);

/* Takes a free block with refcount 1; -1 when the pool is exhausted. */
int32_t ds_kv_alloc_block(ds_kv_cache *kv);
void ds_kv_ref(ds_kv_cache *kv, int32_t block);
/* Drops a reference; the block returns to the free pool at zero. */
void ds_kv_unref(ds_kv_cache *kv, int32_t block);

/* Makes sure the sequence has blocks for positions [0, n_positions); fails when the pool runs
 * out (naming how many blocks were needed and free). */
int ds_kv_seq_reserve(ds_kv_cache *kv, ds_kv_seq *s, int n_positions, ds_err *err);
/* Releases every block of the sequence and empties its table. */
void ds_kv_seq_release(ds_kv_cache *kv, ds_kv_seq *s);

/* The slot where position `pos` of a sequence with block table `table` lives, for layer
 * `layer`: its K values start at k + slot·width_k, its V values at v + slot·width_v. */
static inline size_t ds_kv_slot(const ds_kv_cache *kv, int layer, const int32_t *table, int pos) {
    size_t block = (size_t)table[pos / kv->block_size];
    return ((size_t)layer * (size_t)kv->n_blocks + block) * (size_t)kv->block_size + (size_t)(pos % kv->block_size);
}

#endif
