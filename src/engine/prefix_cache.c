/* Prefix cache (see prefix_cache.h). Every KV block has one entry slot, used while the block is
 * cached: its hash, its tokens (to rule out hash collisions), when it was last used, and the
 * next entry in its hash bucket. Eviction scans for the oldest evictable block; it runs only
 * when the pool has no free block, and the pool has thousands of blocks at most. */
#include "engine/prefix_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct pc_entry {
    uint64_t hash;
    uint64_t last_used; /* tick of the last lookup, insert or release */
    int32_t next;       /* next block in the same bucket, -1 at the end */
    bool cached;
} pc_entry;

struct pc_cache {
    ds_kv_cache *kv;
    pc_entry *entries;  /* [n_blocks] */
    int32_t *tokens;    /* [n_blocks][block_size] tokens of each cached block */
    int32_t *buckets;   /* [n_buckets] first block of each chain, -1 if empty */
    uint64_t mask;      /* n_buckets - 1 */
    uint64_t tick;
    int n_cached;
};

pc_cache *pc_create(ds_kv_cache *kv) {
    pc_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    size_t n_buckets = 16;
    while (n_buckets < (size_t)kv->n_blocks * 2) n_buckets *= 2;
    c->kv = kv;
    c->mask = n_buckets - 1;
    c->entries = calloc((size_t)kv->n_blocks, sizeof *c->entries);
    c->tokens = malloc((size_t)kv->n_blocks * (size_t)kv->block_size * sizeof *c->tokens);
    c->buckets = malloc(n_buckets * sizeof *c->buckets);
    if (!c->entries || !c->tokens || !c->buckets) {
        pc_free(c);
        return NULL;
    }
    for (size_t i = 0; i < n_buckets; i++) c->buckets[i] = -1;
    return c;
}

void pc_free(pc_cache *c) {
    if (!c) return;
    if (c->entries)
        for (int b = 0; b < c->kv->n_blocks; b++)
            if (c->entries[b].cached) ds_kv_unref(c->kv, b);
    free(c->entries);
    free(c->tokens);
    free(c->buckets);
    free(c);
}

/* splitmix64's finalizer: a cheap, well-mixing step for 64-bit words. */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t pc_hash(uint64_t parent, const int32_t *tokens, int n) {
    uint64_t h = mix(parent ^ 0x6a09e667f3bcc908ULL);
    for (int i = 0; i < n; i++) h = mix(h ^ (uint32_t)tokens[i]);
    return h;
}

static const int32_t *block_tokens(const pc_cache *c, int32_t b) {
    return c->tokens + (size_t)b * (size_t)c->kv->block_size;
}

static int32_t find(const pc_cache *c, uint64_t hash, const int32_t *tokens) {
    for (int32_t b = c->buckets[hash & c->mask]; b >= 0; b = c->entries[b].next)
        if (c->entries[b].hash == hash &&
            !memcmp(block_tokens(c, b), tokens, (size_t)c->kv->block_size * sizeof *tokens))
            return b;
    return -1;
}

int32_t pc_lookup(pc_cache *c, uint64_t hash, const int32_t *tokens) {
    int32_t b = find(c, hash, tokens);
    if (b < 0) return -1;
    ds_kv_ref(c->kv, b);
    c->entries[b].last_used = ++c->tick;
    return b;
}

void pc_insert(pc_cache *c, uint64_t hash, const int32_t *tokens, int32_t block) {
    pc_entry *e = &c->entries[block];
    if (e->cached || find(c, hash, tokens) >= 0) return;
    memcpy(c->tokens + (size_t)block * (size_t)c->kv->block_size, tokens,
           (size_t)c->kv->block_size * sizeof *tokens);
    e->hash = hash;
    e->cached = true;
    e->last_used = ++c->tick;
    e->next = c->buckets[hash & c->mask];
    c->buckets[hash & c->mask] = block;
    ds_kv_ref(c->kv, block);
    c->n_cached++;
}

/* Unlinks a cached block from its bucket (its reference is the caller's to drop). */
static void forget(pc_cache *c, int32_t block) {
    pc_entry *e = &c->entries[block];
    int32_t *link = &c->buckets[e->hash & c->mask];
    while (*link != block) link = &c->entries[*link].next;
    *link = e->next;
    e->cached = false;
    c->n_cached--;
}

int32_t pc_alloc_block(pc_cache *c) {
    int32_t b = ds_kv_alloc_block(c->kv);
    if (b >= 0) return b;
    int32_t oldest = -1;
    for (int32_t i = 0; i < c->kv->n_blocks; i++)
        if (c->entries[i].cached && c->kv->refcount[i] == 1 &&
            (oldest < 0 || c->entries[i].last_used < c->entries[oldest].last_used))
            oldest = i;
    if (oldest < 0) return -1;
    forget(c, oldest);
    /* The cache's reference becomes the caller's: the block goes straight to its new owner. */
    return oldest;
}

int pc_available(const pc_cache *c) {
    int n = c->kv->n_free;
    for (int32_t i = 0; i < c->kv->n_blocks; i++)
        if (c->entries[i].cached && c->kv->refcount[i] == 1) n++;
    return n;
}

int pc_n_cached(const pc_cache *c) { return c->n_cached; }

void pc_release_seq(pc_cache *c, ds_kv_seq *s) {
    uint64_t t = ++c->tick;
    /* Later blocks of a prefix are only useful with the earlier ones: stamp them so that
     * eviction takes a chain from its end. */
    for (int i = 0; i < s->n_blocks; i++) {
        if (c->entries[s->blocks[i]].cached) c->entries[s->blocks[i]].last_used = t + (uint64_t)(s->n_blocks - i);
        ds_kv_unref(c->kv, s->blocks[i]);
    }
    c->tick += (uint64_t)s->n_blocks;
    free(s->blocks);
    *s = (ds_kv_seq){0};
}
