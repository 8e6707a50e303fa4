/* libFuzzer target for the GGUF parser: parse arbitrary bytes, then read every key, value,
 * array element (through the typed getters) and tensor byte, so that anything the parser let
 * through that points outside the input is caught by ASan. */
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/gguf.h"

static volatile uint8_t g_sink;

static uint8_t touch(const void *data, uint64_t n) {
    const uint8_t *p = data;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc ^= p[i];
    return acc;
}

/* Reads an array through whichever getters accept it. */
static uint8_t walk_array(const gguf_file *f, const char *key) {
    uint8_t acc = 0;
    uint64_t n;
    ds_err err;
    gguf_str *strs;
    if (gguf_get_str_array(f, key, &strs, &n, &err) == 1) {
        for (uint64_t i = 0; i < n; i++) acc ^= touch(strs[i].ptr, strs[i].len);
        free(strs);
    }
    int64_t *ints;
    if (gguf_get_int_array(f, key, &ints, &n, &err) == 1) {
        for (uint64_t i = 0; i < n; i++) acc ^= (uint8_t)ints[i];
        free(ints);
    }
    float *floats;
    if (gguf_get_float_array(f, key, &floats, &n, &err) == 1) {
        for (uint64_t i = 0; i < n; i++) acc ^= (uint8_t)(floats[i] > 0);
        free(floats);
    }
    return acc;
}

static uint8_t walk_kv(const gguf_file *f, const gguf_kv *kv) {
    uint8_t acc = touch(kv->key, strlen(kv->key));
    ds_err err;
    int64_t i;
    double d;
    bool b;
    gguf_str s;
    if (gguf_get_int(f, kv->key, &i, &err) == 1) acc ^= (uint8_t)i;
    if (gguf_get_float(f, kv->key, &d, &err) == 1) acc ^= (uint8_t)(d > 0);
    if (gguf_get_bool(f, kv->key, &b, &err) == 1) acc ^= b;
    if (gguf_get_str(f, kv->key, &s, &err) == 1) acc ^= touch(s.ptr, s.len);
    if (kv->type == GGUF_ARRAY) acc ^= walk_array(f, kv->key);
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file f;
    ds_err err;
    if (gguf_parse(data, size, "fuzz.gguf", &f, &err) != 0) return 0;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < f.n_kv; i++) acc ^= walk_kv(&f, &f.kv[i]);
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        const ds_tensor *t = &f.tensors[i];
        acc ^= touch(t->data, t->nbytes) ^ touch(t->name, strlen(t->name));
        if (gguf_find_tensor(&f, t->name) != t) __builtin_trap();
    }
    g_sink = acc;
    gguf_close(&f);
    return 0;
}
