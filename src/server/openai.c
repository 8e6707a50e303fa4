/* Validation of OpenAI request bodies: every field the server uses is checked for type and
 * range here, before anything is tokenized or queued, so that a bad request is a clear 400
 * naming the field. Unknown fields are ignored (as vLLM and llama-server do). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/srv_internal.h"

int srv_fail(srv_error *err, int status, const char *param, const char *fmt, ...) {
    err->status = status;
    err->param = param;
    err->code = NULL;
    switch (status) {
    case 401: err->type = "authentication_error"; err->code = "invalid_api_key"; break;
    case 404: err->type = "not_found_error"; break;
    case 408: err->type = "timeout_error"; break;
    case 413: err->type = "invalid_request_error"; err->code = "request_too_large"; break;
    case 429: err->type = "rate_limit_error"; err->code = "queue_full"; break;
    case 503: err->type = "service_unavailable_error"; break;
    default: err->type = "invalid_request_error"; break;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_parse_body(const char *body, size_t len, json_t **out, srv_error *err) {
    json_error_t je;
    *out = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!*out) return srv_fail(err, 400, NULL, "invalid JSON body: %s (line %d, column %d)", je.text, je.line, je.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return srv_fail(err, 400, NULL, "the request body must be a JSON object");
    }
    return 0;
}

/* ---- typed fields: 0 absent (or null), 1 present, -1 wrong type or range ------------------ */

static int get_num(const json_t *o, const char *key, double lo, double hi, double *out, srv_error *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return srv_fail(err, 400, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return srv_fail(err, 400, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    return 1;
}

static int get_int(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out, srv_error *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return srv_fail(err, 400, key, "'%s' must be an integer", key);
    int64_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return srv_fail(err, 400, key, "'%s' must be between %lld and %lld, got %lld", key, (long long)lo,
                        (long long)hi, (long long)i);
    *out = i;
    return 1;
}

static int get_bool(const json_t *o, const char *key, bool *out, srv_error *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return srv_fail(err, 400, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 1;
}

static int check_ids(const json_t *a, const char *what, srv_error *err) {
    if (json_array_size(a) == 0) return srv_fail(err, 400, "prompt", "%s is empty", what);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return srv_fail(err, 400, "prompt", "%s: element %zu is not a token id (a non-negative integer)", what, i);
    }
    return 0;
}

/* prompt: a string, a list of strings, a list of ids, or a list of lists of ids. */
static int check_prompt(const json_t *p, srv_error *err) {
    if (!p || json_is_null(p)) return srv_fail(err, 400, "prompt", "'prompt' is required");
    if (json_is_string(p)) return 0;
    if (!json_is_array(p) || json_array_size(p) == 0)
        return srv_fail(err, 400, "prompt", "'prompt' must be a string, a list of strings or a list of token ids");
    const json_t *first = json_array_get(p, 0);
    size_t i;
    const json_t *v;
    if (json_is_integer(first)) return check_ids(p, "'prompt'", err);
    if (json_array_size(p) > SRV_MAX_N)
        return srv_fail(err, 400, "prompt", "at most %d prompts per request", SRV_MAX_N);
    json_array_foreach(p, i, v) {
        if (json_is_string(v)) continue;
        if (json_is_array(v)) {
            if (check_ids(v, "'prompt' list of ids", err)) return -1;
            continue;
        }
        return srv_fail(err, 400, "prompt", "'prompt' element %zu must be a string or a list of token ids", i);
    }
    return 0;
}

/* content: a string, null (assistant turns with tool calls), or a list of text parts. */
static int check_content(const json_t *c, size_t idx, srv_error *err) {
    if (!c || json_is_null(c) || json_is_string(c)) return 0;
    if (!json_is_array(c))
        return srv_fail(err, 400, "messages", "messages[%zu].content must be a string or a list of parts", idx);
    size_t i;
    const json_t *part;
    json_array_foreach(c, i, part) {
        const json_t *type = json_object_get(part, "type");
        if (!json_is_object(part) || !json_is_string(type))
            return srv_fail(err, 400, "messages", "messages[%zu].content[%zu] must be an object with a 'type'", idx, i);
        if (strcmp(json_string_value(type), "text"))
            return srv_fail(err, 400, "messages", "messages[%zu].content[%zu]: only 'text' parts are supported, not '%s'",
                            idx, i, json_string_value(type));
        if (!json_is_string(json_object_get(part, "text")))
            return srv_fail(err, 400, "messages", "messages[%zu].content[%zu].text must be a string", idx, i);
    }
    return 0;
}

static int check_messages(const json_t *m, srv_error *err) {
    if (!m || json_is_null(m)) return srv_fail(err, 400, "messages", "'messages' is required");
    if (!json_is_array(m)) return srv_fail(err, 400, "messages", "'messages' must be a list of message objects");
    if (json_array_size(m) == 0) return srv_fail(err, 400, "messages", "'messages' is empty");
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", NULL};
    size_t i;
    const json_t *msg;
    json_array_foreach(m, i, msg) {
        if (!json_is_object(msg)) return srv_fail(err, 400, "messages", "messages[%zu] must be an object", i);
        const json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role)) return srv_fail(err, 400, "messages", "messages[%zu].role must be a string", i);
        bool known = false;
        for (int r = 0; roles[r] && !known; r++) known = !strcmp(roles[r], json_string_value(role));
        if (!known)
            return srv_fail(err, 400, "messages", "messages[%zu].role '%s' is not one of system, developer, user, "
                            "assistant, tool", i, json_string_value(role));
        if (check_content(json_object_get(msg, "content"), i, err)) return -1;
    }
    return 0;
}

int srv_parse_params(const json_t *body, srv_endpoint kind, srv_params *out, srv_error *err) {
    *out = (srv_params){.kind = kind, .max_tokens = -1, .temperature = NAN, .top_p = NAN, .min_p = NAN,
                        .presence = NAN, .frequency = NAN, .repetition = NAN, .top_k = -2, .n = 1,
                        .logprobs = -1};
    const json_t *v = json_object_get(body, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return srv_fail(err, 400, "model", "'model' must be a string");
        out->model = json_string_value(v);
    }
    if (kind == SRV_CHAT) {
        out->messages = json_object_get(body, "messages");
        if (check_messages(out->messages, err)) return -1;
        v = json_object_get(body, "tools");
        if (v && !json_is_null(v)) {
            if (!json_is_array(v)) return srv_fail(err, 400, "tools", "'tools' must be a list");
            out->tools = v;
        }
    } else {
        out->prompt = json_object_get(body, "prompt");
        if (check_prompt(out->prompt, err)) return -1;
    }

    int64_t i64;
    int rc;
    if ((rc = get_int(body, "max_tokens", 1, INT32_MAX, &out->max_tokens, err)) < 0) return -1;
    if ((rc = get_int(body, "max_completion_tokens", 1, INT32_MAX, &i64, err)) < 0) return -1;
    if (rc) out->max_tokens = i64;
    if (get_num(body, "temperature", 0, 2, &out->temperature, err) < 0) return -1;
    if (get_num(body, "top_p", 0, 1, &out->top_p, err) < 0) return -1;
    if (get_num(body, "min_p", 0, 1, &out->min_p, err) < 0) return -1;
    if (get_num(body, "presence_penalty", -2, 2, &out->presence, err) < 0) return -1;
    if (get_num(body, "frequency_penalty", -2, 2, &out->frequency, err) < 0) return -1;
    if (get_num(body, "repetition_penalty", 0.01, 10, &out->repetition, err) < 0) return -1;
    if (get_int(body, "top_k", -1, INT32_MAX, &out->top_k, err) < 0) return -1;
    if ((rc = get_int(body, "seed", INT64_MIN, INT64_MAX, &i64, err)) < 0) return -1;
    if (rc) out->has_seed = true, out->seed = (uint64_t)i64;
    if ((rc = get_int(body, "n", 1, SRV_MAX_N, &i64, err)) < 0) return -1;
    if (rc) out->n = (int)i64;
    if (get_bool(body, "stream", &out->stream, err) < 0) return -1;
    if (get_bool(body, "ignore_eos", &out->ignore_eos, err) < 0) return -1;
    if (get_bool(body, "echo", &out->echo, err) < 0) return -1;
    if (out->echo) return srv_fail(err, 400, "echo", "'echo' is not supported");

    v = json_object_get(body, "stream_options");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) return srv_fail(err, 400, "stream_options", "'stream_options' must be an object");
        if (get_bool(v, "include_usage", &out->include_usage, err) < 0) return -1;
    }

    v = json_object_get(body, "stop");
    if (v && !json_is_null(v)) {
        if (json_is_string(v)) {
            if (json_string_length(v) == 0) return srv_fail(err, 400, "stop", "'stop' strings must not be empty");
            out->stop[out->n_stop++] = json_string_value(v);
        } else if (json_is_array(v)) {
            if (json_array_size(v) > SRV_MAX_STOP) return srv_fail(err, 400, "stop", "at most %d stop strings", SRV_MAX_STOP);
            size_t i;
            const json_t *s;
            json_array_foreach(v, i, s) {
                if (!json_is_string(s) || json_string_length(s) == 0)
                    return srv_fail(err, 400, "stop", "'stop' must be a string or a list of non-empty strings");
                out->stop[out->n_stop++] = json_string_value(s);
            }
        } else {
            return srv_fail(err, 400, "stop", "'stop' must be a string or a list of strings");
        }
    }

    /* logprobs: an integer (completions: how many alternatives) or a boolean with top_logprobs
     * (chat). */
    v = json_object_get(body, "logprobs");
    if (v && !json_is_null(v)) {
        if (kind == SRV_COMPLETIONS) {
            if (get_int(body, "logprobs", 0, 20, &i64, err) < 0) return -1;
            out->logprobs = (int)i64;
        } else {
            bool on = false;
            if (get_bool(body, "logprobs", &on, err) < 0) return -1;
            if (on) out->logprobs = 0;
        }
    }
    if (kind == SRV_CHAT && (rc = get_int(body, "top_logprobs", 0, 20, &i64, err)) != 0) {
        if (rc < 0) return -1;
        if (out->logprobs < 0 && i64 > 0)
            return srv_fail(err, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        if (out->logprobs >= 0) out->logprobs = (int)i64;
    }
    return 0;
}
