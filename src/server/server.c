/* The HTTP side of the server: libmicrohttpd with one thread per connection (handlers may
 * block while the engine generates), routing, authentication, body and time limits, the small
 * endpoints, and the lifecycle (listen, load, serve, drain).
 *
 * Time to receive a request (--read-timeout) is enforced by a watchdog thread, because an
 * idle timeout never fires on a client that sends one byte per second: each connection records
 * when it became ready for its next request, and a connection still reading past the limit
 * gets a 408 and is shut down (silently when not a byte of the request line had come). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/chat.h"
#include "server/srv_internal.h"

/* ---- helpers ------------------------------------------------------------------------------ */

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int srv_buf_add(srv_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

void srv_buf_drop_front(srv_buf *b, size_t n) {
    if (n == 0) return;
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = 0;
}

json_t *srv_jstr(const char *text, size_t len) {
    json_t *s = json_stringn(text, len);
    if (s) return s;
    /* Replace each byte that does not start a valid UTF-8 sequence with U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (!out) return json_string("");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= len && c != 0xc0 && c != 0xc1 && c < 0xf5;
        for (size_t k = 1; ok && k < n; k++) ok = ((unsigned char)text[i + k] & 0xc0) == 0x80;
        if (ok && n > 1) ok = json_stringn(text + i, n) != NULL; /* overlongs, surrogates */
        if (ok) {
            memcpy(out + o, text + i, n);
            o += n, i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    s = json_stringn(out, o);
    free(out);
    return s ? s : json_string("");
}

json_t *srv_error_json(const srv_error *err) {
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", err->message, "type", err->type ? err->type : "error",
                     "param", err->param ? json_string(err->param) : json_null(), "code",
                     err->code ? json_string(err->code) : json_null());
}

bool srv_client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

int srv_chat_tokens(srv_state *s, const json_t *messages, const json_t *tools, tok_ids *out, char **prompt_text,
                    srv_error *err) {
    ds_err e = {0};
    if (ds_chat_encode(s->tok, s->tpl, messages, tools, true, NULL, out, prompt_text, &e))
        return srv_fail(err, 400, "messages", "%s", e.msg);
    if (out->n == 0) {
        free(*prompt_text);
        *prompt_text = NULL;
        return srv_fail(err, 400, "messages", "the messages render to an empty prompt");
    }
    return 0;
}

/* ---- connections and the read-timeout watchdog -------------------------------------------- */

typedef struct srv_conn {
    struct srv_conn *prev, *next;
    int fd;
    bool reading;       /* between requests or receiving one (not being answered) */
    bool saw_request;   /* the request line of the current request has arrived */
    bool timed_out;
    double since;       /* when the connection became ready for its current request */
} srv_conn;

/* Per request (libmicrohttpd's con_cls). */
typedef struct srv_rq {
    srv_conn *conn;
    int route;
    bool started, rejected;
    char *body;
    size_t len, cap;
} srv_rq;

static srv_state g_srv;  /* the server's configuration and state (STYLE.md allows this one) */
static pthread_mutex_t g_conn_mu = PTHREAD_MUTEX_INITIALIZER;
static srv_conn *g_conns;
static atomic_bool g_watchdog_stop;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_conn *sc = calloc(1, sizeof *sc);
        if (!sc) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        sc->fd = ci ? ci->connect_fd : -1;
        sc->reading = true;
        sc->since = srv_now();
        pthread_mutex_lock(&g_conn_mu);
        sc->next = g_conns;
        if (g_conns) g_conns->prev = sc;
        g_conns = sc;
        pthread_mutex_unlock(&g_conn_mu);
        *socket_context = sc;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        srv_conn *sc = *socket_context;
        pthread_mutex_lock(&g_conn_mu);
        if (sc->prev) sc->prev->next = sc->next;
        else g_conns = sc->next;
        if (sc->next) sc->next->prev = sc->prev;
        pthread_mutex_unlock(&g_conn_mu);
        free(sc);
        *socket_context = NULL;
    }
}

static srv_conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    srv_rq *rq = calloc(1, sizeof *rq);
    if (!rq) return NULL;
    rq->conn = conn_of(c);
    if (rq->conn) {
        pthread_mutex_lock(&g_conn_mu);
        rq->conn->saw_request = true;
        pthread_mutex_unlock(&g_conn_mu);
    }
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    srv_rq *rq = *con_cls;
    srv_conn *sc = conn_of(c);
    if (sc) {
        pthread_mutex_lock(&g_conn_mu);
        sc->reading = true;
        sc->saw_request = false;
        sc->since = srv_now();
        pthread_mutex_unlock(&g_conn_mu);
    }
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

/* Writes a whole error response straight to the socket. For answers while a request is still
 * being received, where libmicrohttpd accepts no response; the connection is closed after. */
static void raw_error(int fd, const srv_error *err) {
    json_t *j = srv_error_json(err);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return;
    const char *reason = err->status == 408 ? "Request Timeout" : err->status == 413 ? "Content Too Large" : "Bad Request";
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      err->status, reason, strlen(body));
    ssize_t w = send(fd, head, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == hl) w = send(fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    free(body);
}

static void *watchdog(void *arg) {
    while (!atomic_load(&g_watchdog_stop)) {
        usleep(100 * 1000);
        double now = srv_now(), limit = g_srv.cfg.read_timeout_s;
        pthread_mutex_lock(&g_conn_mu);
        for (srv_conn *sc = g_conns; sc; sc = sc->next) {
            if (!sc->reading || sc->timed_out || sc->fd < 0 || now - sc->since <= limit) continue;
            sc->timed_out = true;
            if (sc->saw_request) {
                srv_error err;
                srv_fail(&err, 408, NULL, "the request was not received within %g s (--read-timeout)", limit);
                raw_error(sc->fd, &err);
                srv_metrics_count_status(&g_srv.metrics, 408);
            }
            shutdown(sc->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&g_conn_mu);
    }
    return NULL;
}

/* ---- responses ---------------------------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type, char *text, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    srv_metrics_count_status(&g_srv.metrics, status);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        s = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        if (!s) return MHD_NO;
        status = 503;
    }
    return send_text(c, status, "application/json", s, strlen(s));
}

static enum MHD_Result send_error(struct MHD_Connection *c, const srv_error *err) {
    if (err->status >= 500) fprintf(stderr, "dsinfer serve: %d %s\n", err->status, err->message);
    return send_json(c, err->status, srv_error_json(err));
}

/* ---- small endpoints ---------------------------------------------------------------------- */

static enum MHD_Result do_health(struct MHD_Connection *c) {
    int phase = atomic_load(&g_srv.phase);
    const char *st = phase == SRV_READY ? "ok" : phase == SRV_LOADING ? "loading" : "draining";
    return send_json(c, phase == SRV_READY ? 200 : 503, json_pack("{s:s}", "status", st));
}

static enum MHD_Result do_models(struct MHD_Connection *c) {
    return send_json(c, 200, json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:i}]}", "object", "list", "data", "id",
                                       g_srv.model_id, "object", "model", "created", (json_int_t)time(NULL),
                                       "owned_by", "dsinfer", "max_model_len", g_srv.ctx));
}

static enum MHD_Result do_metrics(struct MHD_Connection *c) {
    size_t len = 0;
    char *text = srv_metrics_text(&g_srv, &len);
    return text ? send_text(c, 200, "text/plain; version=0.0.4", text, len) : MHD_NO;
}

/* POST /tokenize {"prompt": "..." | "content": "...", "add_special_tokens": true}
 * or {"messages": [...]} (rendered by the chat template). */
static enum MHD_Result do_tokenize(struct MHD_Connection *c, json_t *body) {
    srv_error err;
    tok_ids ids = {0};
    const json_t *text = json_object_get(body, "prompt");
    if (!text) text = json_object_get(body, "content");
    const json_t *msgs = json_object_get(body, "messages");
    const json_t *add = json_object_get(body, "add_special_tokens");
    enum MHD_Result rc;
    if (add && !json_is_boolean(add)) {
        srv_fail(&err, 400, "add_special_tokens", "'add_special_tokens' must be a boolean");
        goto fail;
    }
    if (json_is_string(text)) {
        ds_err e = {0};
        int r = add && json_is_false(add)
                    ? tok_encode(g_srv.tok, json_string_value(text), json_string_length(text), TOK_ADDED_ALL, false, &ids, &e)
                    : tok_encode_prompt(g_srv.tok, json_string_value(text), json_string_length(text), &ids, &e);
        if (r) {
            srv_fail(&err, 400, "prompt", "%s", e.msg);
            goto fail;
        }
    } else if (msgs) {
        srv_params p;
        char *t = NULL;
        if (srv_parse_params(body, SRV_CHAT, &p, &err)) goto fail;
        if (!g_srv.tpl) {
            srv_fail(&err, 400, "messages", "chat templates are not available for this model: %s", g_srv.tpl_error);
            goto fail;
        }
        if (srv_chat_tokens(&g_srv, p.messages, p.tools, &ids, &t, &err)) goto fail;
        free(t);
    } else {
        srv_fail(&err, 400, "prompt", "'prompt' (a string) or 'messages' is required");
        goto fail;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_integer(ids.ids[i]));
    rc = send_json(c, 200, json_pack("{s:o, s:i, s:i}", "tokens", arr, "count", (int)ids.n, "max_model_len", g_srv.ctx));
    tok_ids_free(&ids);
    json_decref(body);
    return rc;
fail:
    tok_ids_free(&ids);
    json_decref(body);
    return send_error(c, &err);
}

/* POST /detokenize {"tokens": [ids]} */
static enum MHD_Result do_detokenize(struct MHD_Connection *c, json_t *body) {
    srv_error err;
    const json_t *toks = json_object_get(body, "tokens");
    if (!json_is_array(toks)) {
        json_decref(body);
        srv_fail(&err, 400, "tokens", "'tokens' must be a list of token ids");
        return send_error(c, &err);
    }
    size_t n = json_array_size(toks), i;
    int32_t *ids = malloc(sizeof *ids * (n ? n : 1));
    const json_t *v;
    json_array_foreach(toks, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= tok_n_vocab(g_srv.tok)) {
            free(ids);
            json_decref(body);
            srv_fail(&err, 400, "tokens", "tokens[%zu] is not a token id below %d", i, tok_n_vocab(g_srv.tok));
            return send_error(c, &err);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    char *text = NULL;
    size_t len = 0;
    ds_err e = {0};
    int r = tok_decode(g_srv.tok, ids, n, false, &text, &len, &e);
    free(ids);
    json_decref(body);
    if (r) {
        srv_fail(&err, 400, "tokens", "%s", e.msg);
        return send_error(c, &err);
    }
    json_t *s = srv_jstr(text, len);
    free(text);
    return send_json(c, 200, json_pack("{s:O, s:o}", "prompt", s, "content", s));
}

static enum MHD_Result do_generate(struct MHD_Connection *c, srv_rq *rq, srv_endpoint kind, json_t *body) {
    srv_error err = {0};
    srv_gen *g;
    int fd = rq->conn ? rq->conn->fd : -1;
    if (srv_gen_start(&g_srv, kind, body, fd, &g, &err)) return send_error(c, &err);
    if (!srv_gen_streaming(g)) {
        json_t *res = srv_gen_collect(g, &err);
        srv_gen_free(g);
        if (!res && err.status == 0) return MHD_NO; /* the client left */
        return res ? send_json(c, 200, res) : send_error(c, &err);
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, srv_gen_read, g, srv_gen_free);
    if (!r) {
        srv_gen_free(g);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    srv_metrics_count_status(&g_srv.metrics, 200);
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- routing ------------------------------------------------------------------------------ */

enum { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE };

typedef struct route {
    const char *path, *method;
    int id;
    bool is_public;
} route;

static const route k_routes[] = {
    {"/health", "GET", R_HEALTH, true},
    {"/metrics", "GET", R_METRICS, true},
    {"/v1/models", "GET", R_MODELS, false},
    {"/v1/completions", "POST", R_COMPLETIONS, false},
    {"/v1/chat/completions", "POST", R_CHAT, false},
    {"/tokenize", "POST", R_TOKENIZE, false},
    {"/detokenize", "POST", R_DETOKENIZE, false},
};

/* Constant-time comparison of the bearer token with the key. */
static bool authorized(struct MHD_Connection *c) {
    if (!g_srv.cfg.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t a = strlen(h), b = strlen(g_srv.cfg.api_key);
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < a; i++) diff |= (unsigned)(h[i] ^ g_srv.cfg.api_key[i % (b ? b : 1)]);
    return diff == 0;
}

/* First call of a request: route, method, key, declared size. 0 to go on, else answered. */
static int check_request(struct MHD_Connection *c, srv_rq *rq, const char *url, const char *method, srv_error *err) {
    const route *r = NULL;
    bool path_known = false;
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++) {
        if (strcmp(url, k_routes[i].path)) continue;
        path_known = true;
        if (!strcmp(method, k_routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(k_routes[i].method, "GET")))
            r = &k_routes[i];
    }
    if (!r && path_known) return srv_fail(err, 405, NULL, "method %s is not allowed on %s", method, url);
    if (!r) return srv_fail(err, 404, NULL, "no route for %s %s", method, url);
    rq->route = r->id;
    if (!r->is_public && !authorized(c)) return srv_fail(err, 401, NULL, "a valid API key is required (Authorization: Bearer KEY)");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > g_srv.cfg.max_body)
            return srv_fail(err, 413, NULL, "the request body is larger than %" PRIu64 " bytes (--max-body)", g_srv.cfg.max_body);
    }
    return 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    srv_rq *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        rq->conn = conn_of(c);
        *con_cls = rq;
    }
    srv_error err;
    if (!rq->started) {
        rq->started = true;
        if (check_request(c, rq, url, method, &err)) {
            rq->rejected = true;
            return send_error(c, &err);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->rejected) return MHD_YES;
        bool late = rq->conn && srv_now() - rq->conn->since > g_srv.cfg.read_timeout_s;
        if (late || rq->len + n > g_srv.cfg.max_body) {
            /* libmicrohttpd takes no response in the middle of a body: answer on the socket. */
            if (late) srv_fail(&err, 408, NULL, "the request was not received within %g s (--read-timeout)", g_srv.cfg.read_timeout_s);
            else srv_fail(&err, 413, NULL, "the request body is larger than %" PRIu64 " bytes (--max-body)", g_srv.cfg.max_body);
            if (rq->conn) {
                pthread_mutex_lock(&g_conn_mu);
                if (!rq->conn->timed_out) raw_error(rq->conn->fd, &err);
                rq->conn->timed_out = true;
                pthread_mutex_unlock(&g_conn_mu);
            }
            srv_metrics_count_status(&g_srv.metrics, err.status);
            return MHD_NO;
        }
        if (rq->len + n > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n) cap *= 2;
            char *p = realloc(rq->body, cap);
            if (!p) return MHD_NO;
            rq->body = p, rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        return MHD_YES;
    }
    if (rq->rejected) return MHD_YES;
    if (rq->conn) {
        pthread_mutex_lock(&g_conn_mu);
        bool late = rq->conn->timed_out;
        rq->conn->reading = false;
        pthread_mutex_unlock(&g_conn_mu);
        if (late) return MHD_NO;
    }

    switch (rq->route) {
    case R_HEALTH: return do_health(c);
    case R_METRICS: return do_metrics(c);
    default: break;
    }
    int phase = atomic_load(&g_srv.phase);
    if (phase != SRV_READY) {
        srv_fail(&err, 503, NULL, phase == SRV_LOADING ? "the model is loading" : "the server is shutting down");
        return send_error(c, &err);
    }
    if (rq->route == R_MODELS) return do_models(c);
    json_t *body;
    if (srv_parse_body(rq->body ? rq->body : "", rq->len, &body, &err)) return send_error(c, &err);
    switch (rq->route) {
    case R_COMPLETIONS: return do_generate(c, rq, SRV_COMPLETIONS, body);
    case R_CHAT: return do_generate(c, rq, SRV_CHAT, body);
    case R_TOKENIZE: return do_tokenize(c, body);
    default: return do_detokenize(c, body);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static char *default_model_id(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *base = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/') base = path + i + 1;
    size_t len = (size_t)(path + n - base);
    const char *dot = NULL;
    for (const char *p = base; p < base + len; p++)
        if (*p == '.') dot = p;
    if (dot && dot > base) len = (size_t)(dot - base);
    return strndup(base, len);
}

static int load(srv_state *s) {
    ds_err err = {0};
    if (ds_model_load(s->cfg.model_path, &s->model, &err)) {
        fprintf(stderr, "dsinfer serve: %s\n", err.msg);
        return -1;
    }
    if (tok_load(s->cfg.model_path, &s->tok, &err)) {
        fprintf(stderr, "dsinfer serve: the model's tokenizer cannot be loaded: %s\n", err.msg);
        return -1;
    }
    if (ds_chat_template(s->tok, &s->tpl, &err)) snprintf(s->tpl_error, sizeof s->tpl_error, "%.400s", err.msg);
    if (!s->tpl) fprintf(stderr, "dsinfer serve: chat completions disabled: %s\n", s->tpl_error);
    const char *tpl_src = tok_chat_template(s->tok);
    s->think = (tok_token_id(s->tok, "<think>") >= 0 && tok_token_id(s->tok, "</think>") >= 0) ||
               (s->tpl && tpl_src && strstr(tpl_src, "</think>"));
    int n_ctx_train = s->model->hp.n_ctx_train > 0 ? s->model->hp.n_ctx_train : 4096;
    s->ctx = s->cfg.ctx ? s->cfg.ctx : (n_ctx_train < 4096 ? n_ctx_train : 4096);
    sched_config sc = {.parallel = s->cfg.parallel, .ctx = s->ctx, .queue = s->cfg.queue,
                       .block_size = s->cfg.block_size ? s->cfg.block_size : 16,
                       .step_tokens = s->cfg.step_tokens ? s->cfg.step_tokens : 256, .n_threads = s->cfg.n_threads};
    if (sched_create(s->model, &sc, &s->engine, &err)) {
        fprintf(stderr, "dsinfer serve: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static struct MHD_Daemon *listen_on(const srv_config *cfg) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "dsinfer serve: cannot resolve --host %s: %s\n", cfg->host, gai_strerror(rc));
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) fprintf(stderr, "dsinfer serve: cannot listen on %s:%d: %s\n", cfg->host, cfg->port, strerror(errno));
    return d;
}

int srv_run(const srv_config *cfg) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_state *s = &g_srv;
    s->cfg = *cfg;
    s->model_id = cfg->alias ? strdup(cfg->alias) : default_model_id(cfg->model_path);
    srv_metrics_init(&s->metrics);
    atomic_store(&s->phase, SRV_LOADING);
    struct MHD_Daemon *d = listen_on(cfg);
    if (!d) return 1;
    pthread_t wd;
    bool wd_started = pthread_create(&wd, NULL, watchdog, NULL) == 0;
    int status = 0;
    if (load(s)) {
        status = 1;
    } else {
        atomic_store(&s->phase, SRV_READY);
        fprintf(stderr, "dsinfer serve: model '%s' ready on http://%s:%d (parallel %d, ctx %d, queue %d)\n",
                s->model_id, cfg->host, cfg->port, cfg->parallel, s->ctx, cfg->queue);
        int sig;
        while ((sig = sigwaitinfo(&sigs, NULL)) < 0 && errno == EINTR) {}
        fprintf(stderr, "dsinfer serve: %s: draining (up to %g s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                cfg->drain_timeout_s);
        atomic_store(&s->phase, SRV_DRAINING);
        double until = srv_now() + cfg->drain_timeout_s;
        while (atomic_load(&s->active) > 0 && srv_now() < until) usleep(20 * 1000);
    }
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(d);
    atomic_store(&g_watchdog_stop, true);
    if (wd_started) pthread_join(wd, NULL);
    sched_destroy(s->engine);
    tpl_free(s->tpl);
    tok_free(s->tok);
    ds_model_free(s->model);
    free(s->model_id);
    srv_metrics_destroy(&s->metrics);
    if (status == 0) fprintf(stderr, "dsinfer serve: stopped\n");
    return status;
}
