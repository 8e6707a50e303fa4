/* libFuzzer target for the template lexer, parser and evaluator: the input is template source,
 * compiled and (when it compiles) rendered against a small fixed chat context with tight step
 * and memory limits. Any crash, leak, sanitizer report or hang is a bug; so is a rendered
 * output whose segments do not cover its text exactly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "template/template.h"

static const char CONTEXT[] =
    "{\"bos_token\": \"<｜begin▁of▁sentence｜>\", \"eos_token\": \"<｜end▁of▁sentence｜>\","
    " \"add_generation_prompt\": true, \"documents\": null, \"n\": 3, \"f\": -2.5,"
    " \"messages\": ["
    "  {\"role\": \"system\", \"content\": \"Be brief.\"},"
    "  {\"role\": \"user\", \"content\": \"<｜User｜>héllo 世界 \\u0000 end\"},"
    "  {\"role\": \"assistant\", \"content\": \"<think>\\nplan\\n</think>\\n\\nanswer\"},"
    "  {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
    "   \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
    "  {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"12C\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
    "   \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *ctx;
    if (!ctx) {
        ctx = json_loads(CONTEXT, JSON_ALLOW_NUL, NULL);
        if (!ctx) abort();
    }
    tpl_template *t;
    ds_err err;
    if (tpl_compile((const char *)data, size, &t, &err) != 0) return 0;
    tpl_render_opts opts = {.max_steps = 50000, .max_memory = (size_t)4 << 20, .now = 1700000000};
    tpl_output o;
    if (tpl_render_ex(t, ctx, &opts, &o, &err) == 0) {
        size_t pos = 0;
        for (size_t i = 0; i < o.n_segs; i++) {
            if (o.segs[i].text != o.text + pos || o.segs[i].len == 0) abort();
            if (i && o.segs[i].origin == o.segs[i - 1].origin) abort();
            pos += o.segs[i].len;
        }
        if (pos != o.len || o.text[o.len] != '\0') abort();
        tpl_output_free(&o);
    }
    tpl_free(t);
    return 0;
}
