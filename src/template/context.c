/* transformers' conventions around a chat template: which template a tokenizer_config.json
 * declares, and the variables apply_chat_template passes to it (special tokens, with
 * AddedToken dicts reduced to their content, then messages / tools / documents /
 * add_generation_prompt, then extra kwargs). */
#include <string.h>

#include "template/template.h"

int tpl_config_template(const json_t *cfg, bool with_tools, const char **source, ds_err *err) {
    *source = NULL;
    if (!cfg) return 0;
    const json_t *t = json_object_get(cfg, "chat_template");
    if (!t || json_is_null(t)) return 0;
    if (json_is_string(t)) {
        *source = json_string_value(t);
        return 1;
    }
    if (!json_is_array(t))
        return ds_errf(err, "tokenizer_config.json: field 'chat_template' must be a string or a list of "
                            "{\"name\", \"template\"}");
    const char *deflt = NULL, *tool_use = NULL;
    size_t i;
    const json_t *e;
    json_array_foreach(t, i, e) {
        const json_t *n = json_object_get(e, "name"), *s = json_object_get(e, "template");
        if (!json_is_string(n) || !json_is_string(s))
            return ds_errf(err, "tokenizer_config.json: chat_template[%zu] needs string fields 'name' and "
                                "'template'", i);
        if (!strcmp(json_string_value(n), "default")) deflt = json_string_value(s);
        if (!strcmp(json_string_value(n), "tool_use")) tool_use = json_string_value(s);
    }
    *source = with_tools && tool_use ? tool_use : deflt;
    if (!*source)
        return ds_errf(err, "tokenizer_config.json: chat_template lists no template named 'default'");
    return 1;
}

/* A special token as templates see it: a string, or an AddedToken dict's "content". */
static json_t *token_text(const json_t *v) {
    if (json_is_string(v)) return json_incref((json_t *)v);
    if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "content");
        if (json_is_string(c)) return json_incref((json_t *)c);
    }
    return NULL;
}

int tpl_chat_context(const json_t *cfg, const json_t *messages, const json_t *tools,
                     bool add_generation_prompt, const json_t *kwargs, json_t **out, ds_err *err) {
    *out = NULL;
    json_t *ctx = json_object();
    if (!ctx) return ds_errf(err, "template: out of memory");
    static const char *const specials[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                           "pad_token", "cls_token", "mask_token", NULL};
    int rc = 0;
    for (int i = 0; cfg && specials[i] && rc == 0; i++) {
        json_t *t = token_text(json_object_get(cfg, specials[i]));
        if (t && json_object_set_new(ctx, specials[i], t) != 0) rc = -1;
    }
    const json_t *extra = cfg ? json_object_get(cfg, "additional_special_tokens") : NULL;
    if (rc == 0 && json_is_array(extra) && json_array_size(extra) > 0) {
        json_t *list = json_array();
        size_t i;
        const json_t *e;
        json_array_foreach(extra, i, e) {
            json_t *t = token_text(e);
            if (t) json_array_append_new(list, t);
        }
        if (!list || json_object_set_new(ctx, "additional_special_tokens", list) != 0) rc = -1;
    }
    if (rc == 0) {
        rc |= json_object_set_new(ctx, "messages", messages ? json_deep_copy(messages) : json_array());
        rc |= json_object_set_new(ctx, "tools", tools ? json_deep_copy(tools) : json_null());
        rc |= json_object_set_new(ctx, "documents", json_null());
        rc |= json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));
    }
    if (rc == 0 && kwargs) {
        if (!json_is_object(kwargs)) {
            json_decref(ctx);
            return ds_errf(err, "chat_template_kwargs must be a JSON object");
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)kwargs, k, v) {
            if (json_object_set(ctx, k, v) != 0) rc = -1;
        }
    }
    if (rc != 0) {
        json_decref(ctx);
        return ds_errf(err, "template: out of memory");
    }
    *out = ctx;
    return 0;
}
