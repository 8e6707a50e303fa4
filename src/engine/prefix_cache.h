/* Prefix cache: full KV blocks remembered by content so that requests sharing a prompt prefix
 * share blocks instead of recomputing them.
 *
 * A full block is named by pc_hash(parent block's hash, its block_size tokens); the chain of
 * hashes therefore names the whole prefix up to and including that block. The cache holds one
 * reference of its own on every block it knows (ds_kv_ref), so a cached block outlives the
 * sequence that computed it. A cached block whose only reference is the cache's is
 * "evictable": pc_alloc_block takes a free block from the pool when there is one and otherwise
 * evicts the least recently used evictable block. Blocks are only ever cached once full and
 * computed, and a sequence never writes into a block it got from the cache (it writes past
 * them), so sharing needs no copy-on-write.
 *
 * Not thread-safe: the engine thread owns it, like the KV cache it wraps. */
#ifndef DS_ENGINE_PREFIX_CACHE_H
#define DS_ENGINE_PREFIX_CACHE_H

#include <stdint.h>

#include "model/kv_cache.h"

typedef struct pc_cache pc_cache;

/* A cache over `kv` (which must outlive it); NULL when memory runs out. */
pc_cache *pc_create(ds_kv_cache *kv);
/* Drops the cache's references (blocks still used by sequences stay allocated) and frees it. */
void pc_free(pc_cache *c);

/* Hash of a block: its parent's hash (0 for the first block) and its n tokens. */
uint64_t pc_hash(uint64_t parent, const int32_t *tokens, int n);

/* The cached block with this hash and these block_size tokens, with a new reference taken for
 * the caller (who releases it with ds_kv_unref); -1 on a miss. */
int32_t pc_lookup(pc_cache *c, uint64_t hash, const int32_t *tokens);

/* Remembers a full, computed block. No-op when the hash is already cached (the caller keeps
 * its own copy) or the block is already cached under another name. */
void pc_insert(pc_cache *c, uint64_t hash, const int32_t *tokens, int32_t block);

/* A block with refcount 1 for the caller: a free one, else the least recently used evictable
 * one (dropped from the cache); -1 when neither exists. */
int32_t pc_alloc_block(pc_cache *c);

/* Blocks that pc_alloc_block could hand out now: free plus evictable. */
int pc_available(const pc_cache *c);

/* Blocks currently cached (evictable or in use). */
int pc_n_cached(const pc_cache *c);

/* Marks the sequence's blocks as just used (LRU order) and drops its references. */
void pc_release_seq(pc_cache *c, ds_kv_seq *s);

#endif
