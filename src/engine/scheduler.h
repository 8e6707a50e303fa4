/* Scheduler: the engine thread behind the server. It owns the model's forward context, the
 * paged KV cache and the prefix cache; other threads only submit requests and read what the
 * engine writes into them.
 *
 * Continuous batching: each engine step builds one ds_batch from the next token of every
 * decoding sequence plus prefill chunks of sequences still reading their prompt, within a
 * per-step token budget, so running streams keep flowing while a long prompt is read. New
 * requests join between steps. A request with n choices runs as n sequences (choice i samples
 * with seed + i); each sequence's prompt blocks are looked up in the prefix cache first.
 *
 * Admission by KV capacity: a sequence starts only when the blocks for its whole budget
 * (prompt + max_tokens) can be had (free or evictable), so a running sequence never waits for
 * memory; the scheduler rejects up front a request that could never fit (sched_submit).
 *
 * Threads: a sched_req is shared by its submitter and the engine and is reference counted.
 * The submitter reads results under sched_req_lock / sched_req_unlock, waiting with
 * sched_req_wait; it cancels with sched_req_cancel (the engine frees the blocks within one
 * step). */
#ifndef DS_ENGINE_SCHEDULER_H
#define DS_ENGINE_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/sampler.h"
#include "model/model.h"

#define SCHED_MAX_TOP_LOGPROBS 20

typedef struct sched_config {
    int parallel;      /* most sequences running at once */
    int ctx;           /* most positions per sequence */
    int queue;         /* most requests waiting beyond the running ones */
    int block_size;    /* positions per KV block */
    int step_tokens;   /* token budget of one engine step (prefill chunks + decode tokens) */
    int kv_blocks;     /* KV pool size; 0 = enough for parallel × ctx */
    int n_threads;     /* forward-pass threads */
} sched_config;

/* One generated token as the engine reports it. Logprobs are of the model's distribution
 * (log-softmax of the raw logits), filled only when the request asked for them. */
typedef struct sched_token {
    int32_t id;
    float logprob;
    int n_top;
    int32_t top_ids[SCHED_MAX_TOP_LOGPROBS];
    float top_logprobs[SCHED_MAX_TOP_LOGPROBS];
} sched_token;

typedef enum sched_finish {
    SCHED_RUNNING = 0,
    SCHED_FINISH_EOS,       /* an end-of-sequence token (not part of the output) */
    SCHED_FINISH_LENGTH,    /* max_tokens or the context reached */
    SCHED_FINISH_STOPPED,   /* sched_req_stop_choice (e.g. a stop string matched) */
    SCHED_FINISH_CANCELLED, /* sched_req_cancel or engine shutdown */
    SCHED_FINISH_ERROR,     /* the forward pass failed; message in sched_req.error */
} sched_finish;

typedef struct sched_choice {
    sched_token *tokens;    /* [n_tokens] generated so far (EOS excluded) */
    int n_tokens, cap;
    int n_cached;           /* prompt tokens served from the prefix cache */
    sched_finish finish;
    atomic_bool stop;       /* set by the submitter: finish this choice at the next step */
} sched_choice;

typedef struct sched_req {
    /* Inputs, fixed once submitted. */
    int32_t *prompt;        /* [n_prompt], owned */
    int n_prompt;
    int n_choices;
    int max_tokens;         /* new tokens per choice */
    int top_logprobs;       /* -1: no logprobs; 0..SCHED_MAX_TOP_LOGPROBS: logprob + that many */
    bool ignore_eos;
    ds_sampler_params sampling; /* choice i uses seed + i */

    /* Results, written by the engine under `mu`. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t version;       /* bumped on every change */
    sched_choice *choices;  /* [n_choices] */
    int n_finished;
    bool started;           /* a choice was admitted (left the queue) */
    char error[256];

    atomic_bool cancel;
    atomic_int refs;
} sched_req;

typedef struct sched_engine sched_engine;

/* Counters and gauges for /metrics; the totals only grow. */
typedef struct sched_stats {
    int running, waiting;           /* sequences / requests */
    int kv_blocks_total, kv_blocks_used, kv_blocks_cached;
    int block_size;
    uint64_t prefix_queried_tokens, prefix_hit_tokens;
    uint64_t prompt_tokens, generated_tokens;
    uint64_t seqs_cancelled, steps;      /* sequences (choices) cancelled; engine steps */
} sched_stats;

/* Sizes the pools for `m` (which must outlive the engine) and starts the engine thread. */
int sched_create(const ds_model *m, const sched_config *cfg, sched_engine **out, ds_err *err);
/* Cancels everything still queued or running, stops the thread, frees the pools. */
void sched_destroy(sched_engine *e);

/* A request over a copy of `prompt`, with one reference for the caller; NULL on no memory. */
sched_req *sched_req_new(const int32_t *prompt, int n_prompt, int n_choices, int max_tokens,
                         const ds_sampler_params *sampling, int top_logprobs, bool ignore_eos);
void sched_req_release(sched_req *r);

typedef enum sched_submit_result {
    SCHED_OK = 0,
    SCHED_QUEUE_FULL,   /* --queue requests are already waiting */
    SCHED_TOO_BIG,      /* can never fit: prompt + max_tokens beyond ctx or the pool */
    SCHED_STOPPING,     /* the engine is shutting down */
} sched_submit_result;

/* Queues the request (the engine takes its own reference). On SCHED_TOO_BIG `err` names the
 * limit. */
sched_submit_result sched_submit(sched_engine *e, sched_req *r, ds_err *err);

void sched_req_lock(sched_req *r);
void sched_req_unlock(sched_req *r);
/* With the lock held: waits until r->version differs from `seen` or timeout_ms passes. */
void sched_req_wait(sched_req *r, uint64_t seen, int timeout_ms);

/* Finishes every choice at the next step and frees their blocks (any thread). */
void sched_req_cancel(sched_engine *e, sched_req *r);
/* Finishes one choice (SCHED_FINISH_STOPPED) at the next step (any thread). */
void sched_req_stop_choice(sched_engine *e, sched_req *r, int choice);

void sched_get_stats(sched_engine *e, sched_stats *out);

#endif
