/* Chat templates rendered byte for byte as Hugging Face transformers renders them.
 *
 * tests/fixtures/templates/<family>.json (tools/gen_template_fixtures.py, transformers 4.46.3,
 * jinja2 3.1.6) holds, for each conversation, the exact variables apply_chat_template passed
 * and the text it produced, or the error it raised. Each is rendered here and compared; where
 * the reference failed we must fail too. language.json does the same for short snippets that
 * exercise the language itself.
 *
 * Beyond equal text, the segments must hold up: they cover the text, alternate in origin,
 * none is empty, and every caller string (message content, tool output, tool arguments) that
 * appears in the output appears at least once wholly inside caller-content segments.
 *
 * The built-in templates are checked against their sources: the .jinja files under
 * src/template/builtin/ and the official templates in ../shared. */
#define _GNU_SOURCE /* memmem */
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

#include "template/template.h"

static const char *src_dir(void) {
    const char *s = getenv("DSINFER_SOURCE_DIR");
    return s ? s : ".";
}

/* Path of a file under ../shared, or NULL (test skipped, or failed under CI=true). */
static const char *shared_path(char *out, size_t cap, const char *rel) {
    snprintf(out, cap, "%s/../shared/%s", src_dir(), rel);
    if (access(out, R_OK) == 0) return out;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("%s is missing (CI=true)", out);
    print_message("skipping: %s not found\n", out);
    return NULL;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return p;
}

static json_t *load_fixture(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/templates/%s.json", src_dir(), name);
    json_error_t je;
    json_t *d = json_load_file(path, 0, &je);
    if (!d) fail_msg("%s: %s (line %d)", path, je.text, je.line);
    return d;
}

/* The template source the fixture names: a built-in, or a file in ../shared (NULL: skip). */
static char *fixture_source(const json_t *fx) {
    const json_t *src = json_object_get(fx, "source");
    const char *builtin = json_string_value(json_object_get(src, "builtin"));
    if (builtin && tpl_builtin(builtin)) return strdup(tpl_builtin(builtin));
    const char *rel = json_string_value(json_object_get(src, "shared"));
    assert_non_null(rel);
    char path[4096];
    if (!shared_path(path, sizeof path, rel)) return NULL;
    if (strstr(rel, ".jinja")) return read_file(path, NULL);
    json_error_t je;
    /* llama3's model_max_length (1e30) does not fit jansson's integers */
    json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!cfg) fail_msg("%s: %s", path, je.text);
    const char *t;
    ds_err err = {{0}};
    assert_int_equal(tpl_config_template(cfg, false, &t, &err), 1);
    char *copy = strdup(t);
    json_decref(cfg);
    return copy;
}

/* Segments cover the text in order, alternate in origin and are never empty. */
static void check_segments(const tpl_output *o, const char *what) {
    size_t pos = 0;
    for (size_t i = 0; i < o->n_segs; i++) {
        const tpl_segment *s = &o->segs[i];
        if (s->text != o->text + pos || s->len == 0) fail_msg("%s: segment %zu does not continue the text", what, i);
        if (i && s->origin == o->segs[i - 1].origin) fail_msg("%s: segments %zu and %zu share an origin", what, i - 1, i);
        pos += s->len;
    }
    if (pos != o->len) fail_msg("%s: segments cover %zu of %zu bytes", what, pos, o->len);
    if (o->text[o->len] != '\0') fail_msg("%s: text not NUL-terminated", what);
}

/* Is [off, off+n) inside caller-content segments only? */
static int all_content(const tpl_output *o, size_t off, size_t n) {
    for (size_t i = 0; i < o->n_segs && n; i++) {
        size_t so = (size_t)(o->segs[i].text - o->text), se = so + o->segs[i].len;
        if (se <= off) continue;
        if (so > off || o->segs[i].origin != TPL_CONTENT) return 0;
        size_t take = se - off < n ? se - off : n;
        off += take;
        n -= take;
    }
    return n == 0;
}

/* Does [off, off+n) overlap a caller-content segment? */
static int some_content(const tpl_output *o, size_t off, size_t n) {
    for (size_t i = 0; i < o->n_segs; i++) {
        size_t so = (size_t)(o->segs[i].text - o->text), se = so + o->segs[i].len;
        if (se > off && so < off + n && o->segs[i].origin == TPL_CONTENT) return 1;
    }
    return 0;
}

/* Every caller string found in the output occurs at least once wholly as caller content.
 * Strings with markup ('<') are held to less: templates rebuild some of it from literals
 * (Qwen's "<think>\n" + reasoning + "\n</think>"), so an occurrence need only overlap caller
 * content. */
static void check_caller_strings(const tpl_output *o, const json_t *v, const char *what) {
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n < 2) return;
        const char *s = json_string_value(v);
        int markup = memchr(s, '<', n) != NULL;
        int found = 0, ok = 0;
        for (const char *p = o->text; (p = memmem(p, o->len - (size_t)(p - o->text), s, n)) != NULL; p++) {
            found = 1;
            size_t off = (size_t)(p - o->text);
            if (markup ? some_content(o, off, n) : all_content(o, off, n)) {
                ok = 1;
                break;
            }
        }
        if (found && !ok) fail_msg("%s: caller text \"%.80s\" appears only as template text", what, s);
        return;
    }
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v))
        json_array_foreach(v, i, x) check_caller_strings(o, x, what);
    else if (json_is_object(v))
        json_object_foreach((json_t *)v, k, x) {
            if (strcmp(k, "role") != 0 && strcmp(k, "type") != 0) check_caller_strings(o, x, what);
        }
}

static void run_fixture(const char *name, int min_rendered) {
    json_t *fx = load_fixture(name);
    char *source = fixture_source(fx);
    if (!source) {
        json_decref(fx);
        skip();
        return;
    }
    tpl_template *t = NULL;
    ds_err err = {{0}};
    if (tpl_compile(source, strlen(source), &t, &err) != 0) fail_msg("%s: %s", name, err.msg);
    const json_t *cases = json_object_get(fx, "cases");
    size_t i, rendered = 0;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *cname = json_string_value(json_object_get(c, "name"));
        char what[256];
        snprintf(what, sizeof what, "%s/%s", name, cname);
        const json_t *ctx = json_object_get(c, "context");
        const json_t *want = json_object_get(c, "expected");
        tpl_output o;
        int rc = tpl_render(t, ctx, &o, &err);
        if (!want) {
            if (rc == 0) fail_msg("%s: the reference fails (%s) but we rendered \"%.200s\"", what,
                                  json_string_value(json_object_get(c, "error")), o.text);
            assert_true(strlen(err.msg) > 0);
            continue;
        }
        if (rc != 0) fail_msg("%s: %s", what, err.msg);
        size_t wl = json_string_length(want);
        if (o.len != wl || memcmp(o.text, json_string_value(want), wl) != 0)
            fail_msg("%s differs from transformers:\n want \"%s\"\n got  \"%s\"", what, json_string_value(want), o.text);
        check_segments(&o, what);
        check_caller_strings(&o, json_object_get(ctx, "messages"), what);
        tpl_output_free(&o);
        rendered++;
    }
    if (rendered < (size_t)min_rendered) fail_msg("%s: only %zu conversations rendered", name, rendered);
    tpl_free(t);
    free(source);
    json_decref(fx);
}

static void test_deepseek_v3(void **state) {
    (void)state;
    run_fixture("deepseek-v3", 20);
}
static void test_deepseek_r1_distill(void **state) {
    (void)state;
    run_fixture("deepseek-r1-distill", 20);
}
static void test_deepseek_llm(void **state) {
    (void)state;
    run_fixture("deepseek-llm", 20);
}
static void test_deepseek_coder(void **state) {
    (void)state;
    run_fixture("deepseek-coder", 20);
}
static void test_qwen2(void **state) {
    (void)state;
    run_fixture("qwen2", 20);
}
static void test_llama3(void **state) {
    (void)state;
    run_fixture("llama3", 20);
}

/* language.json: snippets with a fixed context, rendered by transformers' jinja2 env. */
static void test_language(void **state) {
    (void)state;
    json_t *fx = load_fixture("language");
    const json_t *ctx = json_object_get(fx, "context");
    const json_t *cases = json_object_get(fx, "cases");
    size_t i, failures = 0;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *src = json_string_value(json_object_get(c, "template"));
        const json_t *want = json_object_get(c, "expected");
        tpl_template *t = NULL;
        ds_err err = {{0}};
        tpl_output o = {0};
        int rc = tpl_compile(src, strlen(src), &t, &err);
        if (rc == 0) rc = tpl_render(t, ctx, &o, &err);
        if (!want) {
            if (rc == 0) {
                print_error("language case %zu %s: reference fails (%s), we rendered \"%s\"\n", i, src,
                            json_string_value(json_object_get(c, "error")), o.text);
                failures++;
            }
        } else if (rc != 0) {
            print_error("language case %zu %s: %s\n", i, src, err.msg);
            failures++;
        } else if (o.len != json_string_length(want) || memcmp(o.text, json_string_value(want), o.len) != 0) {
            print_error("language case %zu %s:\n want \"%s\"\n got  \"%s\"\n", i, src, json_string_value(want), o.text);
            failures++;
        } else {
            check_segments(&o, src);
        }
        tpl_output_free(&o);
        tpl_free(t);
    }
    if (failures) fail_msg("%zu language cases differ from jinja2", failures);
    assert_true(json_array_size(cases) >= 100);
    json_decref(fx);
}

/* The built-in templates equal their sources. */
static void test_builtins_match_sources(void **state) {
    (void)state;
    char path[4096];
    const char *own[][2] = {{"deepseek-llm", "deepseek-llm.jinja"},
                            {"deepseek-v2", "deepseek-llm.jinja"},
                            {"deepseek-coder", "deepseek-coder.jinja"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/src/template/builtin/%s", src_dir(), own[i][1]);
        char *text = read_file(path, NULL);
        assert_non_null(text);
        assert_string_equal(tpl_builtin(own[i][0]), text);
        free(text);
    }
    const char *const *names = tpl_builtin_names();
    size_t n = 0;
    for (; names[n]; n++) {
        const char *src = tpl_builtin(names[n]);
        assert_non_null(src);
        tpl_template *t;
        ds_err err;
        if (tpl_compile(src, strlen(src), &t, &err) != 0) fail_msg("%s: %s", names[n], err.msg);
        tpl_free(t);
    }
    assert_int_equal(n, 3);
    /* V3 / R1 ship their templates: nothing is built in for them */
    assert_null(tpl_builtin("deepseek-v3"));
    assert_null(tpl_builtin("deepseek-v9"));
    assert_null(tpl_builtin(NULL));
}

/* The context helper reproduces what the fixtures recorded from apply_chat_template. */
static void check_context_helper(const char *fixture, const char *config) {
    char path[4096];
    if (!shared_path(path, sizeof path, config)) return;
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!cfg) fail_msg("%s: %s", path, je.text);
    json_t *fx = load_fixture(fixture);
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(fx, "cases"), i, c) {
        const json_t *want = json_object_get(c, "context");
        json_t *kw = json_object();
        if (json_object_get(want, "enable_thinking"))
            json_object_set(kw, "enable_thinking", json_object_get(want, "enable_thinking"));
        json_t *ctx;
        ds_err err;
        const json_t *tools = json_object_get(want, "tools");
        assert_int_equal(tpl_chat_context(cfg, json_object_get(want, "messages"), json_is_null(tools) ? NULL : tools,
                                          json_is_true(json_object_get(want, "add_generation_prompt")), kw, &ctx, &err),
                         0);
        if (!json_equal(ctx, (json_t *)want)) {
            char *a = json_dumps(ctx, JSON_COMPACT), *b = json_dumps(want, JSON_COMPACT);
            fail_msg("%s: context differs:\n ours %.600s\n want %.600s", fixture, a, b);
        }
        json_decref(ctx);
        json_decref(kw);
    }
    json_decref(fx);
    json_decref(cfg);
}

static void test_chat_context_from_config(void **state) {
    (void)state;
    check_context_helper("deepseek-v3", "tokenizers/deepseek-v3/tokenizer_config.json");
    check_context_helper("qwen2", "tokenizers/qwen2/tokenizer_config.json");
    check_context_helper("llama3", "tokenizers/llama3/tokenizer_config.json");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepseek_v3),
        cmocka_unit_test(test_deepseek_r1_distill),
        cmocka_unit_test(test_deepseek_llm),
        cmocka_unit_test(test_deepseek_coder),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_builtins_match_sources),
        cmocka_unit_test(test_chat_context_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
