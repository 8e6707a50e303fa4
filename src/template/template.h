/* template: a Jinja-subset interpreter for chat templates, rendering exactly what Hugging Face
 * transformers renders (jinja2 ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks,
 * the loopcontrols extension, transformers' `tojson`, `raise_exception`, `strftime_now` and
 * `{% generation %}`).
 *
 * It knows JSON values, not tokens. The result of a render is the prompt text cut into
 * segments, each marked as template text (written by the template itself, or taken from
 * variables the server supplies such as bos_token) or as caller content (any byte that came
 * from the `messages`, `tools` or `documents` values of the request). The tokenizer matches
 * added and special tokens in template text only, so a user who types "<｜User｜>" never
 * produces the role marker.
 *
 * Provenance is tracked on every string value: slicing, split, strip, replace and join keep
 * it byte-exact; case mapping and tojson mark their whole result as caller content when any
 * input byte was. Non-string values taken from the request (numbers, booleans, null) print as
 * caller content too.
 *
 * Supported: {{ }}, {% %}, {# #}, whitespace control (- and +), raw; for (with `if`, else,
 * loop.*, break, continue), if/elif/else, set (names, tuples, ns.attr, block set), namespace(),
 * macro, with, filter blocks, generation; Python-like expressions and the filters, tests and
 * str/dict/list methods chat templates use. Anything jinja2 has that this does not is an error
 * (at compile time for unknown tags, filters and tests; at render time for unsupported
 * methods), never silently different output.
 *
 * Errors are values: compile errors carry "line L, column C"; render errors carry the line and
 * the message (raise_exception's message verbatim). Renders are bounded in steps, nesting and
 * memory, so a hostile template can neither hang nor exhaust the stack. */
#ifndef DS_TEMPLATE_TEMPLATE_H
#define DS_TEMPLATE_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/error.h"

/* A compiled template; immutable, so one may be rendered by many threads at once. */
typedef struct tpl_template tpl_template;

/* Where the bytes of a segment came from. */
typedef enum tpl_origin {
    TPL_TEMPLATE = 0, /* template text and server-side variables: special tokens may match */
    TPL_CONTENT = 1,  /* caller content (messages / tools / documents): ordinary text only */
} tpl_origin;

/* One run of the rendered text: `len` bytes at `text` (pointing into tpl_output.text). */
typedef struct tpl_segment {
    const char *text;
    size_t len;
    tpl_origin origin;
} tpl_segment;

/* A rendered prompt. `text` is malloc'd, NUL-terminated, `len` bytes (may contain NUL bytes
 * that came from the input); `segs` cover it in order, adjacent segments differ in origin and
 * none is empty. Free with tpl_output_free. */
typedef struct tpl_output {
    char *text;
    size_t len;
    tpl_segment *segs;
    size_t n_segs;
} tpl_output;

/* Limits and switches for one render; zero fields take the defaults shown. */
typedef struct tpl_render_opts {
    uint64_t max_steps;       /* statements + expression nodes evaluated; default 10,000,000 */
    size_t max_memory;        /* bytes of values and output; default 256 MiB */
    int max_depth;            /* nested macro calls and captured blocks; default 64 */
    time_t now;               /* strftime_now's clock (local time); 0 = the real clock */
    const char *const *caller_keys; /* top-level context keys whose values are caller content,
                                       NULL-terminated; NULL = {"messages","tools","documents"} */
} tpl_render_opts;

/* Compiles `len` bytes of template source (UTF-8). On a syntax error or an unsupported tag,
 * filter or test returns -1 with "template syntax error at line L, column C: ...". */
int tpl_compile(const char *source, size_t len, tpl_template **out, ds_err *err);

/* Renders with `context` (a JSON object: its keys are the template's variables, e.g.
 * messages, tools, add_generation_prompt, bos_token, eos_token and any extra kwargs) and the
 * default options. `out` is overwritten; on error it is left empty and -1 is returned. */
int tpl_render(const tpl_template *t, const json_t *context, tpl_output *out, ds_err *err);

/* tpl_render with explicit options (opts may be NULL). */
int tpl_render_ex(const tpl_template *t, const json_t *context, const tpl_render_opts *opts,
                  tpl_output *out, ds_err *err);

void tpl_output_free(tpl_output *out);
void tpl_free(tpl_template *t);

/* ---- built-in templates and transformers' conventions -------------------------------------- */

/* The built-in template for a family ("deepseek-llm", "deepseek-v2", "deepseek-coder"), for
 * models that ship none (V3, R1 and the distills ship theirs); NULL for other names.
 * Static storage. deepseek-llm and deepseek-v2 share one template. */
const char *tpl_builtin(const char *family);

/* NULL-terminated list of the family names tpl_builtin knows. */
const char *const *tpl_builtin_names(void);

/* The chat template a tokenizer_config.json declares, chosen as transformers does: a string
 * is used as is; a list of {"name","template"} gives "tool_use" when with_tools and present,
 * else "default". Returns 1 and sets *source (borrowed from the config) when found, 0 when the
 * config has none, -1 when "chat_template" is malformed. */
int tpl_config_template(const json_t *tokenizer_config, bool with_tools, const char **source,
                        ds_err *err);

/* Builds a render context the way transformers' apply_chat_template does: the special tokens
 * of `tokenizer_config` (bos/eos/unk/sep/pad/cls/mask_token and additional_special_tokens;
 * AddedToken dicts become their "content" string), then messages, tools (JSON null when
 * absent), documents = null, add_generation_prompt, then every entry of `kwargs` (may be
 * NULL), which override the rest. tokenizer_config may be NULL. The inputs are not modified;
 * *out is a new reference. */
int tpl_chat_context(const json_t *tokenizer_config, const json_t *messages, const json_t *tools,
                     bool add_generation_prompt, const json_t *kwargs, json_t **out,
                     ds_err *err);

#endif
