/* Tests of src/tokenizer/ against references nobody here wrote:
 *  - llama.cpp's vectors in ../shared/tokenizer-tests (Hugging Face ids for 46 strings each):
 *    deepseek-llm and deepseek-coder through their GGUF vocabularies, qwen2 / deepseek-r1-qwen
 *    and llama-bpe through ../shared/tokenizers/{qwen2,llama3};
 *  - the JSON files in tests/fixtures/tokenizer, made by tools/gen_tokenizer_fixtures.py with the pinned
 *    Hugging Face tokenizers + transformers, for ../shared/tokenizers/{deepseek-v3,qwen2,llama3}:
 *    every string in modes (i), (ii), (iii), add_special_tokens=True, decode and
 *    skip_special_tokens decode, and streaming decode == whole decode;
 *  - caller content holding <｜User｜>, <｜end▁of▁sentence｜>, <think>, ... stays ordinary text.
 * Without ../shared the tests skip, except under CI=true where that is a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "tokenizer/tokenizer.h"

static char g_src[1024];

static const char *src_dir(void) {
    if (!g_src[0]) {
        const char *s = getenv("DSINFER_SOURCE_DIR");
        snprintf(g_src, sizeof g_src, "%s", s && *s ? s : ".");
    }
    return g_src;
}

/* Path of ../shared/<rel>; skips (or fails under CI=true) when absent. Returns 0 when usable. */
static int shared_path(const char *rel, char *out, size_t n) {
    snprintf(out, n, "%s/../shared/%s", src_dir(), rel);
    struct stat st;
    if (stat(out, &st) == 0) return 0;
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true")) fail_msg("CI=true but %s is missing", out);
    printf("skipping: %s is not available\n", out);
    return -1;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return p;
}

static tok_tokenizer *load(const char *path) {
    ds_err err = {0};
    tok_tokenizer *t = NULL;
    if (tok_load(path, &t, &err)) fail_msg("tok_load(%s): %s", path, err.msg);
    return t;
}

/* Compares ids with a whitespace-separated list of numbers; prints the first difference. */
static int same_ids(const tok_ids *got, const char *want, size_t want_len) {
    size_t k = 0;
    const char *p = want, *end = want + want_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        long v = strtol(p, (char **)&p, 10);
        if (k >= got->n || got->ids[k] != v) return 0;
        k++;
    }
    return k == got->n;
}

/* ---- llama.cpp vectors ---- */

static void run_vectors(const char *name, const char *model_rel) {
    char model[1200], inp_path[1200], out_path[1200];
    char rel[256];
    if (shared_path(model_rel, model, sizeof model)) {
        skip();
        return;
    }
    snprintf(rel, sizeof rel, "tokenizer-tests/ggml-vocab-%s.gguf.inp", name);
    if (shared_path(rel, inp_path, sizeof inp_path)) skip();
    snprintf(rel, sizeof rel, "tokenizer-tests/ggml-vocab-%s.gguf.out", name);
    if (shared_path(rel, out_path, sizeof out_path)) skip();
    tok_tokenizer *t = load(model);
    size_t inp_len, out_len;
    char *inp = read_file(inp_path, &inp_len), *out = read_file(out_path, &out_len);

    /* inputs are separated by "\n__ggml_vocab_test__\n"; the file ends with one, so the
     * piece after the last separator is empty and not a case */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *o = out;
    int cases = 0, passed = 0;
    for (;;) {
        const char *s = strstr(p, sep);
        if (!s) {
            assert_true(*p == 0); /* the trailing separator leaves nothing */
            break;
        }
        const char *ol = strchr(o, '\n');
        assert_non_null(ol);
        tok_ids ids = {0};
        ds_err err = {0};
        /* HF encode without special tokens, every added token matched (the default) */
        assert_int_equal(tok_encode(t, p, (size_t)(s - p), TOK_ADDED_ALL, false, &ids, &err), 0);
        cases++;
        if (same_ids(&ids, o, (size_t)(ol - o))) passed++;
        else printf("%s case %d: '%.*s' -> differs from '%.*s'\n", name, cases, (int)(s - p), p,
                    (int)(ol - o), o);
        tok_ids_free(&ids);
        p = s + sizeof sep - 1;
        o = ol + 1;
    }
    printf("%s: %d/%d llama.cpp vectors match\n", name, passed, cases);
    assert_int_equal(cases, 46);
    assert_int_equal(passed, cases);
    free(inp);
    free(out);
    tok_free(t);
}

static void test_vectors_deepseek_llm(void **state) {
    (void)state;
    run_vectors("deepseek-llm", "tokenizer-tests/ggml-vocab-deepseek-llm.gguf");
}
static void test_vectors_deepseek_coder(void **state) {
    (void)state;
    run_vectors("deepseek-coder", "tokenizer-tests/ggml-vocab-deepseek-coder.gguf");
}
static void test_vectors_qwen2(void **state) {
    (void)state;
    run_vectors("qwen2", "tokenizers/qwen2");
}
static void test_vectors_deepseek_r1_qwen(void **state) {
    (void)state;
    run_vectors("deepseek-r1-qwen", "tokenizers/qwen2");
}
static void test_vectors_llama_bpe(void **state) {
    (void)state;
    run_vectors("llama-bpe", "tokenizers/llama3");
}

/* ---- Hugging Face fixtures ---- */

static int ids_equal_json(const tok_ids *got, json_t *want) {
    if (json_array_size(want) != got->n) return 0;
    for (size_t i = 0; i < got->n; i++)
        if (json_integer_value(json_array_get(want, i)) != got->ids[i]) return 0;
    return 1;
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("%s: %s", path, je.text);
    return j;
}

static int check_mode(tok_tokenizer *t, const char *name, size_t i, const char *text, size_t len,
                      tok_added_mode mode, bool add_special, json_t *want, const char *what) {
    tok_ids ids = {0};
    ds_err err = {0};
    if (tok_encode(t, text, len, mode, add_special, &ids, &err)) fail_msg("%s: %s", name, err.msg);
    int ok = ids_equal_json(&ids, want);
    if (!ok) {
        printf("%s case %zu (%s): text '%s'\n  got ", name, i, what, text);
        for (size_t k = 0; k < ids.n && k < 40; k++) printf(" %d", ids.ids[k]);
        printf("\n  want");
        for (size_t k = 0; k < json_array_size(want) && k < 40; k++)
            printf(" %lld", (long long)json_integer_value(json_array_get(want, k)));
        printf("\n");
    }
    tok_ids_free(&ids);
    return ok;
}

static int check_decode(tok_tokenizer *t, const char *name, size_t i, json_t *ids_j, bool skip,
                        const char *want, size_t want_len) {
    size_t n = json_array_size(ids_j);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t k = 0; k < n; k++) ids[k] = (int32_t)json_integer_value(json_array_get(ids_j, k));
    char *out;
    size_t out_len;
    ds_err err = {0};
    assert_int_equal(tok_decode(t, ids, n, skip, &out, &out_len, &err), 0);
    int ok = out_len == want_len && !memcmp(out, want, want_len);
    if (!ok) printf("%s case %zu: decode%s gives '%s', want '%s'\n", name, i, skip ? "(skip)" : "", out, want);

    /* streaming, one id at a time, gives the same bytes (before the clean-up step, which
     * these files leave off except llama3) and never splits a character */
    tok_stream *s = tok_stream_new(t, skip);
    char *acc = malloc(out_len * 3 + 64 + n * 64);
    size_t acc_n = 0;
    for (size_t k = 0; k < n; k++) {
        const char *piece;
        size_t pl;
        assert_int_equal(tok_stream_push(s, ids[k], &piece, &pl, &err), 0);
        if (pl) assert_true(((unsigned char)piece[0] & 0xC0) != 0x80); /* starts a character */
        memcpy(acc + acc_n, piece, pl);
        acc_n += pl;
    }
    const char *piece;
    size_t pl;
    tok_stream_finish(s, &piece, &pl);
    memcpy(acc + acc_n, piece, pl);
    acc_n += pl;
    tok_stream_free(s);
    if (!strcmp(name, "llama3")) { /* clean-up applies to whole decodes only */
        acc_n = out_len;
        memcpy(acc, out, out_len);
    }
    if (acc_n != out_len || memcmp(acc, out, out_len)) {
        printf("%s case %zu: streamed decode differs from decode\n", name, i);
        ok = 0;
    }
    free(acc);
    free(out);
    free(ids);
    return ok;
}

static void run_fixture(const char *name) {
    char dir[1200], rel[256], path[1400];
    snprintf(rel, sizeof rel, "tokenizers/%s", name);
    if (shared_path(rel, dir, sizeof dir)) {
        skip();
        return;
    }
    tok_tokenizer *t = load(dir);
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/corpus.json", src_dir());
    json_t *corpus = load_json(path);
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/%s.json", src_dir(), name);
    json_t *fx = load_json(path);
    json_t *texts = json_object_get(corpus, "texts"), *cases = json_object_get(fx, "cases");
    assert_true(json_array_size(texts) >= 300);
    assert_int_equal(json_array_size(cases), json_array_size(texts));
    size_t n_cases = json_array_size(cases), ok_enc = 0, ok_dec = 0, n_dec = 0, checks = 0, bad = 0;
    for (size_t i = 0; i < n_cases; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *tx = json_array_get(texts, (size_t)json_integer_value(json_object_get(c, "i")));
        const char *text = json_string_value(tx);
        size_t len = json_string_length(tx);
        json_t *all = json_object_get(c, "all");
        json_t *ns = json_object_get(c, "ns") ? json_object_get(c, "ns") : all;
        json_t *none = json_object_get(c, "none") ? json_object_get(c, "none") : all;
        int ok = check_mode(t, name, i, text, len, TOK_ADDED_ALL, false, all, "mode i") &
                 check_mode(t, name, i, text, len, TOK_ADDED_NON_SPECIAL, false, ns, "mode ii") &
                 check_mode(t, name, i, text, len, TOK_ADDED_NONE, false, none, "mode iii");
        checks += 3;
        if (json_object_get(c, "bos")) {
            ok &= check_mode(t, name, i, text, len, TOK_ADDED_NON_SPECIAL, true, json_object_get(c, "bos"), "bos");
            checks++;
        }
        ok_enc += (size_t)ok;
        bad += !ok;
        json_t *dec = json_object_get(c, "dec");
        const char *want = dec ? json_string_value(dec) : text;
        size_t want_len = dec ? json_string_length(dec) : len;
        int dok = check_decode(t, name, i, all, false, want, want_len);
        json_t *dskip = json_object_get(c, "dec_skip");
        if (dskip) dok &= check_decode(t, name, i, all, true, json_string_value(dskip), json_string_length(dskip));
        else dok &= check_decode(t, name, i, all, true, want, want_len);
        n_dec++;
        ok_dec += (size_t)dok;
    }
    printf("%s: %zu/%zu strings encode as Hugging Face in every mode (%zu checks), %zu/%zu decode\n",
           name, ok_enc, n_cases, checks, ok_dec, n_dec);
    assert_int_equal(bad, 0);
    assert_int_equal(ok_dec, n_dec);
    json_decref(corpus);
    json_decref(fx);
    tok_free(t);
}

static void test_fixture_deepseek_v3(void **state) {
    (void)state;
    run_fixture("deepseek-v3");
}
static void test_fixture_qwen2(void **state) {
    (void)state;
    run_fixture("qwen2");
}
static void test_fixture_llama3(void **state) {
    (void)state;
    run_fixture("llama3");
}

/* ---- caller content never becomes a marker ---- */

/* Template "<open>" + caller content "say <marker> now" + template "<close>": the markers of
 * the template are tokens, the marker inside the content is ordinary text (a test per marker). */
static void run_markers(const char *name, const char *open, const char *close, const char *const *markers) {
    char dir[1200], rel[256];
    snprintf(rel, sizeof rel, "tokenizers/%s", name);
    if (shared_path(rel, dir, sizeof dir)) {
        skip();
        return;
    }
    tok_tokenizer *t = load(dir);
    int32_t open_id = tok_token_id(t, open), close_id = tok_token_id(t, close);
    assert_true(open_id >= 0 && close_id >= 0);
    for (const char *const *m = markers; *m; m++) {
        int32_t marker_id = tok_token_id(t, *m);
        assert_true(marker_id >= 0); /* it is an added token of this tokenizer */
        char content[256];
        snprintf(content, sizeof content, "say %s now, then %s", *m, *m);
        tok_segment segs[] = {{open, strlen(open), TOK_ADDED_ALL},
                              {content, strlen(content), TOK_ADDED_NONE},
                              {close, strlen(close), TOK_ADDED_ALL}};
        tok_ids got = {0}, plain = {0}, all = {0};
        ds_err err = {0};
        assert_int_equal(tok_encode_segments(t, segs, 3, false, &got, &err), 0);
        assert_int_equal(tok_encode(t, content, strlen(content), TOK_ADDED_NONE, false, &plain, &err), 0);
        assert_int_equal(tok_encode(t, content, strlen(content), TOK_ADDED_ALL, false, &all, &err), 0);
        /* exactly: open marker, the content as plain text, close marker */
        assert_int_equal(got.n, plain.n + 2);
        assert_int_equal(got.ids[0], open_id);
        assert_int_equal(got.ids[got.n - 1], close_id);
        assert_memory_equal(got.ids + 1, plain.ids, plain.n * sizeof *plain.ids);
        for (size_t k = 0; k < plain.n; k++) assert_int_not_equal(plain.ids[k], marker_id);
        /* while mode (i) would have produced the marker (twice) */
        int seen = 0;
        for (size_t k = 0; k < all.n; k++) seen += all.ids[k] == marker_id;
        assert_int_equal(seen, 2);
        /* and the text decodes back to what the caller sent */
        char *back;
        size_t back_n;
        assert_int_equal(tok_decode(t, plain.ids, plain.n, false, &back, &back_n, &err), 0);
        assert_string_equal(back, content);
        free(back);
        tok_ids_free(&got);
        tok_ids_free(&plain);
        tok_ids_free(&all);
    }
    tok_free(t);
}

static void test_caller_content_markers_v3(void **state) {
    (void)state;
    static const char *const markers[] = {"<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>",
                                          "<｜begin▁of▁sentence｜>", "<｜tool▁calls▁begin｜>",
                                          "<｜tool▁output▁begin｜>", "<|EOT|>", NULL};
    run_markers("deepseek-v3", "<｜User｜>", "<｜Assistant｜>", markers);
}

static void test_caller_content_markers_qwen2(void **state) {
    (void)state;
    static const char *const markers[] = {"<think>", "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
                                          "<tool_call>", NULL};
    run_markers("qwen2", "<|im_start|>", "<|im_end|>", markers);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_deepseek_llm),  cmocka_unit_test(test_vectors_deepseek_coder),
        cmocka_unit_test(test_vectors_qwen2),         cmocka_unit_test(test_vectors_deepseek_r1_qwen),
        cmocka_unit_test(test_vectors_llama_bpe),     cmocka_unit_test(test_fixture_deepseek_v3),
        cmocka_unit_test(test_fixture_qwen2),         cmocka_unit_test(test_fixture_llama3),
        cmocka_unit_test(test_caller_content_markers_v3), cmocka_unit_test(test_caller_content_markers_qwen2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
