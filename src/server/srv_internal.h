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

#include <stdatomic.h>

#include "engine/scheduler.h"
#include "model/model.h"
#include "server/server.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

typedef enum srv_phase { SRV_LOADING = 0, SRV_READY, SRV_DRAINING } srv_phase;

typedef struct srv_state {
    srv_config cfg;
    char *model_id;             /* --alias or the model file's basename without extension */
    int ctx;                    /* positions per sequence */
    ds_model *model;
    tok_tokenizer *tok;
    tpl_template *tpl;          /* NULL when chat is unavailable; tpl_error says why */
    char tpl_error[512];
    bool think;                 /* the vocabulary has <think> / </think>: split reasoning_content */
    sched_engine *engine;
    atomic_int phase;           /* srv_phase */
    atomic_bool stopping;       /* the drain is over: in-flight waits give up */
    atomic_int active;          /* generation requests in flight */
    /* counters for /metrics */
    atomic_uint_fast64_t http_2xx, http_4xx, http_5xx, rejected_queue_full, cancelled_disconnect,
        requests_finished;
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
