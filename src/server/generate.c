/* Generation requests: from a validated body to queued scheduler requests, and from the tokens
 * the engine writes back to OpenAI responses (one JSON object, or SSE events).
 *
 * The engine knows only ids; text is made here, on the connection's thread: each choice has a
 * streaming detokenizer (never half a UTF-8 character), a hold-back buffer for stop strings
 * (text that might be the start of a stop string is not sent until it is known not to be),
 * and, for R1-style models, the reasoning split (reasoning.c) that sends what precedes </think>
 * as reasoning_content. A stop string ends the choice in the engine too. Latencies for
 * /metrics are taken here, as the connection sees the tokens. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include <time.h>

#include "server/srv_internal.h"

/* One choice as the client sees it. */
typedef struct gen_choice {
    sched_req *req;
    int ci;                 /* choice index within req */
    int consumed;           /* engine tokens taken so far */
    int n_tokens;           /* completion tokens counted (up to a stop string) */
    tok_stream *ts;
    srv_buf hold;           /* decoded text held back for stop-string matching */
    bool split;             /* chat with an R1-style model: text goes through `think` */
    srv_reasoning think;
    srv_buf content, reasoning; /* text ready to send (stream: since the last event) */
    double t_first, t_last; /* when the first and the latest token were taken (srv_now) */
    json_t *lp;             /* logprob entries ready to send (chat shape), or NULL */
    const char *finish_reason; /* non-NULL once finished */
    bool final_sent, role_sent;
} gen_choice;

struct srv_gen {
    srv_state *srv;
    json_t *body;
    srv_params p;
    sched_req **reqs;       /* one per prompt */
    int n_reqs;
    gen_choice *ch;         /* [n_reqs × p.n]: prompt-major, as OpenAI numbers choices */
    int n_ch;
    int fd;
    double t_start, deadline;
    bool first_token_seen;
    char id[48];
    int64_t created;
    int prompt_tokens, cached_tokens;
    srv_buf out;            /* SSE bytes not yet handed to the connection */
    size_t out_off;
    bool usage_sent, done_sent, failed;
    srv_error err;
};

bool srv_gen_streaming(const srv_gen *g) { return g->p.stream; }

/* ---- building the requests ---------------------------------------------------------------- */

static ds_sampler_params sampling(const srv_state *s, const srv_params *p) {
    ds_sampler_params sp = ds_sampler_defaults(&s->model->sampling);
    if (!isnan(p->temperature)) sp.temperature = (float)p->temperature;
    if (p->top_k >= -1) sp.top_k = p->top_k < 0 ? 0 : (int)p->top_k;
    if (!isnan(p->top_p)) sp.top_p = (float)p->top_p;
    if (!isnan(p->min_p)) sp.min_p = (float)p->min_p;
    if (!isnan(p->repetition)) sp.repeat_penalty = (float)p->repetition;
    if (!isnan(p->presence)) sp.presence_penalty = (float)p->presence;
    if (!isnan(p->frequency)) sp.frequency_penalty = (float)p->frequency;
    sp.seed = p->has_seed ? p->seed : ds_random_seed();
    return sp;
}

static int ids_from_json(const srv_state *s, const json_t *a, tok_ids *out, srv_error *err) {
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
        int64_t id = json_integer_value(v);
        if (id >= s->model->hp.n_vocab)
            return srv_fail(err, 400, "prompt", "token id %" PRId64 " at position %zu is not below the vocabulary size %d",
                            id, i, s->model->hp.n_vocab);
        if (tok_ids_push(out, (int32_t)id)) return srv_fail(err, 503, NULL, "out of memory");
    }
    return 0;
}

/* The prompts of a request as token lists (*n_out of them, malloc'd). */
static int prompts(srv_gen *g, tok_ids **out, int *n_out, bool *opens_think, srv_error *err) {
    srv_state *s = g->srv;
    const json_t *pr = g->p.prompt;
    *opens_think = false;
    if (g->p.kind == SRV_CHAT) {
        *out = calloc(1, sizeof **out);
        *n_out = 1;
        char *text = NULL;
        if (!*out) return srv_fail(err, 503, NULL, "out of memory");
        if (srv_chat_tokens(s, g->p.messages, g->p.tools, &(*out)[0], &text, err)) return -1;
        if (text) {
            /* R1 templates open the reasoning block themselves (PEERS.md §1c). */
            size_t n = strlen(text);
            while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
            *opens_think = n >= 7 && !memcmp(text + n - 7, "<think>", 7);
        }
        free(text);
        return 0;
    }
    int n = 1;
    if (json_is_array(pr) && !json_is_integer(json_array_get(pr, 0))) n = (int)json_array_size(pr);
    *out = calloc((size_t)n, sizeof **out);
    *n_out = n;
    if (!*out) return srv_fail(err, 503, NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        const json_t *one = json_is_array(pr) && n > 1 ? json_array_get(pr, (size_t)i) : pr;
        if (json_is_array(one) && json_array_size(one) == 1 && !json_is_integer(json_array_get(one, 0)))
            one = json_array_get(one, 0); /* ["text"] */
        if (json_is_string(one)) {
            ds_err e = {0};
            if (tok_encode_prompt(s->tok, json_string_value(one), json_string_length(one), &(*out)[i], &e))
                return srv_fail(err, 400, "prompt", "prompt %d: %s", i, e.msg);
        } else if (ids_from_json(s, one, &(*out)[i], err)) {
            return -1;
        }
        if ((*out)[i].n == 0) return srv_fail(err, 400, "prompt", "prompt %d is empty", i);
    }
    return 0;
}

int srv_gen_start(srv_state *s, srv_endpoint kind, json_t *body, int fd, srv_gen **out, srv_error *err) {
    *out = NULL;
    srv_gen *g = calloc(1, sizeof *g);
    if (!g) {
        json_decref(body);
        return srv_fail(err, 503, NULL, "out of memory");
    }
    atomic_fetch_add(&s->active, 1);
    g->srv = s;
    g->body = body;
    g->fd = fd;
    g->created = (int64_t)time(NULL);
    g->t_start = srv_now();
    g->deadline = g->t_start + s->cfg.timeout_s;
    static atomic_uint_fast64_t counter;
    snprintf(g->id, sizeof g->id, "%s-%" PRIx64 "%08" PRIx64, kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (uint64_t)g->created, (uint64_t)atomic_fetch_add(&counter, 1));
    tok_ids *ps = NULL;
    int n_ps = 0;
    bool opens_think = false;
    if (srv_parse_params(body, kind, &g->p, err)) goto fail;
    if (g->p.model && strcmp(g->p.model, s->model_id)) {
        srv_fail(err, 404, "model", "The model '%s' does not exist; this server serves '%s'", g->p.model, s->model_id);
        err->code = "model_not_found";
        goto fail;
    }
    if (kind == SRV_CHAT && !s->tpl) {
        srv_fail(err, 400, "messages", "chat completions are not available for this model: %s; use /v1/completions",
                 s->tpl_error);
        goto fail;
    }
    if (prompts(g, &ps, &n_ps, &opens_think, err)) goto fail;
    for (int i = 0; i < n_ps; i++) {
        int np = (int)ps[i].n;
        if (np >= s->ctx || (g->p.max_tokens > 0 && np + g->p.max_tokens > s->ctx)) {
            srv_fail(err, 400, kind == SRV_CHAT ? "messages" : "prompt",
                     "This model's maximum context length is %d tokens. However, you requested %" PRId64
                     " tokens (%d in the %s, %" PRId64 " in the completion). Please reduce the length.",
                     s->ctx, np + (g->p.max_tokens > 0 ? g->p.max_tokens : 1), np,
                     kind == SRV_CHAT ? "messages" : "prompt", g->p.max_tokens > 0 ? g->p.max_tokens : 1);
            err->code = "context_length_exceeded";
            goto fail;
        }
    }
    if (g->p.n * n_ps > SRV_MAX_N * 4) {
        srv_fail(err, 400, "n", "at most %d choices in all", SRV_MAX_N * 4);
        goto fail;
    }

    ds_sampler_params sp = sampling(s, &g->p);
    g->reqs = calloc((size_t)n_ps, sizeof *g->reqs);
    g->n_ch = n_ps * g->p.n;
    g->ch = calloc((size_t)g->n_ch, sizeof *g->ch);
    if (!g->reqs || !g->ch) {
        srv_fail(err, 503, NULL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n_ps; i++) {
        int np = (int)ps[i].n;
        int max_tokens = g->p.max_tokens > 0 ? (int)g->p.max_tokens : s->ctx - np;
        sched_req *r = sched_req_new(ps[i].ids, np, g->p.n, max_tokens, &sp, g->p.logprobs, g->p.ignore_eos);
        if (!r) {
            srv_fail(err, 503, NULL, "out of memory");
            goto fail;
        }
        g->reqs[g->n_reqs++] = r;
        g->prompt_tokens += np;
        for (int c = 0; c < g->p.n; c++) {
            gen_choice *gc = &g->ch[i * g->p.n + c];
            gc->req = r;
            gc->ci = c;
            gc->split = kind == SRV_CHAT && (s->think || opens_think);
            srv_reasoning_init(&gc->think, opens_think);
            gc->ts = tok_stream_new(s->tok, true);
            if (!gc->ts) {
                srv_fail(err, 503, NULL, "out of memory");
                goto fail;
            }
        }
    }
    for (int i = 0; i < g->n_reqs; i++) {
        ds_err e = {0};
        sched_submit_result rc = sched_submit(s->engine, g->reqs[i], &e);
        if (rc == SCHED_OK) continue;
        if (rc == SCHED_QUEUE_FULL) {
            srv_fail(err, 429, NULL, "the server is busy: %d requests are already waiting (--queue); retry later",
                     s->cfg.queue);
            atomic_fetch_add(&s->rejected_queue_full, 1);
        } else if (rc == SCHED_STOPPING) {
            srv_fail(err, 503, NULL, "the server is shutting down");
        } else {
            srv_fail(err, 400, NULL, "%s", e.msg);
        }
        goto fail;
    }
    for (int i = 0; i < n_ps; i++) tok_ids_free(&ps[i]);
    free(ps);
    *out = g;
    return 0;
fail:
    for (int i = 0; i < n_ps; i++) tok_ids_free(&ps[i]);
    free(ps);
    srv_gen_free(g);
    return -1;
}

void srv_gen_free(void *arg) {
    srv_gen *g = arg;
    if (!g) return;
    for (int i = 0; i < g->n_reqs; i++) {
        sched_req_cancel(g->srv->engine, g->reqs[i]);
        sched_req_release(g->reqs[i]);
    }
    for (int i = 0; i < g->n_ch; i++) {
        gen_choice *gc = &g->ch[i];
        tok_stream_free(gc->ts);
        srv_reasoning_free(&gc->think);
        free(gc->hold.p), free(gc->content.p), free(gc->reasoning.p);
        json_decref(gc->lp);
    }
    free(g->ch);
    free(g->reqs);
    free(g->out.p);
    json_decref(g->body);
    atomic_fetch_sub(&g->srv->active, 1);
    free(g);
}

/* ---- text: reasoning split, stop strings --------------------------------------------------- */

/* Sends settled text to content, or through the reasoning split. */
static void route_text(gen_choice *gc, const char *t, size_t n) {
    if (gc->split) srv_reasoning_feed(&gc->think, t, n, &gc->reasoning, &gc->content);
    else srv_buf_add(&gc->content, t, n);
}

/* The choice's text has ended: gives out what the reasoning split still holds. */
static void end_text(gen_choice *gc) {
    if (gc->split) srv_reasoning_finish(&gc->think, &gc->reasoning, &gc->content);
}

/* Adds decoded text; returns true when a stop string ended the choice. */
static bool add_text(srv_gen *g, gen_choice *gc, const char *t, size_t n) {
    if (g->p.n_stop == 0) {
        route_text(gc, t, n);
        return false;
    }
    srv_buf_add(&gc->hold, t, n);
    size_t best = SIZE_MAX;
    for (int i = 0; i < g->p.n_stop; i++) {
        const char *m = memmem(gc->hold.p, gc->hold.len, g->p.stop[i], strlen(g->p.stop[i]));
        if (m && (size_t)(m - gc->hold.p) < best) best = (size_t)(m - gc->hold.p);
    }
    if (best != SIZE_MAX) {
        route_text(gc, gc->hold.p, best);
        gc->hold.len = 0;
        return true;
    }
    /* Hold back the longest tail that could begin a stop string. */
    size_t keep = 0;
    for (int i = 0; i < g->p.n_stop; i++) {
        size_t sl = strlen(g->p.stop[i]);
        for (size_t k = sl - 1; k > keep; k--)
            if (gc->hold.len >= k && !memcmp(gc->hold.p + gc->hold.len - k, g->p.stop[i], k)) {
                keep = k;
                break;
            }
    }
    route_text(gc, gc->hold.p, gc->hold.len - keep);
    srv_buf_drop_front(&gc->hold, gc->hold.len - keep);
    return false;
}

static json_t *token_json(const srv_state *s, int32_t id, float lp) {
    size_t len = 0;
    const char *bytes = tok_token_bytes(s->tok, id, &len);
    if (!bytes) bytes = "", len = 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < len; i++) json_array_append_new(arr, json_integer((unsigned char)bytes[i]));
    return json_pack("{s:o, s:f, s:o}", "token", srv_jstr(bytes, len), "logprob", isfinite(lp) ? (double)lp : -9999.0,
                     "bytes", arr);
}

static void add_logprob(srv_gen *g, gen_choice *gc, const sched_token *t) {
    json_t *e = token_json(g->srv, t->id, t->logprob);
    json_t *top = json_array();
    for (int k = 0; k < t->n_top; k++) json_array_append_new(top, token_json(g->srv, t->top_ids[k], t->top_logprobs[k]));
    json_object_set_new(e, "top_logprobs", top);
    if (!gc->lp) gc->lp = json_array();
    json_array_append_new(gc->lp, e);
}

static const char *finish_name(sched_finish f) {
    switch (f) {
    case SCHED_FINISH_EOS:
    case SCHED_FINISH_STOPPED: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    case SCHED_FINISH_CANCELLED: return "abort";
    default: return "error";
    }
}

/* Takes the tokens the engine added since the last call. Returns true if anything changed. */
static bool take(srv_gen *g, gen_choice *gc) {
    if (gc->finish_reason) return false;
    sched_req *r = gc->req;
    sched_req_lock(r);
    sched_choice *c = &r->choices[gc->ci];
    int avail = c->n_tokens, from = gc->consumed;
    sched_finish fin = c->finish;
    sched_token *copy = avail > from ? malloc(sizeof *copy * (size_t)(avail - from)) : NULL;
    if (copy) memcpy(copy, c->tokens + from, sizeof *copy * (size_t)(avail - from));
    if (fin == SCHED_FINISH_ERROR && !g->failed) {
        g->failed = true;
        srv_fail(&g->err, 503, NULL, "generation failed: %s", r->error);
    }
    sched_req_unlock(r);
    if (avail > from && !copy) return false;
    bool changed = avail > from;
    if (changed) {
        double now = srv_now();
        if (from == 0) gc->t_first = now;
        gc->t_last = now;
        if (!g->first_token_seen) {
            g->first_token_seen = true;
            srv_metrics_observe(&g->srv->metrics, SRV_HIST_TTFT, now - g->t_start);
        }
    }
    for (int i = 0; i < avail - from && !gc->finish_reason; i++) {
        const char *text;
        size_t len;
        ds_err e = {0};
        gc->n_tokens++;
        if (g->p.logprobs >= 0) add_logprob(g, gc, &copy[i]);
        if (tok_stream_push(gc->ts, copy[i].id, &text, &len, &e)) continue;
        if (add_text(g, gc, text, len)) {
            end_text(gc);
            gc->finish_reason = "stop";
            sched_req_stop_choice(g->srv->engine, r, gc->ci);
        }
    }
    free(copy);
    gc->consumed = avail;
    if (!gc->finish_reason && fin != SCHED_RUNNING) {
        const char *text;
        size_t len;
        tok_stream_finish(gc->ts, &text, &len);
        bool stopped = add_text(g, gc, text, len);
        if (!stopped) {
            route_text(gc, gc->hold.p ? gc->hold.p : "", gc->hold.len);
            gc->hold.len = 0;
        }
        end_text(gc);
        gc->finish_reason = stopped ? "stop" : finish_name(fin);
        changed = true;
    }
    return changed;
}

typedef enum pump_result { PUMP_PROGRESS, PUMP_DONE, PUMP_GONE, PUMP_TIMEOUT } pump_result;

static bool all_finished(const srv_gen *g) {
    for (int i = 0; i < g->n_ch; i++)
        if (!g->ch[i].finish_reason) return false;
    return true;
}

/* Waits until some choice has news, the client leaves, or the deadline passes. */
static pump_result pump(srv_gen *g) {
    for (;;) {
        bool changed = false;
        for (int i = 0; i < g->n_ch; i++) changed |= take(g, &g->ch[i]);
        if (all_finished(g)) return PUMP_DONE;
        if (changed) return PUMP_PROGRESS;
        if (srv_client_gone(g->fd)) {
            atomic_fetch_add(&g->srv->cancelled_disconnect, 1);
            return PUMP_GONE;
        }
        if (srv_now() > g->deadline || atomic_load(&g->srv->stopping)) return PUMP_TIMEOUT;
        /* Wait on the first unfinished choice's request; others wake us within the timeout. */
        for (int i = 0; i < g->n_ch; i++) {
            gen_choice *gc = &g->ch[i];
            if (gc->finish_reason) continue;
            sched_req_lock(gc->req);
            uint64_t seen = gc->req->version;
            bool news = gc->req->choices[gc->ci].n_tokens > gc->consumed || gc->req->choices[gc->ci].finish;
            if (!news) sched_req_wait(gc->req, seen, 50);
            sched_req_unlock(gc->req);
            break;
        }
    }
}

/* The request has been answered in full: its latencies and outcomes go to /metrics. */
static void account_finished(srv_gen *g) {
    srv_metrics *m = &g->srv->metrics;
    atomic_fetch_add(&g->srv->requests_finished, 1);
    srv_metrics_observe(m, SRV_HIST_E2E, srv_now() - g->t_start);
    for (int i = 0; i < g->n_ch; i++) {
        const gen_choice *gc = &g->ch[i];
        srv_metrics_count_finish(m, gc->finish_reason);
        if (gc->n_tokens >= 2) srv_metrics_observe(m, SRV_HIST_TPOT, (gc->t_last - gc->t_first) / (gc->n_tokens - 1));
    }
}

static void cancel_all(srv_gen *g) {
    for (int i = 0; i < g->n_reqs; i++) sched_req_cancel(g->srv->engine, g->reqs[i]);
}

/* ---- responses ---------------------------------------------------------------------------- */

static json_t *usage_json(const srv_gen *g) {
    int completion = 0;
    for (int i = 0; i < g->n_ch; i++) completion += g->ch[i].n_tokens;
    int cached = 0;
    for (int i = 0; i < g->n_reqs; i++) {
        sched_req_lock(g->reqs[i]);
        cached += g->reqs[i]->choices[0].n_cached;
        sched_req_unlock(g->reqs[i]);
    }
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", g->prompt_tokens, "completion_tokens", completion,
                     "total_tokens", g->prompt_tokens + completion, "prompt_tokens_details", "cached_tokens", cached);
}

/* Completions' logprobs shape from chat-shaped entries. */
static json_t *completion_logprobs(json_t *entries, size_t *offset) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        json_array_append(tokens, json_object_get(e, "token"));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_t *top = json_object();
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(e, "top_logprobs"), k, t)
            json_object_set(top, json_string_value(json_object_get(t, "token")), json_object_get(t, "logprob"));
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)*offset));
        *offset += json_array_size(json_object_get(e, "bytes"));
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static json_t *choice_logprobs(const srv_gen *g, gen_choice *gc, size_t *offset) {
    if (g->p.logprobs < 0) return json_null();
    json_t *entries = gc->lp ? gc->lp : json_array();
    gc->lp = NULL;
    if (g->p.kind == SRV_CHAT) return json_pack("{s:o}", "content", entries);
    json_t *out = completion_logprobs(entries, offset);
    json_decref(entries);
    return out;
}

static json_t *finish_json(const gen_choice *gc) {
    return gc->finish_reason ? json_string(gc->finish_reason) : json_null();
}

/* A /v1/completions choice: the text so far, its logprobs and finish reason. */
static json_t *text_choice(const srv_gen *g, gen_choice *gc, int i, size_t *off) {
    return json_pack("{s:i, s:o, s:o, s:o}", "index", i, "text", srv_jstr(gc->content.p ? gc->content.p : "", gc->content.len),
                     "logprobs", choice_logprobs(g, gc, off), "finish_reason", finish_json(gc));
}

json_t *srv_gen_collect(srv_gen *g, srv_error *err) {
    for (;;) {
        pump_result pr = pump(g);
        if (pr == PUMP_DONE) break;
        if (pr == PUMP_GONE) {
            cancel_all(g);
            err->status = 0;
            return NULL;
        }
        if (pr == PUMP_TIMEOUT) {
            cancel_all(g);
            if (atomic_load(&g->srv->stopping)) srv_fail(err, 503, NULL, "the server is shutting down");
            else srv_fail(err, 408, NULL, "the request did not finish within %g s (--timeout)", g->srv->cfg.timeout_s);
            return NULL;
        }
    }
    if (g->failed) {
        *err = g->err;
        return NULL;
    }
    json_t *choices = json_array();
    for (int i = 0; i < g->n_ch; i++) {
        gen_choice *gc = &g->ch[i];
        size_t off = 0;
        json_t *c;
        if (g->p.kind == SRV_CHAT) {
            json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                                    srv_jstr(gc->content.p ? gc->content.p : "", gc->content.len));
            if (gc->split)
                json_object_set_new(msg, "reasoning_content",
                                    gc->reasoning.len ? srv_jstr(gc->reasoning.p, gc->reasoning.len) : json_null());
            c = json_pack("{s:i, s:o, s:o, s:o}", "index", i, "message", msg, "logprobs", choice_logprobs(g, gc, &off),
                          "finish_reason", finish_json(gc));
        } else {
            c = text_choice(g, gc, i, &off);
        }
        json_array_append_new(choices, c);
    }
    account_finished(g);
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", g->id, "object",
                     g->p.kind == SRV_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                     "model", g->srv->model_id, "choices", choices, "usage", usage_json(g));
}

/* ---- streaming ---------------------------------------------------------------------------- */

static void sse(srv_gen *g, json_t *obj) {
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s) return;
    srv_buf_add(&g->out, "data: ", 6);
    srv_buf_add(&g->out, s, strlen(s));
    srv_buf_add(&g->out, "\n\n", 2);
    free(s);
}

static json_t *chunk(const srv_gen *g, json_t *choices) {
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", g->id, "object",
                          g->p.kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)g->created, "model", g->srv->model_id, "choices", choices);
    if (g->p.include_usage) json_object_set_new(c, "usage", json_null());
    return c;
}

/* Turns what the choices have ready into SSE events. */
static void emit_events(srv_gen *g) {
    for (int i = 0; i < g->n_ch; i++) {
        gen_choice *gc = &g->ch[i];
        if (gc->final_sent) continue;
        bool has_text = gc->content.len || gc->reasoning.len || gc->lp;
        bool final = gc->finish_reason != NULL;
        if (g->p.kind == SRV_CHAT && !gc->role_sent) {
            gc->role_sent = true;
            json_t *d = json_pack("{s:s, s:s}", "role", "assistant", "content", "");
            sse(g, chunk(g, json_pack("[{s:i, s:o, s:n, s:n}]", "index", i, "delta", d, "logprobs", "finish_reason")));
        }
        if (!has_text && !final) continue;
        size_t off = 0;
        json_t *c;
        if (g->p.kind == SRV_CHAT) {
            json_t *d = json_object();
            if (gc->content.len) json_object_set_new(d, "content", srv_jstr(gc->content.p, gc->content.len));
            if (gc->reasoning.len)
                json_object_set_new(d, "reasoning_content", srv_jstr(gc->reasoning.p, gc->reasoning.len));
            c = json_pack("{s:i, s:o, s:o, s:o}", "index", i, "delta", d, "logprobs", choice_logprobs(g, gc, &off),
                          "finish_reason", finish_json(gc));
        } else {
            c = text_choice(g, gc, i, &off);
        }
        gc->content.len = gc->reasoning.len = 0;
        gc->final_sent = final;
        sse(g, chunk(g, json_pack("[o]", c)));
    }
}

ssize_t srv_gen_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_gen *g = cls;
    while (g->out_off == g->out.len) {
        g->out_off = g->out.len = 0;
        if (g->done_sent) return MHD_CONTENT_READER_END_OF_STREAM;
        pump_result pr = pump(g);
        if (pr == PUMP_GONE) {
            cancel_all(g);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (pr == PUMP_TIMEOUT) {
            cancel_all(g);
            srv_error e;
            if (atomic_load(&g->srv->stopping)) srv_fail(&e, 503, NULL, "the server is shutting down");
            else srv_fail(&e, 408, NULL, "the request did not finish within %g s (--timeout)", g->srv->cfg.timeout_s);
            sse(g, srv_error_json(&e));
            srv_buf_add(&g->out, "data: [DONE]\n\n", 14);
            g->done_sent = true;
            continue;
        }
        if (g->failed) {
            sse(g, srv_error_json(&g->err));
            srv_buf_add(&g->out, "data: [DONE]\n\n", 14);
            g->done_sent = true;
            continue;
        }
        emit_events(g);
        if (pr == PUMP_DONE) {
            if (g->p.include_usage) {
                json_t *c = chunk(g, json_array());
                json_object_set_new(c, "usage", usage_json(g));
                sse(g, c);
            }
            srv_buf_add(&g->out, "data: [DONE]\n\n", 14);
            g->done_sent = true;
            account_finished(g);
        }
    }
    size_t n = g->out.len - g->out_off < max ? g->out.len - g->out_off : max;
    memcpy(buf, g->out.p + g->out_off, n);
    g->out_off += n;
    return (ssize_t)n;
}
