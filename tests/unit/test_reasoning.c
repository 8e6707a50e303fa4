/* The reasoning split of R1-style chat answers: <think> opened by the prompt or written by the
 * model, </think> split anywhere across pieces, whitespace around the reasoning dropped, and
 * answers without reasoning passed through untouched. Every case is fed whole, one byte at a
 * time, and cut in two at every offset; all must give the same reasoning and content. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/srv_internal.h"

typedef struct split_case {
    bool opened;
    const char *text, *reasoning, *content;
} split_case;

static const split_case k_cases[] = {
    {true, "Let me think.\n</think>\n\nThe answer is 4.", "Let me think.", "The answer is 4."},
    {false, "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "Let me think.", "The answer is 4."},
    {false, "  <think>x</think>y", "x", "y"},
    {false, "Hello <think> there", "", "Hello <think> there"},
    {false, "\n\nHi", "", "\n\nHi"},
    {false, "<thin", "", "<thin"},
    {false, "", "", ""},
    {false, "<think>a</think>b</think>c", "a", "b</think>c"},
    {true, "<think>\nabc</think>def", "abc", "def"},
    {true, "a  b \n c\n\n", "a  b \n c", ""},
    {true, "abc</thi", "abc</thi", ""},
    {true, "</think>answer", "", "answer"},
    {true, "a </ b</think> c", "a </ b", "c"},
    {true, "x</think>\n\n", "x", ""},
    {true, "a\n\nb</think>c \n", "a\n\nb", "c \n"},
};

/* Feeds `text` in pieces that end at the offsets in cuts[] (ascending), then the rest. */
static void run_split(const split_case *c, const size_t *cuts, int n_cuts) {
    srv_reasoning r;
    srv_buf reasoning = {0}, content = {0};
    srv_reasoning_init(&r, c->opened);
    size_t at = 0, len = strlen(c->text);
    for (int i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        srv_reasoning_feed(&r, c->text + at, to - at, &reasoning, &content);
        at = to;
    }
    srv_reasoning_finish(&r, &reasoning, &content);
    assert_int_equal(reasoning.len, strlen(c->reasoning));
    assert_int_equal(content.len, strlen(c->content));
    if (reasoning.len) assert_memory_equal(reasoning.p, c->reasoning, reasoning.len);
    if (content.len) assert_memory_equal(content.p, c->content, content.len);
    srv_reasoning_free(&r);
    free(reasoning.p);
    free(content.p);
}

static void test_whole(void **state) {
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) run_split(&k_cases[i], NULL, 0);
}

static void test_byte_by_byte(void **state) {
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        size_t len = strlen(k_cases[i].text), cuts[64];
        assert_true(len <= 64);
        for (size_t k = 0; k < len; k++) cuts[k] = k;
        run_split(&k_cases[i], cuts, (int)len);
    }
}

static void test_every_cut(void **state) {
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++)
        for (size_t at = 0; at <= strlen(k_cases[i].text); at++) run_split(&k_cases[i], &at, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_every_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
