/* Tests for src/format/safetensors.c: files are built in memory from a JSON header and a data
 * section; every rejection must name the file and the tensor or field at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/safetensors.h"

#define LABEL "t.safetensors"

/* ---- building files ---- */

typedef struct st_bytes {
    uint8_t *data;
    size_t size;
} st_bytes;

/* u64 LE header length, the JSON header, then `data_len` bytes counting 0, 1, 2, ... */
static st_bytes make_file(const char *json, size_t data_len) {
    size_t hlen = strlen(json);
    st_bytes b = { .size = 8 + hlen + data_len };
    b.data = malloc(b.size);
    assert_non_null(b.data);
    for (int i = 0; i < 8; i++) b.data[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b.data + 8, json, hlen);
    for (size_t i = 0; i < data_len; i++) b.data[8 + hlen + i] = (uint8_t)i;
    return b;
}

/* Parses json + data and expects failure with a message starting with the label and holding
 * each of the (NULL-terminated) fragments. */
static void expect_fail_bytes(const uint8_t *data, size_t size, ...) {
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_parse(data, size, LABEL, &f, &err), -1);
    assert_int_equal(strncmp(err.msg, LABEL ": ", strlen(LABEL ": ")), 0);
    va_list ap;
    va_start(ap, size);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (!strstr(err.msg, s)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, s);
    }
    va_end(ap);
    /* a failed parse leaves nothing to free */
    assert_int_equal(f.n_tensors, 0);
    assert_null(f.tensors);
}

#define EXPECT_FAIL(json, data_len, ...)                                      \
    do {                                                                      \
        st_bytes b_ = make_file(json, data_len);                              \
        expect_fail_bytes(b_.data, b_.size, __VA_ARGS__, (const char *)NULL); \
        free(b_.data);                                                        \
    } while (0)

/* ---- valid files ---- */

static void test_parse_valid(void **state) {
    (void)state;
    const char *json =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"s\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[32,33]},"
        "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[33,33]}}";
    st_bytes b = make_file(json, 33);
    const uint8_t *data = b.data + 8 + strlen(json);
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_parse(b.data, b.size, LABEL, &f, &err), 0);
    assert_int_equal(f.n_tensors, 4);
    assert_null(f.map.data);

    /* sorted by data offset (the empty tensor at 33 after the scalar at 32) */
    assert_string_equal(f.tensors[0].name, "a");
    assert_string_equal(f.tensors[1].name, "b");
    assert_string_equal(f.tensors[2].name, "s");
    assert_string_equal(f.tensors[3].name, "e");

    const ds_tensor *a = st_find(&f, "a");
    assert_ptr_equal(a, &f.tensors[0]);
    assert_int_equal(a->type, DS_F32);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_ptr_equal(a->data, data);
    assert_int_equal(a->nbytes, 24);

    const ds_tensor *t = st_find(&f, "b");
    assert_int_equal(t->type, DS_BF16);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 4);
    assert_ptr_equal(t->data, data + 24);
    assert_int_equal(t->nbytes, 8);

    t = st_find(&f, "s");
    assert_int_equal(t->type, DS_I8);
    assert_int_equal(t->ndim, 0);
    assert_ptr_equal(t->data, data + 32);
    assert_int_equal(t->nbytes, 1);
    assert_int_equal(((const uint8_t *)t->data)[0], 32);

    t = st_find(&f, "e");
    assert_int_equal(t->type, DS_F16);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 5);
    assert_int_equal(t->nbytes, 0);

    assert_null(st_find(&f, "__metadata__"));
    assert_null(st_find(&f, "missing"));
    st_close(&f);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f); /* safe twice */
    free(b.data);
}

static void test_every_dtype(void **state) {
    (void)state;
    static const struct {
        const char *name;
        ds_dtype type;
        size_t size;
    } cases[] = {
        {"F64", DS_F64, 8},  {"F32", DS_F32, 4},   {"F16", DS_F16, 2},
        {"BF16", DS_BF16, 2}, {"I64", DS_I64, 8},  {"I32", DS_I32, 4},
        {"I16", DS_I16, 2},  {"I8", DS_I8, 1},     {"U8", DS_U8, 1},
        {"BOOL", DS_BOOL, 1}, {"F8_E4M3", DS_F8_E4M3, 1}, {"F8_E5M2", DS_F8_E5M2, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"w\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}",
                 cases[i].name, 3 * cases[i].size);
        st_bytes b = make_file(json, 3 * cases[i].size);
        st_file f;
        ds_err err = {{0}};
        assert_int_equal(st_parse(b.data, b.size, LABEL, &f, &err), 0);
        assert_int_equal(f.tensors[0].type, cases[i].type);
        assert_int_equal(f.tensors[0].nbytes, 3 * cases[i].size);
        st_close(&f);
        free(b.data);
    }
}

static void test_empty_header_and_padding(void **state) {
    (void)state;
    /* writers pad the header with spaces to align the data section */
    st_bytes b = make_file("{}      ", 0);
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_parse(b.data, b.size, LABEL, &f, &err), 0);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f);
    free(b.data);
}

/* ---- bad files ---- */

static void test_truncated(void **state) {
    (void)state;
    static const uint8_t bytes[5] = {2, 0, 0, 0, 0};
    expect_fail_bytes(bytes, sizeof bytes, "5 bytes, too short", (const char *)NULL);
    expect_fail_bytes(NULL, 0, "0 bytes", (const char *)NULL);
}

static void test_header_length_beyond_file(void **state) {
    (void)state;
    st_bytes b = make_file("{}", 0);
    b.data[0] = 200;
    expect_fail_bytes(b.data, b.size, "header length 200", "past the end of the file (10 bytes)",
                      (const char *)NULL);
    memset(b.data, 0xff, 8);
    expect_fail_bytes(b.data, b.size, "header length 18446744073709551615", (const char *)NULL);
    free(b.data);
}

static void test_header_length_limit(void **state) {
    (void)state;
    size_t hlen = 100 * 1024 * 1024 + 1;
    uint8_t *data = calloc(1, 8 + hlen); /* pages stay untouched: we fail before reading them */
    assert_non_null(data);
    for (int i = 0; i < 8; i++) data[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    expect_fail_bytes(data, 8 + hlen, "header length 104857601 exceeds the limit",
                      (const char *)NULL);
    free(data);
}

static void test_bad_json(void **state) {
    (void)state;
    EXPECT_FAIL("{\"a\":", 0, "header JSON");
    EXPECT_FAIL("[1,2]", 0, "not an object");
    EXPECT_FAIL("{} x", 0, "header JSON");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, "header JSON", "duplicate");
}

static void test_bad_fields(void **state) {
    (void)state;
    EXPECT_FAIL("{\"w\":[]}", 0, "tensor 'w'", "not a JSON object");
    EXPECT_FAIL("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'w'", "'dtype'");
    EXPECT_FAIL("{\"w\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'w'",
                "'dtype'");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'w'", "'shape'");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                "tensor 'w'", "shape entry 0");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1, 1.0],\"data_offsets\":[0,4]}}", 4,
                "tensor 'w'", "shape entry 1");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "tensor 'w'",
                "'data_offsets'");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                "tensor 'w'", "'data_offsets'");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4,
                "tensor 'w'", "'data_offsets'");
}

static void test_unknown_dtype(void **state) {
    (void)state;
    EXPECT_FAIL("{\"model.w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                "tensor 'model.w'", "unknown dtype 'F4'");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                "tensor 'w'", "unknown dtype 'f32'");
}

static void test_size_mismatch(void **state) {
    (void)state;
    st_bytes b = make_file(
        "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,100]}}", 256);
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_parse(b.data, b.size, "model.safetensors", &f, &err), -1);
    assert_string_equal(err.msg, "model.safetensors: tensor 'model.norm.weight': data_offsets "
                                 "[0, 100] but F32 shape [64] needs 256 bytes");
    free(b.data);
    EXPECT_FAIL("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,14]}}", 16,
                "tensor 'w'", "BF16 shape [2, 3] needs 12 bytes");
}

static void test_shape_overflow(void **state) {
    (void)state;
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
                "\"data_offsets\":[0,4]}}",
                4, "tensor 'w'", "too many elements");
    /* a zero dimension must not hide an overflowing product of the others */
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,4611686018427387904,4],"
                "\"data_offsets\":[0,0]}}",
                0, "tensor 'w'", "shape [0, 4611686018427387904, 4] has too many elements");
    /* fits in int64 elements but not in bytes */
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                "\"data_offsets\":[0,4]}}",
                4, "tensor 'w'", "overflows");
}

static void test_too_many_dims(void **state) {
    (void)state;
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                "tensor 'w'", "5 dimensions", "at most 4");
}

static void test_offsets_outside(void **state) {
    (void)state;
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
                "tensor 'w'", "[4, 12] run past the end of the 8-byte data section");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8,
                "tensor 'w'", "past the end");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                "tensor 'w'", "end before they begin");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[9223372036854775807,9223372036854775807]}}",
                8, "tensor 'w'", "past the end");
}

static void test_overlap(void **state) {
    (void)state;
    EXPECT_FAIL("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "tensor 'y'", "[4, 12] overlap tensor 'x' [0, 8]");
    /* an empty tensor between the two must not hide the overlap */
    EXPECT_FAIL("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                16, "tensor 'y'", "overlap tensor 'x'");
    /* identical ranges */
    EXPECT_FAIL("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"y\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, "overlap tensor");
}

static void test_adjacent_not_overlapping(void **state) {
    (void)state;
    st_bytes b = make_file("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
                           "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           8);
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_parse(b.data, b.size, LABEL, &f, &err), 0);
    assert_int_equal(f.n_tensors, 3);
    st_close(&f);
    free(b.data);
}

/* ---- files on disk ---- */

/* Path of a file under ../shared, or NULL (test skipped, or failed under CI=true). */
static const char *shared_path(char *buf, size_t cap, const char *rel) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    snprintf(buf, cap, "%s/../shared/%s", src ? src : ".", rel);
    if (access(buf, R_OK) == 0) return buf;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("%s is missing (CI=true)", buf);
    print_message("skipping: %s not found\n", buf);
    return NULL;
}

static void test_open_real_model(void **state) {
    (void)state;
    char path[4096];
    if (!shared_path(path, sizeof path, "models/stories260k/model.safetensors")) {
        skip();
        return;
    }
    st_file f;
    ds_err err = {{0}};
    if (st_open(path, &f, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(f.n_tensors, 48);
    assert_non_null(f.map.data);
    const ds_tensor *t = st_find(&f, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->type, DS_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->nbytes, 512 * 64 * 4);
    for (int i = 0; i < f.n_tensors; i++) assert_int_equal(f.tensors[i].type, DS_F32);
    st_close(&f);
}

static void test_open_missing(void **state) {
    (void)state;
    st_file f;
    ds_err err = {{0}};
    assert_int_equal(st_open("/nonexistent/model.safetensors", &f, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/model.safetensors"));
    st_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_every_dtype),
        cmocka_unit_test(test_empty_header_and_padding),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_length_beyond_file),
        cmocka_unit_test(test_header_length_limit),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_shape_overflow),
        cmocka_unit_test(test_too_many_dims),
        cmocka_unit_test(test_offsets_outside),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_adjacent_not_overlapping),
        cmocka_unit_test(test_open_real_model),
        cmocka_unit_test(test_open_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
