/* Dequantizers against the gguf Python package's reference (tests/fixtures/quant, made by
 * tools/gen_dense_fixtures.py): raw ggml blocks in, the exact f32 values gguf computes out. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tensor/tensor.h"

static void *slurp(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*len);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void test_dequantize_matches_gguf_reference(void **state) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/quant", src ? src : ".");
    size_t len;
    char *text = slurp(dir, "quant.json", &len);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    assert_non_null(root);
    const int rows = (int)json_integer_value(json_object_get(root, "rows"));
    const int cols = (int)json_integer_value(json_object_get(root, "cols"));
    const char *name;
    json_t *info;
    int checked = 0;
    json_object_foreach(json_object_get(root, "types"), name, info) {
        int t = ds_dtype_from_name(name);
        if (t < 0) fail_msg("fixture type %s unknown to dsinfer", name);
        size_t nb, nf;
        uint8_t *blocks = slurp(dir, json_string_value(json_object_get(info, "bin")), &nb);
        float *want = slurp(dir, json_string_value(json_object_get(info, "f32")), &nf);
        assert_int_equal(nf, sizeof(float) * (size_t)rows * cols);
        size_t row_bytes;
        assert_int_equal(ds_dtype_bytes_for((ds_dtype)t, cols, &row_bytes, name, NULL), 0);
        assert_int_equal(nb, row_bytes * (size_t)rows);
        float *got = malloc(sizeof(float) * (size_t)cols);
        int supported = ds_dequantize_row((ds_dtype)t, blocks, got, cols) == 0;
        if (!supported) {
            print_message("%s: no dequantizer yet (not used by any supported model)\n", name);
        } else {
            for (int r = 0; r < rows; r++) {
                assert_int_equal(ds_dequantize_row((ds_dtype)t, blocks + (size_t)r * row_bytes, got, cols), 0);
                for (int c = 0; c < cols; c++) {
                    float w = want[(size_t)r * cols + c];
                    if (!(got[c] == w || (isnan(got[c]) && isnan(w))))
                        fail_msg("%s row %d col %d: got %.9g, gguf says %.9g", name, r, c, got[c], w);
                }
            }
            checked++;
        }
        free(got), free(blocks), free(want);
    }
    assert_true(checked >= 8);
    json_decref(root);
    free(text);
}

static void test_dtype_sizes_and_names(void **state) {
    size_t n;
    ds_err err;
    assert_int_equal(ds_dtype_bytes_for(DS_Q4_K, 512, &n, "t", &err), 0);
    assert_int_equal(n, 288);
    assert_int_equal(ds_dtype_bytes_for(DS_Q8_0, 33, &n, "blk.0.attn_q.weight", &err), -1);
    assert_non_null(strstr(err.msg, "blk.0.attn_q.weight"));
    assert_int_equal(ds_dtype_from_name("bf16"), DS_BF16);
    assert_int_equal(ds_dtype_from_name("Q6_K"), DS_Q6_K);
    assert_int_equal(ds_dtype_from_name("nope"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dequantize_matches_gguf_reference),
        cmocka_unit_test(test_dtype_sizes_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
