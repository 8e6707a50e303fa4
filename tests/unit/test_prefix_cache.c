/* Prefix cache: hashes chain over parents, lookups verify tokens and take references, the cache
 * keeps blocks alive after their sequence ends, and allocation evicts only blocks nobody but
 * the cache holds, least recently used first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "engine/prefix_cache.h"

#define BS 4

static ds_kv_cache *make_kv(int n_blocks) {
    ds_kv_cache *kv;
    ds_err err = {0};
    assert_int_equal(ds_kv_create(&kv, 1, 2, 2, BS, n_blocks, &err), 0);
    return kv;
}

static void test_hash_chains(void **state) {
    const int32_t a[BS] = {1, 2, 3, 4}, b[BS] = {1, 2, 3, 5};
    assert_true(pc_hash(0, a, BS) == pc_hash(0, a, BS));
    assert_true(pc_hash(0, a, BS) != pc_hash(0, b, BS));
    assert_true(pc_hash(pc_hash(0, a, BS), a, BS) != pc_hash(pc_hash(0, b, BS), a, BS));
}

static void test_insert_lookup_refcounts(void **state) {
    ds_kv_cache *kv = make_kv(4);
    pc_cache *c = pc_create(kv);
    const int32_t t[BS] = {7, 8, 9, 10}, u[BS] = {7, 8, 9, 11};
    uint64_t h = pc_hash(0, t, BS);
    ds_kv_seq s = {0};
    s.blocks = malloc(sizeof(int32_t));
    s.cap = 1;
    s.blocks[s.n_blocks++] = pc_alloc_block(c);
    int32_t blk = s.blocks[0];
    assert_int_equal(pc_lookup(c, h, t), -1);
    pc_insert(c, h, t, blk);
    assert_int_equal(kv->refcount[blk], 2);
    assert_int_equal(pc_n_cached(c), 1);
    pc_release_seq(c, &s); /* the cache keeps it */
    assert_int_equal(kv->refcount[blk], 1);
    assert_int_equal(pc_available(c), 4);
    assert_int_equal(pc_lookup(c, h, u), -1); /* same hash slot, other tokens: a miss */
    assert_int_equal(pc_lookup(c, h, t), blk);
    assert_int_equal(kv->refcount[blk], 2);
    assert_int_equal(pc_available(c), 3); /* in use again: not evictable */
    ds_kv_unref(kv, blk);
    pc_free(c);
    assert_int_equal(kv->n_free, 4);
    ds_kv_free(kv);
}

static void test_lru_eviction(void **state) {
    ds_kv_cache *kv = make_kv(3);
    pc_cache *c = pc_create(kv);
    int32_t toks[3][BS] = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}};
    int32_t blocks[3];
    uint64_t hs[3];
    for (int i = 0; i < 3; i++) {
        ds_kv_seq s = {0};
        s.blocks = malloc(sizeof(int32_t));
        s.cap = 1;
        s.blocks[s.n_blocks++] = blocks[i] = pc_alloc_block(c);
        hs[i] = pc_hash(0, toks[i], BS);
        pc_insert(c, hs[i], toks[i], blocks[i]);
        pc_release_seq(c, &s);
    }
    assert_int_equal(kv->n_free, 0);
    assert_int_equal(pc_available(c), 3);
    /* touch block 0: block 1 becomes the oldest */
    int32_t b0 = pc_lookup(c, hs[0], toks[0]);
    assert_int_equal(b0, blocks[0]);
    int32_t got = pc_alloc_block(c);
    assert_int_equal(got, blocks[1]);
    assert_int_equal(pc_lookup(c, hs[1], toks[1]), -1);
    got = pc_alloc_block(c);
    assert_int_equal(got, blocks[2]);
    assert_int_equal(pc_alloc_block(c), -1); /* block 0 is referenced: never evicted */
    ds_kv_unref(kv, b0);
    ds_kv_unref(kv, blocks[1]);
    ds_kv_unref(kv, blocks[2]);
    pc_free(c);
    assert_int_equal(kv->n_free, 3);
    ds_kv_free(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_chains),
        cmocka_unit_test(test_insert_lookup_refcounts),
        cmocka_unit_test(test_lru_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
