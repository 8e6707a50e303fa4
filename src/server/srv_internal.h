/* Internals shared by the server's files (and the request fuzzer): the validated form of an
 * OpenAI request body, error values with their HTTP status, and the server state. */
#ifndef DS_SERVER_SRV_INTERNAL_H
#define DS_SERVER_SRV_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SRV_MAX_STOP 16
#define SRV_MAX_N 16

/* An error for the client: HTTP status, OpenAI error type, offending parameter. */
typedef struct srv_error {
    int status;             /* 400, 401, 404, 408, 413, 429, 503 */
    const char *type;       /* "invalid_request_error", ... */
    const char *param;      /* the field at fault, or NULL */
    const char *code;       /* OpenAI-style code, or NULL */
    char message[512];
} srv_error;

/* Fills err and returns -1. */
int srv_fail(srv_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum srv_endpoint { SRV_COMPLETIONS, SRV_CHAT } srv_endpoint;

/* A validated /v1/completions or /v1/chat/completions body. Strings and JSON values are
 * borrowed from the body, which must outlive this. Sampling fields hold NAN / -1 when absent
 * so that the model's defaults apply. */
typedef struct srv_params {
    srv_endpoint kind;
    const char *model;              /* NULL when absent */
    const json_t *prompt;           /* completions: string, [string], [int], [[int]] */
    const json_t *messages;         /* chat: array of message objects */
    const json_t *tools;            /* chat: passed to the template, or NULL */
    int64_t max_tokens;             /* -1 = absent */
    double temperature, top_p, min_p, presence, frequency, repetition; /* NAN = absent */
    int64_t top_k;                  /* -2 = absent; -1 and 0 = off */
    bool has_seed;
    uint64_t seed;
    const char *stop[SRV_MAX_STOP];
    int n_stop;
    int n;
    bool stream, include_usage;
    int logprobs;                   /* -1 = none, else how many top alternatives */
    bool ignore_eos;
    bool echo;
} srv_params;

/* Validates a parsed body for `kind`: types, ranges, required fields. Unknown fields are
 * ignored. Returns 0, or -1 with a 400 in err naming the field. */
int srv_parse_params(const json_t *body, srv_endpoint kind, srv_params *out, srv_error *err);

/* Parses `len` bytes as a JSON object (400 on malformed JSON, invalid UTF-8 or a non-object).
 * *out is a new reference. */
int srv_parse_body(const char *body, size_t len, json_t **out, srv_error *err);

/* ---- server state ------------------------------------------------------------------------- */

#include <pthread.h>
#include <stdatomic.h>

#include "engine/scheduler.h"
#include "model/model.h"
#include "server/server.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

typedef enum srv_phase { SRV_LOADING = 0, SRV_READY, SRV_DRAINING } srv_phase;

/* ---- byte buffers (server.c) -------------------------------------------------------------- */

/* A growable byte buffer, kept NUL-terminated. */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
} srv_buf;

/* Appends n bytes; -1 on no memory (the buffer is unchanged). */
int srv_buf_add(srv_buf *b, const char *s, size_t n);
/* Removes the first n bytes (n <= b->len). */
void srv_buf_drop_front(srv_buf *b, size_t n);

/* ---- reasoning split (reasoning.c) -------------------------------------------------------- */

/* Splits a chat answer into reasoning_content and content the way R1-style models write it:
 * "<think>" (written by the model, or already by the template at the end of the prompt), the
 * reasoning, "</think>", the answer. Text arrives in arbitrary pieces, so a tag may be split
 * across tokens; text that may still belong to a tag is held back. Like llama.cpp's deepseek
 * reasoning format, whitespace around the reasoning and before the answer is dropped (R1
 * writes "<think>\n...\n</think>\n\n"); an answer without a leading "<think>" (and a prompt
 * that did not open one) is passed through untouched as content. */
typedef struct srv_reasoning {
    int state;          /* where in <think> reasoning </think> answer the text has reached */
    bool said;          /* some reasoning text has been given out */
    srv_buf hold;       /* text not yet given out */
} srv_reasoning;

/* opened: the prompt ends inside an open <think>. */
void srv_reasoning_init(srv_reasoning *r, bool opened);
/* Feeds n bytes of generated text; appends what is settled to `reasoning` and `content`. */
void srv_reasoning_feed(srv_reasoning *r, const char *t, size_t n, srv_buf *reasoning, srv_buf *content);
/* The text has ended: gives out whatever is still held. */
void srv_reasoning_finish(srv_reasoning *r, srv_buf *reasoning, srv_buf *content);
void srv_reasoning_free(srv_reasoning *r);

/* ---- metrics (metrics.c) ------------------------------------------------------------------ */

/* Latency histograms (seconds), as vLLM and SGLang name them. */
typedef enum srv_hist {
    SRV_HIST_TTFT,      /* request received → its first generated token */
    SRV_HIST_E2E,       /* request received → answered in full */
    SRV_HIST_TPOT,      /* per choice of ≥ 2 tokens: (last token − first token) / (tokens − 1) */
    SRV_N_HIST
} srv_hist;

#define SRV_HIST_MAX_BOUNDS 24
#define SRV_N_FINISH 4  /* stop, length, abort, error */

typedef struct srv_metrics {
    pthread_mutex_t mu;                                     /* guards the histograms */
    uint64_t buckets[SRV_N_HIST][SRV_HIST_MAX_BOUNDS + 1];  /* per bucket (not cumulative); last: +Inf */
    double sum[SRV_N_HIST];
    uint64_t count[SRV_N_HIST];
    atomic_uint_fast64_t finished[SRV_N_FINISH];            /* choices answered in full, by finish_reason */
    atomic_uint_fast64_t http_status[600];                  /* HTTP responses by status code */
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_observe(srv_metrics *m, srv_hist h, double seconds);
void srv_metrics_count_status(srv_metrics *m, int status);
/* Counts a choice answered in full with this finish_reason ("stop", "length", ...). */
void srv_metrics_count_finish(srv_metrics *m, const char *finish_reason);

typedef struct srv_state {
    srv_config cfg;
    char *model_id;             /* --alias or the model file's basename without extension */
    int ctx;                    /* positions per sequence */
    ds_model *model;
    tok_tokenizer *tok;
    tpl_template *tpl;          /* NULL when chat is unavailable; tpl_error says why */
    char tpl_error[512];
    bool think;                 /* an R1-style model (<think> tokens, or a template that knows
                                   </think>): chat answers get reasoning_content */
    sched_engine *engine;
    atomic_int phase;           /* srv_phase */
    atomic_bool stopping;       /* the drain is over: in-flight waits give up */
    atomic_int active;          /* generation requests in flight */
    /* counters for /metrics */
    atomic_uint_fast64_t rejected_queue_full, cancelled_disconnect, requests_finished;
    srv_metrics metrics;
} srv_state;

/* ---- generation (generate.c) ------------------------------------------------------------- */

typedef struct srv_gen srv_gen;

/* Validates `body` (reference stolen), tokenizes the prompts and queues them. `fd` is the
 * client's socket, watched for hang-ups. On failure err holds the answer (400/404/429/503). */
int srv_gen_start(srv_state *s, srv_endpoint kind, json_t *body, int fd, srv_gen **out, srv_error *err);

/* Whether the client asked for a stream. */
bool srv_gen_streaming(const srv_gen *g);

/* Non-streaming: waits for every choice and returns the response object (new reference);
 * NULL with err set when the request timed out (408) or failed, and NULL with err->status 0
 * when the client went away. */
json_t *srv_gen_collect(srv_gen *g, srv_error *err);

/* Streaming: a libmicrohttpd content reader producing SSE events (cls = the srv_gen). */
ssize_t srv_gen_read(void *cls, uint64_t pos, char *buf, size_t max);

/* Cancels what is still running and frees everything (also the reader's free callback). */
void srv_gen_free(void *g);

/* The Prometheus text exposition of /metrics (malloc'd, *len bytes); NULL on no memory. */
char *srv_metrics_text(srv_state *s, size_t *len);

/* ---- helpers (server.c) ------------------------------------------------------------------- */

double srv_now(void);
/* A JSON string of `len` bytes of text, invalid UTF-8 replaced by U+FFFD. */
json_t *srv_jstr(const char *text, size_t len);
/* The error object {"error": {...}} for err (new reference). */
json_t *srv_error_json(const srv_error *err);
/* Whether the peer of `fd` has closed its side of the connection. */
bool srv_client_gone(int fd);
/* Tokens of a chat request: messages rendered by the template and encoded with caller content
 * kept ordinary text. *prompt_text (malloc'd) receives the rendered text. */
int srv_chat_tokens(srv_state *s, const json_t *messages, const json_t *tools, tok_ids *out,
                    char **prompt_text, srv_error *err);

#endif
