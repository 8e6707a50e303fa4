/* Unit tests for src/tokenizer/: BPE internals, pre-tokenizer behaviours, added-token rules,
 * the three matching modes and segments, post-processing, the streaming detokenizer (UTF-8
 * boundaries), GGUF loading and every error path. Tokenizers are built here as small
 * tokenizer.json files (or GGUF bytes) so each rule is visible in a few tokens; the comparison
 * with Hugging Face itself is in test_tokenizer_ref.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <utf8proc.h>

#include "format/gguf.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

/* ---- building small tokenizers ---- */

/* The vocabulary string of byte b (GPT-2 mapping), e.g. "Ġ" for a space. */
static const char *bytestr(uint8_t b) {
    static char s[256][5];
    int n = tok_utf8_encode(tok_byte_to_cp(b), s[b]);
    s[b][n] = 0;
    return s[b];
}

/* Byte-level text of a raw string ("a b" -> "aĠb"), in a static buffer. */
static const char *mapped(const char *raw) {
    static char out[512];
    size_t n = 0;
    for (const char *p = raw; *p; p++) {
        const char *s = bytestr((uint8_t)*p);
        size_t l = strlen(s);
        memcpy(out + n, s, l);
        n += l;
    }
    out[n] = 0;
    return out;
}

typedef struct spec {
    json_t *root, *vocab, *merges, *added;
    int next_id;
} spec;

/* A tokenizer.json with the 256 byte tokens (id = byte), ByteLevel pre-tokenizer with the
 * GPT-2 regex, ByteLevel decoder, no merges yet. */
static spec spec_new(void) {
    spec s;
    s.vocab = json_object();
    for (int b = 0; b < 256; b++) json_object_set_new(s.vocab, bytestr((uint8_t)b), json_integer(b));
    s.merges = json_array();
    s.added = json_array();
    s.next_id = 256;
    s.root = json_pack("{s:s, s:o, s:n, s:{s:s, s:b, s:b}, s:n, s:{s:s}, s:{s:s, s:O, s:O}}", "version", "1.0",
                       "added_tokens", s.added, "normalizer", "pre_tokenizer", "type", "ByteLevel",
                       "add_prefix_space", 0, "use_regex", 1, "post_processor", "decoder", "type", "ByteLevel",
                       "model", "type", "BPE", "vocab", s.vocab, "merges", s.merges);
    json_decref(s.vocab);
    json_decref(s.merges);
    return s;
}

/* Adds merge "a b" (raw strings) and its result token; returns the new id. */
static int add_merge(spec *s, const char *a, const char *b) {
    char ma[128], mb[128], m[300];
    snprintf(ma, sizeof ma, "%s", mapped(a));
    snprintf(mb, sizeof mb, "%s", mapped(b));
    snprintf(m, sizeof m, "%s %s", ma, mb);
    json_array_append_new(s->merges, json_string(m));
    snprintf(m, sizeof m, "%s%s", ma, mb);
    if (!json_object_get(s->vocab, m)) json_object_set_new(s->vocab, m, json_integer(s->next_id++));
    return (int)json_integer_value(json_object_get(s->vocab, m));
}

static int add_vocab(spec *s, const char *raw) {
    json_object_set_new(s->vocab, mapped(raw), json_integer(s->next_id));
    return s->next_id++;
}

static int add_added(spec *s, const char *content, bool special, bool lstrip, bool rstrip, bool normalized,
                     bool single_word) {
    int id = s->next_id++;
    json_array_append_new(s->added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                                              "special", special, "lstrip", lstrip, "rstrip", rstrip,
                                              "normalized", normalized, "single_word", single_word));
    return id;
}

static char g_dir[256];

/* Writes root (and config, if any) to a fresh directory and loads it; returns the error code. */
static int try_load(json_t *root, json_t *config, tok_tokenizer **t, ds_err *err) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/test_tokenizer_XXXXXX");
        assert_non_null(mkdtemp(g_dir));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_dir);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", g_dir);
    unlink(path);
    if (config) assert_int_equal(json_dump_file(config, path, 0), 0);
    return tok_load(g_dir, t, err);
}

static tok_tokenizer *load_spec(spec *s, json_t *config) {
    tok_tokenizer *t = NULL;
    ds_err err = {0};
    if (try_load(s->root, config, &t, &err)) fail_msg("load: %s", err.msg);
    json_decref(s->root);
    json_decref(config);
    return t;
}

/* Encodes and compares with the expected ids (terminated by -1). */
/* add_special is an int: va_start needs a parameter that is not promoted */
static void expect_ids(tok_tokenizer *t, const char *text, tok_added_mode mode, int add_special, ...) {
    tok_ids ids = {0};
    ds_err err = {0};
    if (tok_encode(t, text, strlen(text), mode, add_special != 0, &ids, &err)) fail_msg("encode '%s': %s", text, err.msg);
    va_list ap;
    va_start(ap, add_special);
    size_t k = 0;
    for (int want; (want = va_arg(ap, int)) != -1; k++) {
        if (k >= ids.n || ids.ids[k] != want) {
            printf("encode '%s' (mode %d): id %zu is %d, want %d; got:", text, mode, k, k < ids.n ? ids.ids[k] : -1, want);
            for (size_t i = 0; i < ids.n; i++) printf(" %d", ids.ids[i]);
            printf("\n");
            fail();
        }
    }
    va_end(ap);
    if (k != ids.n) fail_msg("encode '%s': %zu ids, want %zu", text, ids.n, k);
    tok_ids_free(&ids);
}

static const int B_SPACE = ' ';

/* ---- BPE ---- */

static void test_bpe_rank_order(void **state) {
    (void)state;
    spec s = spec_new();
    int bc = add_merge(&s, "b", "c"); /* rank 0: wins over "a b" */
    int ab = add_merge(&s, "a", "b");
    int abc = add_merge(&s, "ab", "c");
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "abc", TOK_ADDED_ALL, false, 'a', bc, -1); /* "ab c" never happens */
    expect_ids(t, "ab", TOK_ADDED_ALL, false, ab, -1);
    (void)abc;
    tok_free(t);
}

static void test_bpe_ties_leftmost(void **state) {
    (void)state;
    spec s = spec_new();
    int aa = add_merge(&s, "a", "a");
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "aaa", TOK_ADDED_ALL, false, aa, 'a', -1);
    expect_ids(t, "aaaaa", TOK_ADDED_ALL, false, aa, aa, 'a', -1);
    tok_free(t);
}

static void test_bpe_chain_and_pair_formats(void **state) {
    (void)state;
    spec s = spec_new();
    add_merge(&s, "h", "e");
    add_merge(&s, "l", "l");
    add_merge(&s, "he", "ll");
    int hello = add_merge(&s, "hell", "o");
    int sp_w = add_merge(&s, " ", "w");
    /* the same merge list as [a, b] pairs must give the same result */
    json_t *pairs = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(json_object_get(s.root, "model"), "merges"), i, m) {
        const char *str = json_string_value(m), *sp = strchr(str, ' ');
        json_array_append_new(pairs, json_pack("[s#, s]", str, (int)(sp - str), sp + 1));
    }
    json_t *root2 = json_deep_copy(s.root);
    json_object_set_new(json_object_get(root2, "model"), "merges", pairs);
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "hello world", TOK_ADDED_ALL, false, hello, sp_w, 'o', 'r', 'l', 'd', -1);
    tok_free(t);
    ds_err err = {0};
    assert_int_equal(try_load(root2, NULL, &t, &err), 0);
    expect_ids(t, "hello world", TOK_ADDED_ALL, false, hello, sp_w, 'o', 'r', 'l', 'd', -1);
    tok_free(t);
    json_decref(root2);
}

static void test_bpe_ignore_merges(void **state) {
    (void)state;
    spec s = spec_new();
    int ab = add_merge(&s, "a", "b");
    int abcd = add_vocab(&s, "abcd"); /* reachable by no merge */
    json_t *root2 = json_deep_copy(s.root);
    json_object_set_new(json_object_get(root2, "model"), "ignore_merges", json_true());
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "abcd", TOK_ADDED_ALL, false, ab, 'c', 'd', -1);
    tok_free(t);
    ds_err err = {0};
    assert_int_equal(try_load(root2, NULL, &t, &err), 0);
    expect_ids(t, "abcd", TOK_ADDED_ALL, false, abcd, -1); /* llama3: a whole-token piece is kept */
    expect_ids(t, "abc", TOK_ADDED_ALL, false, ab, 'c', -1);
    tok_free(t);
    json_decref(root2);
}

static void test_bpe_long_piece_is_fast(void **state) {
    (void)state;
    spec s = spec_new();
    int aa = add_merge(&s, "a", "a");
    int a4 = add_merge(&s, "aa", "aa");
    tok_tokenizer *t = load_spec(&s, NULL);
    size_t n = 1 << 20;
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n] = 0;
    tok_ids ids = {0};
    ds_err err = {0};
    assert_int_equal(tok_encode(t, text, n, TOK_ADDED_ALL, false, &ids, &err), 0);
    assert_int_equal(ids.n, n / 4);
    assert_int_equal(ids.ids[0], a4);
    (void)aa;
    tok_ids_free(&ids);
    free(text);
    tok_free(t);
}

/* ---- pre-tokenizers ---- */

static tok_tokenizer *with_pretok(json_t *pretok, spec *s) {
    json_object_set_new(s->root, "pre_tokenizer", pretok);
    return load_spec(s, NULL);
}

static void test_split_behaviours(void **state) {
    (void)state;
    const struct {
        const char *behavior;
        bool invert;
        int want[8];
    } cases[] = {
        /* text "ab-cd" split on "-"; the merge "b -" shows which pieces stay together */
        {"Isolated", false, {'a', 'b', '-', 'c', 'd', -1}},
        {"Removed", false, {'a', 'b', 'c', 'd', -1}},
        {"MergedWithPrevious", false, {'a', 256, 'c', 'd', -1}},
        {"MergedWithNext", false, {'a', 'b', 257, 'd', -1}},
        {"Contiguous", false, {'a', 'b', '-', 'c', 'd', -1}},
        {"Removed", true, {'-', -1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        spec s = spec_new();
        add_merge(&s, "b", "-"); /* 256 */
        add_merge(&s, "-", "c"); /* 257 */
        json_t *pt = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]}", "type", "Sequence",
                               "pretokenizers", "type", "Split", "pattern", "String", "-", "behavior",
                               cases[k].behavior, "invert", cases[k].invert, "type", "ByteLevel",
                               "add_prefix_space", 0, "use_regex", 0);
        tok_tokenizer *t = with_pretok(pt, &s);
        tok_ids ids = {0};
        ds_err err = {0};
        assert_int_equal(tok_encode(t, "ab-cd", 5, TOK_ADDED_ALL, false, &ids, &err), 0);
        size_t n = 0;
        while (cases[k].want[n] != -1) n++;
        if (ids.n != n || memcmp(ids.ids, cases[k].want, n * sizeof(int)))
            fail_msg("Split %s invert=%d gives %zu ids (first %d)", cases[k].behavior, cases[k].invert, ids.n,
                     ids.n ? ids.ids[0] : -1);
        tok_ids_free(&ids);
        tok_free(t);
    }
}

static void test_regex_split_and_prefix_space(void **state) {
    (void)state;
    spec s = spec_new();
    int sp_b = add_merge(&s, " ", "b");
    int ab = add_merge(&s, "a", "b");
    /* digits one by one, then ByteLevel adding a prefix space to each piece */
    json_t *pt = json_pack("{s:s, s:[{s:s, s:b}, {s:s, s:b, s:b}]}", "type", "Sequence", "pretokenizers", "type",
                           "Digits", "individual_digits", 1, "type", "ByteLevel", "add_prefix_space", 1,
                           "use_regex", 0);
    tok_tokenizer *t = with_pretok(pt, &s);
    expect_ids(t, "b12", TOK_ADDED_ALL, false, sp_b, B_SPACE, '1', B_SPACE, '2', -1);
    expect_ids(t, " b", TOK_ADDED_ALL, false, sp_b, -1); /* already starts with a space */
    (void)ab;
    tok_free(t);
}

static void test_nfc_normalizer(void **state) {
    (void)state;
    spec s = spec_new();
    /* é precomposed is C3 A9 */
    int e_acute = add_merge(&s, "\xC3", "\xA9");
    json_object_set_new(s.root, "normalizer", json_pack("{s:s, s:[{s:s}]}", "type", "Sequence", "normalizers", "type", "NFC"));
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "e\xCC\x81", TOK_ADDED_ALL, false, e_acute, -1); /* e + U+0301 -> é */
    expect_ids(t, "\xC3\xA9", TOK_ADDED_ALL, false, e_acute, -1);
    tok_free(t);
}

static void test_nfc_stable_predicate(void **state) {
    (void)state;
    /* every canonical pair composition has an unstable second half */
    for (int32_t x = 0; x < 0x110000; x++) {
        if (x >= 0xD800 && x < 0xE000) continue;
        utf8proc_int32_t buf[8];
        int last = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(x, buf, 8, UTF8PROC_DECOMPOSE, &last);
        if (n != 2) continue;
        uint8_t s[16];
        utf8proc_ssize_t k = utf8proc_encode_char(buf[0], s);
        k += utf8proc_encode_char(buf[1], s + k);
        s[k] = 0;
        uint8_t *o = utf8proc_NFC(s);
        utf8proc_int32_t c;
        utf8proc_iterate(o, -1, &c);
        free(o);
        if (c == x && tok_nfc_stable((uint32_t)buf[1])) fail_msg("U+%04X composes with U+%04X", buf[0], buf[1]);
    }
    assert_false(tok_nfc_stable(0x0301));
    assert_false(tok_nfc_stable(0x1161)); /* Hangul V jamo */
    assert_true(tok_nfc_stable('a'));
    assert_true(tok_nfc_stable(0x4E2D));
}

/* ---- added tokens ---- */

static void test_added_modes(void **state) {
    (void)state;
    spec s = spec_new();
    int bos = add_added(&s, "<s>", true, false, false, false, false);
    int user = add_added(&s, "<U>", false, false, false, true, false);
    int longer = add_added(&s, "<s>x", false, false, false, false, false);
    int sx = add_added(&s, "sx", false, false, false, false, false);
    add_added(&s, "<sx>", true, false, false, false, false);
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "a<s>b<U>", TOK_ADDED_ALL, false, 'a', bos, 'b', user, -1);
    expect_ids(t, "a<s>b<U>", TOK_ADDED_NON_SPECIAL, false, 'a', '<', 's', '>', 'b', user, -1);
    expect_ids(t, "a<s>b<U>", TOK_ADDED_NONE, false, 'a', '<', 's', '>', 'b', '<', 'U', '>', -1);
    /* leftmost-longest: "<s>x" wins over "<s>" */
    expect_ids(t, "<s>x", TOK_ADDED_ALL, false, longer, -1);
    expect_ids(t, "<s>x", TOK_ADDED_NON_SPECIAL, false, longer, -1);
    /* a skipped special token still consumes its text: "sx" is not found inside "<sx>" */
    expect_ids(t, "<sx>", TOK_ADDED_NON_SPECIAL, false, '<', 's', 'x', '>', -1);
    expect_ids(t, "sx", TOK_ADDED_NON_SPECIAL, false, sx, -1);
    tok_free(t);
}

static void test_added_strip_and_single_word(void **state) {
    (void)state;
    spec s = spec_new();
    int l = add_added(&s, "<L>", true, true, false, false, false);
    int r = add_added(&s, "<R>", true, false, true, false, false);
    int w = add_added(&s, "cat", false, false, false, false, true);
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "a  <L>b", TOK_ADDED_ALL, false, 'a', l, 'b', -1);    /* spaces before go into <L> */
    expect_ids(t, "a<R> \t b", TOK_ADDED_ALL, false, 'a', r, 'b', -1);  /* spaces after go into <R> */
    expect_ids(t, "a cat b", TOK_ADDED_ALL, false, 'a', B_SPACE, w, B_SPACE, 'b', -1);
    expect_ids(t, "concat", TOK_ADDED_ALL, false, 'c', 'o', 'n', 'c', 'a', 't', -1); /* not a word */
    tok_free(t);
}

static void test_segments_keep_content_plain(void **state) {
    (void)state;
    spec s = spec_new();
    int sp_h = add_merge(&s, " ", "h");
    int user = add_added(&s, "<U>", false, false, false, true, false);
    int bos = add_added(&s, "<s>", true, false, false, false, false);
    tok_tokenizer *t = load_spec(&s, NULL);
    const char *content = " h<U><s>";
    tok_segment segs[] = {{"<s><U>", 6, TOK_ADDED_ALL}, {content, strlen(content), TOK_ADDED_NONE}, {"<U>", 3, TOK_ADDED_ALL}};
    tok_ids ids = {0};
    ds_err err = {0};
    assert_int_equal(tok_encode_segments(t, segs, 3, false, &ids, &err), 0);
    const int want[] = {bos, user, sp_h, '<', 'U', '>', '<', 's', '>', user};
    assert_int_equal(ids.n, sizeof want / sizeof want[0]);
    assert_memory_equal(ids.ids, want, sizeof want);
    tok_ids_free(&ids);

    /* text split across segments pre-tokenizes as one text: " h" stays one piece */
    tok_segment split[] = {{"x", 1, TOK_ADDED_ALL}, {" ", 1, TOK_ADDED_NONE}, {"h", 1, TOK_ADDED_ALL}};
    assert_int_equal(tok_encode_segments(t, split, 3, false, &ids, &err), 0);
    assert_int_equal(ids.n, 2);
    assert_int_equal(ids.ids[1], sp_h);
    tok_ids_free(&ids);
    tok_free(t);
}

/* ---- post-processing ---- */

static void test_post_processor_and_prompt(void **state) {
    (void)state;
    spec s = spec_new();
    int bos = add_added(&s, "<s>", true, false, false, false, false);
    int eos = add_added(&s, "</s>", true, false, false, false, false);
    json_object_set_new(s.root, "post_processor",
                        json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}, s:{s:s, s:[i], s:[s]}}}",
                                  "type", "TemplateProcessing", "single", "SpecialToken", "id", "<s>", "type_id", 0,
                                  "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", "</s>", "type_id", 0,
                                  "special_tokens", "<s>", "id", "<s>", "ids", bos, "tokens", "<s>", "</s>", "id",
                                  "</s>", "ids", eos, "tokens", "</s>"));
    tok_tokenizer *t = load_spec(&s, NULL);
    expect_ids(t, "a", TOK_ADDED_ALL, true, bos, 'a', eos, -1);
    expect_ids(t, "", TOK_ADDED_ALL, true, bos, eos, -1);
    expect_ids(t, "a", TOK_ADDED_ALL, false, 'a', -1);
    assert_true(tok_adds_bos(t) == false); /* no tokenizer_config: no bos id known */
    tok_free(t);

    /* Llama-class tokenizer_config: add_bos_token replaces the post-processor */
    s = spec_new();
    bos = add_added(&s, "<s>", true, false, false, false, false);
    tok_tokenizer *t2 = load_spec(&s, json_pack("{s:s, s:b, s:{s:s}, s:b}", "tokenizer_class", "LlamaTokenizerFast",
                                                "add_bos_token", 1, "bos_token", "content", "<s>",
                                                "clean_up_tokenization_spaces", 0));
    assert_int_equal(tok_bos_id(t2), bos);
    assert_true(tok_adds_bos(t2));
    assert_string_equal(tok_bos_text(t2), "<s>");
    expect_ids(t2, "a", TOK_ADDED_ALL, true, bos, 'a', -1);
    /* dsinfer run -p: BOS once, even when the text starts with it */
    tok_ids ids = {0};
    ds_err err = {0};
    assert_int_equal(tok_encode_prompt(t2, "<s>a", 4, &ids, &err), 0);
    assert_int_equal(ids.n, 2);
    assert_int_equal(ids.ids[0], bos);
    tok_ids_free(&ids);
    assert_int_equal(tok_encode_prompt(t2, "a", 1, &ids, &err), 0);
    assert_int_equal(ids.n, 2);
    tok_ids_free(&ids);
    tok_free(t2);
}

/* ---- decoding ---- */

static void test_stream_utf8_boundaries(void **state) {
    (void)state;
    spec s = spec_new();
    int sp = add_added(&s, "<s>", true, false, false, false, false);
    tok_tokenizer *t = load_spec(&s, NULL);
    tok_stream *st = tok_stream_new(t, true);
    ds_err err = {0};
    const char *out;
    size_t n;
    /* U+1F680 = F0 9F 9A 80, fed as four byte tokens: nothing until the last */
    const uint8_t rocket[] = {0xF0, 0x9F, 0x9A, 0x80};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok_stream_push(st, rocket[i], &out, &n, &err), 0);
        assert_int_equal(n, i < 3 ? 0 : 4);
    }
    assert_memory_equal(out, rocket, 4);
    /* a special token is skipped; ASCII passes straight through */
    assert_int_equal(tok_stream_push(st, sp, &out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tok_stream_push(st, 'a', &out, &n, &err), 0);
    assert_int_equal(n, 1);
    /* an interrupted sequence: E4 B8 then 'b' -> U+FFFD then 'b' */
    assert_int_equal(tok_stream_push(st, 0xE4, &out, &n, &err), 0);
    assert_int_equal(tok_stream_push(st, 0xB8, &out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tok_stream_push(st, 'b', &out, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\xEF\xBF\xBD" "b", 4);
    /* a lone continuation byte and an impossible lead byte: one U+FFFD each */
    assert_int_equal(tok_stream_push(st, 0x80, &out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tok_stream_push(st, 0xFF, &out, &n, &err), 0);
    assert_int_equal(n, 3);
    /* E0 80: E0 needs A0..BF next, so both bytes are invalid on their own */
    assert_int_equal(tok_stream_push(st, 0xE0, &out, &n, &err), 0);
    assert_int_equal(tok_stream_push(st, 0x80, &out, &n, &err), 0);
    assert_int_equal(n, 6);
    /* the end of the stream flushes an unfinished character as U+FFFD */
    assert_int_equal(tok_stream_push(st, 0xF0, &out, &n, &err), 0);
    tok_stream_finish(st, &out, &n);
    assert_int_equal(n, 3);
    /* an id with no token is an error naming it */
    assert_int_equal(tok_stream_push(st, 99999, &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "99999"));
    tok_stream_free(st);

    /* whole decode: same rules, skip_special or not */
    int32_t ids[] = {sp, 'h', 0xC3, 0xA9, 0xE4};
    char *text;
    assert_int_equal(tok_decode(t, ids, 5, false, &text, &n, &err), 0);
    assert_string_equal(text, "<s>h\xC3\xA9\xEF\xBF\xBD");
    free(text);
    assert_int_equal(tok_decode(t, ids, 5, true, &text, &n, &err), 0);
    assert_string_equal(text, "h\xC3\xA9\xEF\xBF\xBD");
    free(text);
    int32_t bad[] = {'a', -3};
    assert_int_equal(tok_decode(t, bad, 2, false, &text, &n, &err), -1);
    assert_non_null(strstr(err.msg, "-3"));
    tok_free(t);
}

static void test_decode_clean_up(void **state) {
    (void)state;
    spec s = spec_new();
    tok_tokenizer *t = load_spec(&s, json_pack("{s:b}", "clean_up_tokenization_spaces", 1));
    const char *raw = "Hello , world . I do n't know ' em ? Yes !";
    int32_t ids[64];
    size_t n = strlen(raw);
    for (size_t i = 0; i < n; i++) ids[i] = (uint8_t)raw[i];
    char *text;
    ds_err err = {0};
    assert_int_equal(tok_decode(t, ids, n, false, &text, &n, &err), 0);
    assert_string_equal(text, "Hello, world. I don't know'em? Yes!");
    free(text);
    tok_free(t);
}

/* ---- errors ---- */

static void expect_load_error(json_t *root, const char *needle) {
    tok_tokenizer *t = NULL;
    ds_err err = {0};
    assert_int_equal(try_load(root, NULL, &t, &err), -1);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
    json_decref(root);
}

static void test_load_errors_name_the_type(void **state) {
    (void)state;
    spec s = spec_new();
    json_object_set_new(json_object_get(s.root, "model"), "type", json_string("Unigram"));
    expect_load_error(s.root, "'Unigram'");
    s = spec_new();
    json_object_set_new(s.root, "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace"));
    expect_load_error(s.root, "'Metaspace'");
    s = spec_new();
    json_object_set_new(s.root, "normalizer", json_pack("{s:s}", "type", "Lowercase"));
    expect_load_error(s.root, "'Lowercase'");
    s = spec_new();
    json_object_set_new(s.root, "decoder", json_pack("{s:s}", "type", "WordPiece"));
    expect_load_error(s.root, "'WordPiece'");
    s = spec_new();
    json_object_set_new(s.root, "post_processor", json_pack("{s:s}", "type", "Mystery"));
    expect_load_error(s.root, "'Mystery'");
    s = spec_new();
    json_array_append_new(s.merges, json_string("x y"));
    expect_load_error(s.root, "merges[0]");
    s = spec_new();
    json_object_set_new(s.root, "pre_tokenizer",
                        json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", "[a-", "behavior",
                                  "Isolated", "invert", 0));
    expect_load_error(s.root, "regex");
    s = spec_new();
    json_object_set_new(s.root, "pre_tokenizer", json_null());
    expect_load_error(s.root, "byte-level");

    tok_tokenizer *t;
    ds_err err = {0};
    assert_int_equal(tok_load("/nonexistent/dir", &t, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
}

static void test_invalid_utf8_position(void **state) {
    (void)state;
    spec s = spec_new();
    tok_tokenizer *t = load_spec(&s, NULL);
    const char *cases[] = {"ab\xFFz", "ab\xC3", "ab\xE4\xB8z", "ab\xED\xA0\x80", "ab\xC0\x80", "ab\xF4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok_ids ids = {0};
        ds_err err = {0};
        assert_int_equal(tok_encode(t, cases[i], strlen(cases[i]), TOK_ADDED_ALL, false, &ids, &err), -1);
        assert_string_equal(err.msg, "invalid UTF-8 at byte 2");
        tok_ids_free(&ids);
    }
    /* the offset counts from the first segment */
    tok_segment segs[] = {{"abc", 3, TOK_ADDED_ALL}, {"d\x80", 2, TOK_ADDED_NONE}};
    tok_ids ids = {0};
    ds_err err = {0};
    assert_int_equal(tok_encode_segments(t, segs, 2, false, &ids, &err), -1);
    assert_string_equal(err.msg, "invalid UTF-8 at byte 4");
    /* NUL bytes are ordinary text */
    assert_int_equal(tok_encode(t, "a\0b", 3, TOK_ADDED_ALL, false, &ids, &err), 0);
    assert_int_equal(ids.n, 3);
    tok_ids_free(&ids);
    tok_free(t);
}

/* ---- GGUF ---- */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s) {
    gu64(b, strlen(s));
    gput(b, s, strlen(s));
}
static void gkv_str(gbuf *b, const char *k, const char *v) {
    gstr(b, k);
    gu32(b, 8);
    gstr(b, v);
}
static void gkv_u32(gbuf *b, const char *k, uint32_t v) {
    gstr(b, k);
    gu32(b, 4);
    gu32(b, v);
}
static void gkv_strs(gbuf *b, const char *k, const char **v, size_t n) {
    gstr(b, k);
    gu32(b, 9);
    gu32(b, 8);
    gu64(b, n);
    for (size_t i = 0; i < n; i++) gstr(b, v[i]);
}
static void gkv_i32s(gbuf *b, const char *k, const int32_t *v, size_t n) {
    gstr(b, k);
    gu32(b, 9);
    gu32(b, 5);
    gu64(b, n);
    gput(b, v, n * 4);
}

/* A vocabulary-only GGUF: 256 byte tokens, "ab", a control BOS and a user-defined "<U>". */
static gbuf make_gguf(const char *pre) {
    const char *tokens[259];
    int32_t types[259];
    for (int b = 0; b < 256; b++) {
        tokens[b] = bytestr((uint8_t)b); /* static storage per byte */
        types[b] = 1;
    }
    tokens[256] = "ab";
    types[256] = 1;
    tokens[257] = "<s>";
    types[257] = 3;
    tokens[258] = "<U>";
    types[258] = 4;
    const char *merges[] = {"a b"};
    gbuf b = {0};
    gput(&b, "GGUF", 4);
    gu32(&b, 3);
    gu64(&b, 0); /* tensors */
    gu64(&b, 7); /* key/values */
    gkv_str(&b, "tokenizer.ggml.model", "gpt2");
    gkv_str(&b, "tokenizer.ggml.pre", pre);
    gkv_strs(&b, "tokenizer.ggml.tokens", tokens, 259);
    gkv_i32s(&b, "tokenizer.ggml.token_type", types, 259);
    gkv_strs(&b, "tokenizer.ggml.merges", merges, 1);
    gkv_u32(&b, "tokenizer.ggml.bos_token_id", 257);
    gkv_str(&b, "tokenizer.chat_template", "{{ bos_token }}");
    return b;
}

static void test_gguf_vocab(void **state) {
    (void)state;
    gbuf b = make_gguf("deepseek-v3");
    gguf_file f;
    ds_err err = {0};
    assert_int_equal(gguf_parse(b.p, b.n, "v.gguf", &f, &err), 0);
    tok_tokenizer *t;
    if (tok_load_gguf(&f, &t, &err)) fail_msg("%s", err.msg);
    gguf_close(&f);
    free(b.p);
    expect_ids(t, "ab<U><s>", TOK_ADDED_NON_SPECIAL, false, 256, 258, '<', 's', '>', -1);
    expect_ids(t, "ab<U><s>", TOK_ADDED_ALL, false, 256, 258, 257, -1);
    expect_ids(t, "1234", TOK_ADDED_ALL, false, '1', '2', '3', '4', -1);
    assert_int_equal(tok_bos_id(t), 257);
    assert_false(tok_adds_bos(t)); /* deepseek-v3 GGUF without add_bos_token */
    assert_string_equal(tok_chat_template(t), "{{ bos_token }}");
    assert_true(tok_is_special(t, 257));
    assert_false(tok_is_special(t, 258));
    assert_int_equal(tok_token_id(t, "<U>"), 258);
    tok_free(t);

    b = make_gguf("gpt-17");
    assert_int_equal(gguf_parse(b.p, b.n, "v.gguf", &f, &err), 0);
    assert_int_equal(tok_load_gguf(&f, &t, &err), -1);
    assert_non_null(strstr(err.msg, "'gpt-17'"));
    gguf_close(&f);
    free(b.p);
}

static int teardown(void **state) {
    (void)state;
    if (g_dir[0]) {
        char path[512];
        snprintf(path, sizeof path, "%s/tokenizer.json", g_dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", g_dir);
        unlink(path);
        rmdir(g_dir);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_rank_order),
        cmocka_unit_test(test_bpe_ties_leftmost),
        cmocka_unit_test(test_bpe_chain_and_pair_formats),
        cmocka_unit_test(test_bpe_ignore_merges),
        cmocka_unit_test(test_bpe_long_piece_is_fast),
        cmocka_unit_test(test_split_behaviours),
        cmocka_unit_test(test_regex_split_and_prefix_space),
        cmocka_unit_test(test_nfc_normalizer),
        cmocka_unit_test(test_nfc_stable_predicate),
        cmocka_unit_test(test_added_modes),
        cmocka_unit_test(test_added_strip_and_single_word),
        cmocka_unit_test(test_segments_keep_content_plain),
        cmocka_unit_test(test_post_processor_and_prompt),
        cmocka_unit_test(test_stream_utf8_boundaries),
        cmocka_unit_test(test_decode_clean_up),
        cmocka_unit_test(test_load_errors_name_the_type),
        cmocka_unit_test(test_invalid_utf8_position),
        cmocka_unit_test(test_gguf_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
