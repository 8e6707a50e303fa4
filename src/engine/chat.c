#include "engine/chat.h"

#include <stdlib.h>
#include <string.h>

int ds_chat_template(const tok_tokenizer *tok, tpl_template **out, ds_err *err) {
    *out = NULL;
    const char *src = tok_chat_template(tok);
    if (!src) return ds_errf(err, "the model ships no chat template");
    if (tpl_compile(src, strlen(src), out, err)) return ds_err_wrap(err, "its chat template is not supported");
    return 0;
}

/* Message content given as a list of text parts becomes one string, as templates expect. */
static json_t *normalize_messages(const json_t *messages) {
    json_t *out = json_deep_copy(messages);
    size_t i;
    json_t *m;
    json_array_foreach(out, i, m) {
        json_t *c = json_object_get(m, "content");
        if (!json_is_array(c)) continue;
        size_t len = 0, k;
        json_t *part;
        json_array_foreach(c, k, part) len += json_string_length(json_object_get(part, "text"));
        char *text = malloc(len + 1);
        if (!text) continue;
        size_t at = 0;
        json_array_foreach(c, k, part) {
            const json_t *t = json_object_get(part, "text");
            memcpy(text + at, json_string_value(t), json_string_length(t));
            at += json_string_length(t);
        }
        json_object_set_new(m, "content", json_stringn(text, at));
        free(text);
    }
    return out;
}

int ds_chat_encode(const tok_tokenizer *tok, const tpl_template *tpl, const json_t *messages, const json_t *tools,
                   bool add_generation_prompt, const json_t *template_kwargs, tok_ids *ids, char **text, ds_err *err) {
    if (text) *text = NULL;
    if (!json_is_array(messages)) return ds_errf(err, "'messages' must be a list");
    json_t *msgs = normalize_messages(messages), *kwargs = json_object(), *ctx = NULL;
    const char *bos = tok_bos_text(tok), *eos = tok_eos_text(tok);
    json_object_set_new(kwargs, "bos_token", json_string(bos ? bos : ""));
    json_object_set_new(kwargs, "eos_token", json_string(eos ? eos : ""));
    if (json_is_object(template_kwargs)) json_object_update(kwargs, (json_t *)template_kwargs);
    tpl_output o = {0};
    tok_segment *segs = NULL;
    int rc = -1;
    if (!msgs || tpl_chat_context(NULL, msgs, tools, add_generation_prompt, kwargs, &ctx, err)) {
        if (!msgs) ds_errf(err, "out of memory");
        goto out;
    }
    if (tpl_render(tpl, ctx, &o, err)) {
        ds_err_wrap(err, "the chat template rejected these messages");
        goto out;
    }
    if (ids) {
        segs = calloc(o.n_segs ? o.n_segs : 1, sizeof *segs);
        if (!segs) {
            ds_errf(err, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < o.n_segs; i++)
            segs[i] = (tok_segment){o.segs[i].text, o.segs[i].len,
                                    o.segs[i].origin == TPL_TEMPLATE ? TOK_ADDED_ALL : TOK_ADDED_NONE};
        if (tok_encode_segments(tok, segs, o.n_segs, false, ids, err)) {
            ds_err_wrap(err, "cannot tokenize the messages");
            goto out;
        }
    }
    if (text) {
        *text = o.text;
        o.text = NULL;
    }
    rc = 0;
out:
    free(segs);
    tpl_output_free(&o);
    json_decref(msgs);
    json_decref(kwargs);
    json_decref(ctx);
    return rc;
}
