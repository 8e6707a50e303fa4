/* Tests for src/format/gguf.c: files are assembled in memory with a small byte builder; every
 * rejection must name the file and the key, tensor or field at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/gguf.h"

#define LABEL "t.gguf"

/* ggml type ids used below */
enum { T_F32 = 0, T_F16 = 1, T_Q8_0 = 8, T_Q4_K = 12, T_IQ2_XXS = 16, T_BF16 = 30 };

/* ---- byte builder ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(buf *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        put(b, &byte, 1);
    }
}

static void put_u8(buf *b, uint8_t v) { put_le(b, v, 1); }
static void put_u32(buf *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(buf *b, uint64_t v) { put_le(b, v, 8); }

static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_f64(buf *b, double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64(b, u);
}

static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

/* Starts a key/value: the key and the value type. */
static void kv(buf *b, const char *key, gguf_type type) {
    put_str(b, key);
    put_u32(b, type);
}

static void kv_u32(buf *b, const char *key, uint32_t v) {
    kv(b, key, GGUF_UINT32);
    put_u32(b, v);
}

static void kv_str(buf *b, const char *key, const char *v) {
    kv(b, key, GGUF_STRING);
    put_str(b, v);
}

/* Starts an array key/value: the key, ARRAY, element type and count. */
static void kv_arr(buf *b, const char *key, gguf_type elem, uint64_t n) {
    kv(b, key, GGUF_ARRAY);
    put_u32(b, elem);
    put_u64(b, n);
}

/* A tensor info with ne[] given innermost first, as GGUF stores it. */
static void tensor_info(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                        uint32_t type, uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, offset);
}

/* Pads to `align` and appends `n` data bytes counting 0, 1, 2, ... */
static size_t data_section(buf *b, size_t align, size_t n) {
    while (b->n % align) put_u8(b, 0);
    size_t start = b->n;
    for (size_t i = 0; i < n; i++) put_u8(b, (uint8_t)i);
    return start;
}

/* A file with one F32 tensor "w" of ne = {4} after `kvs` (a callback adding n_kv entries). */
static buf one_tensor_file(uint32_t n_kv, void (*kvs)(buf *), uint32_t type, uint64_t ne0,
                           uint64_t offset, size_t data_len) {
    buf b = {0};
    header(&b, 3, 1, n_kv);
    if (kvs) kvs(&b);
    tensor_info(&b, "w", 1, &ne0, type, offset);
    data_section(&b, 32, data_len);
    return b;
}

/* ---- expecting failure ---- */

/* Expects gguf_parse to fail with a message that starts with the label and contains every
 * (NULL-terminated) fragment. */
static void expect_fail_v(const uint8_t *data, size_t size, va_list ap) {
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_parse(data, size, LABEL, &f, &err), -1);
    if (strncmp(err.msg, LABEL ": ", strlen(LABEL ": ")) != 0)
        fail_msg("message \"%s\" does not start with the label", err.msg);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        if (!strstr(err.msg, s)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, s);
    assert_null(f.kv);
    assert_null(f.tensors);
}

static void expect_fail(buf *b, ...) {
    va_list ap;
    va_start(ap, b);
    expect_fail_v(b->p, b->n, ap);
    va_end(ap);
    free(b->p);
    *b = (buf){0};
}

#define END ((const char *)NULL)

/* ---- a valid file with every kind of value ---- */

static const uint64_t k_ne_embd[2] = {4, 3};  /* shape [3, 4], F32: 48 bytes */
static const uint64_t k_ne_q[2] = {32, 2};    /* shape [2, 32], Q8_0: 2 blocks, 68 bytes */
static const uint64_t k_ne_s[1] = {2};        /* shape [2], F16: 4 bytes */

static buf full_file(uint32_t version) {
    buf b = {0};
    header(&b, version, 3, 18);
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "general.alignment", 64);
    kv(&b, "u8", GGUF_UINT8), put_u8(&b, 200);
    kv(&b, "i8", GGUF_INT8), put_u8(&b, 0xfe);
    kv(&b, "u16", GGUF_UINT16), put_le(&b, 60000, 2);
    kv(&b, "i16", GGUF_INT16), put_le(&b, (uint16_t)-300, 2);
    kv(&b, "i32", GGUF_INT32), put_u32(&b, (uint32_t)-70000);
    kv(&b, "f32", GGUF_FLOAT32), put_f32(&b, 0.25f);
    kv(&b, "bool", GGUF_BOOL), put_u8(&b, 1);
    kv(&b, "u64", GGUF_UINT64), put_u64(&b, UINT64_MAX);
    kv(&b, "i64", GGUF_INT64), put_u64(&b, (uint64_t)INT64_MIN);
    kv(&b, "f64", GGUF_FLOAT64), put_f64(&b, -1.5);
    kv_arr(&b, "tokens", GGUF_STRING, 3), put_str(&b, "a"), put_str(&b, "bc"), put_str(&b, "");
    kv_arr(&b, "ids", GGUF_INT32, 3), put_u32(&b, 1), put_u32(&b, (uint32_t)-2), put_u32(&b, 3);
    kv_arr(&b, "scores", GGUF_FLOAT32, 2), put_f32(&b, 0.5f), put_f32(&b, -1.5f);
    kv_arr(&b, "big", GGUF_UINT64, 1), put_u64(&b, UINT64_MAX);
    kv_arr(&b, "empty", GGUF_UINT8, 0);
    kv_arr(&b, "bytes", GGUF_UINT8, 2), put_u8(&b, 7), put_u8(&b, 255);
    tensor_info(&b, "token_embd.weight", 2, k_ne_embd, T_F32, 0);
    tensor_info(&b, "blk.0.attn_q.weight", 2, k_ne_q, T_Q8_0, 64);
    tensor_info(&b, "output_norm.weight", 1, k_ne_s, T_F16, 192);
    data_section(&b, 64, 196);
    return b;
}

static void check_full_file(const gguf_file *f, const uint8_t *data, uint32_t version) {
    assert_int_equal(f->version, version);
    assert_int_equal(f->n_kv, 18);
    assert_int_equal(f->n_tensors, 3);
    assert_int_equal(f->alignment, 64);
    assert_int_equal(f->data_offset % 64, 0);
    assert_string_equal(f->label, LABEL);

    const gguf_kv *kv = gguf_find(f, "general.architecture");
    assert_non_null(kv);
    assert_int_equal(kv->type, GGUF_STRING);
    assert_int_equal(kv->v.s.len, 5);
    assert_memory_equal(kv->v.s.ptr, "llama", 5);
    assert_ptr_equal(&f->kv[0], kv);
    assert_null(gguf_find(f, "absent"));

    assert_int_equal(gguf_find(f, "u8")->v.u, 200);
    assert_int_equal(gguf_find(f, "i8")->v.i, -2);
    assert_int_equal(gguf_find(f, "u16")->v.u, 60000);
    assert_int_equal(gguf_find(f, "i16")->v.i, -300);
    assert_int_equal(gguf_find(f, "i32")->v.i, -70000);
    assert_true(gguf_find(f, "f32")->v.f == 0.25);
    assert_int_equal(gguf_find(f, "bool")->v.u, 1);
    assert_true(gguf_find(f, "u64")->v.u == UINT64_MAX);
    assert_true(gguf_find(f, "i64")->v.i == INT64_MIN);
    assert_true(gguf_find(f, "f64")->v.f == -1.5);
    kv = gguf_find(f, "tokens");
    assert_int_equal(kv->type, GGUF_ARRAY);
    assert_int_equal(kv->arr_type, GGUF_STRING);
    assert_int_equal(kv->arr_len, 3);
    kv = gguf_find(f, "bytes");
    assert_int_equal(kv->arr_type, GGUF_UINT8);
    assert_int_equal(kv->arr_len, 2);
    assert_int_equal(kv->arr_data[0], 7);
    assert_int_equal(kv->arr_data[1], 255);

    const ds_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_ptr_equal(t, &f->tensors[0]);
    assert_int_equal(t->type, DS_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 3); /* reversed: ne = {4, 3} */
    assert_int_equal(t->shape[1], 4);
    assert_int_equal(t->nbytes, 48);
    assert_ptr_equal(t->data, data + f->data_offset);

    t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    assert_int_equal(t->type, DS_Q8_0);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 32);
    assert_int_equal(t->nbytes, 68);
    assert_ptr_equal(t->data, data + f->data_offset + 64);
    assert_int_equal(((const uint8_t *)t->data)[0], 64);

    t = gguf_find_tensor(f, "output_norm.weight");
    assert_int_equal(t->type, DS_F16);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->nbytes, 4);
    assert_ptr_equal(t->data, data + f->data_offset + 192);
    assert_null(gguf_find_tensor(f, "absent"));
}

static void test_parse_valid(void **state) {
    (void)state;
    for (uint32_t version = 2; version <= 3; version++) {
        buf b = full_file(version);
        gguf_file f;
        ds_err err = {{0}};
        if (gguf_parse(b.p, b.n, LABEL, &f, &err) != 0) fail_msg("%s", err.msg);
        check_full_file(&f, b.p, version);
        gguf_close(&f);
        assert_null(f.kv);
        gguf_close(&f); /* safe twice */
        free(b.p);
    }
}

static void test_getters(void **state) {
    (void)state;
    buf b = full_file(3);
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_parse(b.p, b.n, LABEL, &f, &err), 0);

    int64_t i;
    assert_int_equal(gguf_get_int(&f, "u8", &i, &err), 1);
    assert_int_equal(i, 200);
    assert_int_equal(gguf_get_int(&f, "i16", &i, &err), 1);
    assert_int_equal(i, -300);
    assert_int_equal(gguf_get_int(&f, "general.alignment", &i, &err), 1);
    assert_int_equal(i, 64);
    assert_int_equal(gguf_get_int(&f, "i64", &i, &err), 1);
    assert_true(i == INT64_MIN);
    assert_int_equal(gguf_get_int(&f, "absent", &i, &err), 0);
    assert_int_equal(gguf_get_int(&f, "u64", &i, &err), -1);
    assert_non_null(strstr(err.msg, LABEL ": key 'u64'"));
    assert_int_equal(gguf_get_int(&f, "f32", &i, &err), -1);
    assert_non_null(strstr(err.msg, LABEL ": key 'f32' has type FLOAT32, expected an integer"));
    assert_int_equal(gguf_get_int(&f, "bool", &i, &err), -1);

    double d;
    assert_int_equal(gguf_get_float(&f, "f32", &d, &err), 1);
    assert_true(d == 0.25);
    assert_int_equal(gguf_get_float(&f, "f64", &d, &err), 1);
    assert_true(d == -1.5);
    assert_int_equal(gguf_get_float(&f, "i32", &d, &err), 1);
    assert_true(d == -70000.0);
    assert_int_equal(gguf_get_float(&f, "u64", &d, &err), 1);
    assert_true(d == (double)UINT64_MAX);
    assert_int_equal(gguf_get_float(&f, "absent", &d, &err), 0);
    assert_int_equal(gguf_get_float(&f, "general.architecture", &d, &err), -1);
    assert_non_null(strstr(err.msg, "key 'general.architecture' has type STRING"));

    bool bo = false;
    assert_int_equal(gguf_get_bool(&f, "bool", &bo, &err), 1);
    assert_true(bo);
    assert_int_equal(gguf_get_bool(&f, "absent", &bo, &err), 0);
    assert_int_equal(gguf_get_bool(&f, "u8", &bo, &err), -1);
    assert_non_null(strstr(err.msg, "key 'u8'"));

    gguf_str s;
    assert_int_equal(gguf_get_str(&f, "general.architecture", &s, &err), 1);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    assert_int_equal(gguf_get_str(&f, "absent", &s, &err), 0);
    assert_int_equal(gguf_get_str(&f, "tokens", &s, &err), -1);
    assert_non_null(strstr(err.msg, "key 'tokens' is an array of STRING, expected STRING"));

    gguf_str *strs;
    uint64_t n;
    assert_int_equal(gguf_get_str_array(&f, "tokens", &strs, &n, &err), 1);
    assert_int_equal(n, 3);
    assert_int_equal(strs[0].len, 1);
    assert_memory_equal(strs[0].ptr, "a", 1);
    assert_int_equal(strs[1].len, 2);
    assert_memory_equal(strs[1].ptr, "bc", 2);
    assert_int_equal(strs[2].len, 0);
    free(strs);
    assert_int_equal(gguf_get_str_array(&f, "absent", &strs, &n, &err), 0);
    assert_int_equal(gguf_get_str_array(&f, "ids", &strs, &n, &err), -1);
    assert_non_null(strstr(err.msg, "key 'ids'"));
    assert_int_equal(gguf_get_str_array(&f, "general.architecture", &strs, &n, &err), -1);

    int64_t *ints;
    assert_int_equal(gguf_get_int_array(&f, "ids", &ints, &n, &err), 1);
    assert_int_equal(n, 3);
    assert_int_equal(ints[0], 1);
    assert_int_equal(ints[1], -2);
    assert_int_equal(ints[2], 3);
    free(ints);
    assert_int_equal(gguf_get_int_array(&f, "bytes", &ints, &n, &err), 1);
    assert_int_equal(ints[1], 255);
    free(ints);
    assert_int_equal(gguf_get_int_array(&f, "empty", &ints, &n, &err), 1);
    assert_int_equal(n, 0);
    free(ints);
    assert_int_equal(gguf_get_int_array(&f, "big", &ints, &n, &err), -1);
    assert_non_null(strstr(err.msg, "key 'big': element 0"));
    assert_int_equal(gguf_get_int_array(&f, "scores", &ints, &n, &err), -1);
    assert_non_null(strstr(err.msg, "key 'scores' is an array of FLOAT32"));
    assert_int_equal(gguf_get_int_array(&f, "absent", &ints, &n, &err), 0);

    float *fl;
    assert_int_equal(gguf_get_float_array(&f, "scores", &fl, &n, &err), 1);
    assert_int_equal(n, 2);
    assert_true(fl[0] == 0.5f && fl[1] == -1.5f);
    free(fl);
    assert_int_equal(gguf_get_float_array(&f, "ids", &fl, &n, &err), 1);
    assert_true(fl[1] == -2.0f);
    free(fl);
    assert_int_equal(gguf_get_float_array(&f, "tokens", &fl, &n, &err), -1);
    assert_int_equal(gguf_get_float_array(&f, "u8", &fl, &n, &err), -1);
    assert_int_equal(gguf_get_float_array(&f, "absent", &fl, &n, &err), 0);

    gguf_close(&f);
    free(b.p);
}

static void test_default_alignment_and_no_tensors(void **state) {
    (void)state;
    /* vocab-only files end right after their metadata, with no padding */
    buf b = {0};
    header(&b, 3, 0, 1);
    kv_str(&b, "general.name", "x");
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_parse(b.p, b.n, LABEL, &f, &err), 0);
    assert_int_equal(f.alignment, 32);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.data_offset, (b.n + 31) / 32 * 32);
    gguf_close(&f);
    free(b.p);
}

static void test_every_supported_type(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        ds_dtype type;
    } cases[] = {
        {0, DS_F32},   {1, DS_F16},   {2, DS_Q4_0},  {3, DS_Q4_1},  {6, DS_Q5_0},
        {7, DS_Q5_1},  {8, DS_Q8_0},  {9, DS_Q8_1},  {10, DS_Q2_K}, {11, DS_Q3_K},
        {12, DS_Q4_K}, {13, DS_Q5_K}, {14, DS_Q6_K}, {15, DS_Q8_K}, {24, DS_I8},
        {25, DS_I16},  {26, DS_I32},  {27, DS_I64},  {28, DS_F64},  {30, DS_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_dtype t = cases[i].type;
        uint64_t ne0 = (uint64_t)ds_dtype_block_elems(t);
        size_t bytes = ds_dtype_block_bytes(t);
        buf b = one_tensor_file(0, NULL, cases[i].id, ne0, 0, bytes);
        gguf_file f;
        ds_err err = {{0}};
        if (gguf_parse(b.p, b.n, LABEL, &f, &err) != 0) fail_msg("%s", err.msg);
        assert_int_equal(f.tensors[0].type, t);
        assert_int_equal(f.tensors[0].nbytes, bytes);
        assert_string_equal(gguf_ggml_type_name(cases[i].id), ds_dtype_name(t));
        gguf_close(&f);
        free(b.p);
    }
}

static void test_type_names(void **state) {
    (void)state;
    assert_string_equal(gguf_ggml_type_name(16), "IQ2_XXS");
    assert_string_equal(gguf_ggml_type_name(29), "IQ1_M");
    assert_string_equal(gguf_ggml_type_name(39), "MXFP4");
    assert_null(gguf_ggml_type_name(4));
    assert_null(gguf_ggml_type_name(40));
    assert_null(gguf_ggml_type_name(UINT32_MAX));
}

/* ---- bad files ---- */

static void test_truncated(void **state) {
    (void)state;
    buf b = full_file(3);
    for (size_t n = 0; n < b.n; n++) {
        gguf_file f;
        ds_err err = {{0}};
        if (gguf_parse(b.p, n, LABEL, &f, &err) != -1) fail_msg("prefix of %zu bytes parsed", n);
        if (strncmp(err.msg, LABEL ": ", strlen(LABEL ": ")) != 0) fail_msg("%s", err.msg);
    }
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_parse(b.p, 30, LABEL, &f, &err), -1);
    assert_non_null(strstr(err.msg, "n_kv 18 cannot fit in the 6 bytes left in the file"));
    size_t tokens = 0; /* where the key "tokens" starts; cut inside its second string */
    while (memcmp(b.p + tokens, "tokens", 6) != 0) tokens++;
    assert_int_equal(gguf_parse(b.p, tokens + 6 + 4 + 4 + 8 + 9 + 8 + 1, LABEL, &f, &err), -1);
    assert_non_null(strstr(err.msg, "key 'tokens': array length 3 cannot fit in the 18 bytes"));
    assert_int_equal(gguf_parse(b.p, 10, LABEL, &f, &err), -1);
    assert_non_null(strstr(err.msg, "n_tensors at offset 8 needs 8 bytes but the file ends at 10"));
    assert_int_equal(gguf_parse(NULL, 0, LABEL, &f, &err), -1);
    assert_non_null(strstr(err.msg, "magic"));
    free(b.p);
}

static void test_bad_magic(void **state) {
    (void)state;
    buf b = full_file(3);
    b.p[0] = 'X';
    expect_fail(&b, "not a GGUF file (bad magic)", END);
}

static void test_unsupported_version(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 1, 0, 0);
    expect_fail(&b, "unsupported GGUF version 1", END);
    header(&b, 4, 0, 0);
    expect_fail(&b, "unsupported GGUF version 4", END);
    header(&b, 0x03000000, 0, 0);
    expect_fail(&b, "unsupported GGUF version 50331648 (a big-endian file)", END);
}

static void kvs_align0(buf *b) { kv_u32(b, "general.alignment", 0); }
static void kvs_align3(buf *b) { kv_u32(b, "general.alignment", 3); }
static void kvs_align_u64(buf *b) { kv(b, "general.alignment", GGUF_UINT64), put_u64(b, 32); }

static void test_bad_alignment(void **state) {
    (void)state;
    buf b = one_tensor_file(1, kvs_align0, T_F32, 4, 0, 16);
    expect_fail(&b, "key 'general.alignment' = 0 is not a nonzero power of two", END);
    b = one_tensor_file(1, kvs_align3, T_F32, 4, 0, 16);
    expect_fail(&b, "key 'general.alignment' = 3 is not a nonzero power of two", END);
    b = one_tensor_file(1, kvs_align_u64, T_F32, 4, 0, 16);
    expect_fail(&b, "key 'general.alignment' has type UINT64, expected UINT32", END);
}

static void test_tensor_outside_file(void **state) {
    (void)state;
    buf b = one_tensor_file(0, NULL, T_F32, 4, 0, 15); /* needs 16 */
    expect_fail(&b, "tensor 'w': 16 bytes at offset 0", "past the end of the file", END);
    b = one_tensor_file(0, NULL, T_F32, 4, 32, 40);
    expect_fail(&b, "tensor 'w'", "past the end of the file", END);
    b = one_tensor_file(0, NULL, T_F32, 4, UINT64_MAX - 31, 16);
    expect_fail(&b, "tensor 'w'", "past the end of the file", END);
    /* the data section itself starts past the end */
    b = (buf){0};
    header(&b, 3, 1, 0);
    uint64_t ne = 0;
    tensor_info(&b, "w", 1, &ne, T_F32, 0);
    if (b.n % 32 == 0) put_u8(&b, 0); /* ensure the aligned start lies beyond the end */
    expect_fail(&b, "tensor 'w'", "past the end of the file", END);
}

static void test_string_longer_than_file(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 3, 0, 1);
    put_u64(&b, 1000); /* key length */
    put(&b, "abcdefghijklmnop", 16);
    expect_fail(&b, "key/value 0: key: length 1000 at offset 24 runs past the end of the file",
                END);

    header(&b, 3, 0, 1);
    kv(&b, "general.name", GGUF_STRING);
    put_u64(&b, UINT64_MAX);
    expect_fail(&b, "key 'general.name': string value: length 18446744073709551615", END);

    header(&b, 3, 0, 1);
    kv_arr(&b, "tokenizer.ggml.tokens", GGUF_STRING, 3);
    put_str(&b, "a"), put_str(&b, "b"), put_u64(&b, 50), put(&b, "xyz", 3);
    expect_fail(&b, "key 'tokenizer.ggml.tokens': array element 2: string: length 50", END);

    header(&b, 3, 1, 0);
    put_u64(&b, 99), put(&b, "token_embd.weight___", 20);
    expect_fail(&b, "tensor info 0: tensor name: length 99", END);
}

static void test_huge_counts(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 3, 0, UINT64_MAX);
    expect_fail(&b, "n_kv 18446744073709551615 cannot fit in the 0 bytes left", END);
    header(&b, 3, (uint64_t)1 << 40, 0);
    put_u64(&b, 0);
    expect_fail(&b, "n_tensors 1099511627776 cannot fit in the 8 bytes left", END);
    header(&b, 3, 0, 1);
    kv_arr(&b, "a", GGUF_UINT32, (uint64_t)1 << 62);
    expect_fail(&b, "key 'a': array length 4611686018427387904 cannot fit", END);
    header(&b, 3, 0, 1);
    kv_arr(&b, "a", GGUF_STRING, UINT64_MAX / 2);
    expect_fail(&b, "key 'a': array length", "cannot fit", END);
}

static void test_count_caps(void **state) {
    (void)state;
    /* counts that would fit in a large file still have a sanity limit */
    size_t size = 24 + ((size_t)1 << 20) * 13 + 13;
    buf b = {0};
    header(&b, 3, 0, ((uint64_t)1 << 20) + 1);
    b.p = realloc(b.p, size);
    assert_non_null(b.p);
    memset(b.p + 24, 0, size - 24);
    b.n = size;
    expect_fail(&b, "n_kv 1048577 exceeds the limit of 1048576", END);
}

static void test_unsupported_type(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 3, 1, 0);
    uint64_t ne[2] = {256, 4};
    tensor_info(&b, "blk.0.attn_q.weight", 2, ne, T_IQ2_XXS, 0);
    data_section(&b, 32, 256);
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_parse(b.p, b.n, "model.gguf", &f, &err), -1);
    assert_string_equal(err.msg, "model.gguf: tensor 'blk.0.attn_q.weight' has type IQ2_XXS (16), "
                                 "which dsinfer does not support");
    free(b.p);

    b = one_tensor_file(0, NULL, 77, 4, 0, 16);
    expect_fail(&b, "t.gguf: tensor 'w' has unknown ggml type 77", END);
    b = one_tensor_file(0, NULL, 4, 4, 0, 16);
    expect_fail(&b, "tensor 'w' has unknown ggml type 4", END);
    b = one_tensor_file(0, NULL, 39, 32, 0, 64);
    expect_fail(&b, "tensor 'w' has type MXFP4 (39), which dsinfer does not support", END);
    b = one_tensor_file(0, NULL, 31, 32, 0, 64);
    expect_fail(&b, "tensor 'w' has type Q4_0_4_4 (31)", END);
}

static void test_misaligned_offset(void **state) {
    (void)state;
    buf b = one_tensor_file(0, NULL, T_F32, 4, 16, 64);
    expect_fail(&b, "tensor 'w': data offset 16 is not a multiple of the alignment 32", END);
}

static void test_bad_shapes(void **state) {
    (void)state;
    buf b = one_tensor_file(0, NULL, T_Q4_K, 100, 0, 256);
    expect_fail(&b, "tensor 'w': row length ne[0] = 100 is not a multiple of the Q4_K block size "
                    "256", END);

    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 5, ne5, T_F32, 0);
    data_section(&b, 32, 4);
    expect_fail(&b, "tensor 'w': n_dims = 5; dsinfer supports at most 4", END);

    uint64_t neg[2] = {4, (uint64_t)-1};
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 2, neg, T_F32, 0);
    data_section(&b, 32, 4);
    expect_fail(&b, "tensor 'w': ne[1] = 18446744073709551615 is out of range", END);

    uint64_t big[3] = {(uint64_t)1 << 31, (uint64_t)1 << 31, (uint64_t)1 << 31};
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 3, big, T_F32, 0);
    data_section(&b, 32, 4);
    expect_fail(&b, "tensor 'w': element count overflows at ne[2]", END);

    /* a zero dimension must not hide an overflowing product of the others (fuzzer find) */
    uint64_t zero_big[3] = {0, (uint64_t)1 << 62, 4};
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 3, zero_big, T_F32, 0);
    data_section(&b, 32, 4);
    expect_fail(&b, "tensor 'w': element count overflows at ne[2]", END);

    uint64_t bytes_overflow[2] = {(uint64_t)1 << 31, (uint64_t)1 << 31}; /* 2^62 F32 elements */
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 2, bytes_overflow, T_F32, 0);
    data_section(&b, 32, 4);
    expect_fail(&b, "tensor 'w': data size: size overflows", END);
}

static void test_duplicates(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 3, 2, 0);
    uint64_t ne = 4;
    tensor_info(&b, "w", 1, &ne, T_F32, 0);
    tensor_info(&b, "w", 1, &ne, T_F32, 32);
    data_section(&b, 32, 48);
    expect_fail(&b, "tensor 'w' appears more than once", END);

    header(&b, 3, 0, 3);
    kv_str(&b, "a", "x");
    kv_str(&b, "b", "y");
    kv_str(&b, "a", "z");
    expect_fail(&b, "key 'a' appears more than once", END);
}

static void test_bad_values(void **state) {
    (void)state;
    buf b = {0};
    header(&b, 3, 0, 1);
    kv(&b, "k", 13), put_u64(&b, 0);
    expect_fail(&b, "key 'k': unknown value type 13", END);

    header(&b, 3, 0, 1);
    kv_arr(&b, "k", GGUF_ARRAY, 1), put_u32(&b, GGUF_UINT8), put_u64(&b, 1), put_u8(&b, 0);
    expect_fail(&b, "key 'k': nested arrays are not supported", END);

    header(&b, 3, 0, 1);
    kv_arr(&b, "k", 99, 0), put_u8(&b, 0);
    expect_fail(&b, "key 'k': unknown array element type 99", END);

    header(&b, 3, 0, 1);
    put_u64(&b, 3), put(&b, "a\0b", 3), put_u32(&b, GGUF_UINT8), put_u8(&b, 1);
    expect_fail(&b, "key/value 0: key at offset 32 contains a NUL byte", END);

    header(&b, 3, 0, 1);
    kv(&b, "k", GGUF_UINT32), put_le(&b, 0, 2);
    expect_fail(&b, "key 'k': UINT32 at offset", "needs 4 bytes", END);
}

/* ---- files on disk ---- */

/* Path of a file under ../shared, or NULL (test skipped, or failed under CI=true). */
static const char *shared_path(char *out, size_t cap, const char *rel) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    snprintf(out, cap, "%s/../shared/%s", src ? src : ".", rel);
    if (access(out, R_OK) == 0) return out;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("%s is missing (CI=true)", out);
    print_message("skipping: %s not found\n", out);
    return NULL;
}

static void test_open_real_vocab(void **state) {
    (void)state;
    char path[4096];
    if (!shared_path(path, sizeof path, "tokenizer-tests/ggml-vocab-deepseek-llm.gguf")) {
        skip();
        return;
    }
    gguf_file f;
    ds_err err = {{0}};
    if (gguf_open(path, &f, &err) != 0) fail_msg("%s", err.msg);
    assert_string_equal(f.label, path);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.n_tensors, 0);
    gguf_str *tokens;
    uint64_t n;
    assert_int_equal(gguf_get_str_array(&f, "tokenizer.ggml.tokens", &tokens, &n, &err), 1);
    assert_true(n > 0);
    for (uint64_t i = 0; i < n; i++)
        assert_true((const uint8_t *)tokens[i].ptr + tokens[i].len <= f.map.data + f.map.size);
    free(tokens);
    gguf_str arch;
    assert_int_equal(gguf_get_str(&f, "general.architecture", &arch, &err), 1);
    assert_true(arch.len > 0);
    gguf_close(&f);
}

static void test_open_missing(void **state) {
    (void)state;
    gguf_file f;
    ds_err err = {{0}};
    assert_int_equal(gguf_open("/nonexistent/model.gguf", &f, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
    gguf_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_default_alignment_and_no_tensors),
        cmocka_unit_test(test_every_supported_type),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_unsupported_version),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_tensor_outside_file),
        cmocka_unit_test(test_string_longer_than_file),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_count_caps),
        cmocka_unit_test(test_unsupported_type),
        cmocka_unit_test(test_misaligned_offset),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_open_real_vocab),
        cmocka_unit_test(test_open_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
