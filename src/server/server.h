/* server: an OpenAI-compatible HTTP/1.1 API over the scheduler (libmicrohttpd, one thread per
 * connection; one engine thread owns the model and the KV cache).
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
 * GET /metrics, POST /tokenize, POST /detokenize. /health and /metrics are public; the rest
 * need `Authorization: Bearer KEY` when a key is set. Errors use OpenAI's shape
 * {"error": {"message", "type", "param", "code"}}; nothing a client sends gives a 5xx.
 *
 * Lifecycle: srv_run listens first (GET /health answers 503 while the model loads), loads the
 * model, tokenizer and chat template, serves until SIGINT or SIGTERM, then drains: /health
 * and new requests get 503, in-flight requests get up to drain_timeout_s to finish. */
#ifndef DS_SERVER_SERVER_H
#define DS_SERVER_SERVER_H

#include <stdint.h>

typedef struct srv_config {
    const char *model_path;
    const char *alias;        /* model id; NULL = basename of model_path without extension */
    const char *host;         /* default 127.0.0.1 */
    int port;                 /* default 8080 */
    int parallel;             /* most sequences running at once */
    int ctx;                  /* most positions per sequence; 0 = the model's, at most 4096 */
    int queue;                /* most requests waiting beyond the running ones */
    const char *api_key;      /* NULL = no authentication */
    double timeout_s;         /* per request, from receipt to the last byte of the answer */
    double read_timeout_s;    /* to receive a whole request (headers and body) */
    uint64_t max_body;        /* bytes of request body */
    double drain_timeout_s;   /* on SIGINT/SIGTERM */
    int n_threads;            /* forward-pass threads; 0 = all cores */
    int block_size;           /* KV block positions; 0 = 16 */
    int step_tokens;          /* engine step budget; 0 = 256 */
} srv_config;

/* Serves until SIGINT or SIGTERM (blocked in every thread it starts; the caller must not
 * have started other threads). Returns the process exit status: 0 after a clean drain, 1 when
 * the model cannot be loaded or the address cannot be bound. Messages go to stderr. */
int srv_run(const srv_config *cfg);

#endif
