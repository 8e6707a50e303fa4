/* Perplexity of a model over a token sequence, and how far its next-token distributions are
 * from a base model's (mean KL divergence, top-1 agreement), computed the way llama.cpp's
 * perplexity tool does so the numbers compare:
 *
 *   - the tokens are cut into chunks of n_ctx; each chunk is evaluated from an empty cache,
 *     its first token replaced by BOS when the tokenizer adds one;
 *   - the first half of a chunk is context only: positions n_ctx/2 .. n_ctx-2 are scored, each
 *     on the token that follows it (n_ctx - 1 - n_ctx/2 scores per chunk).
 *
 * With a base model, each chunk runs through the base first and its log-softmax rows are kept,
 * then through the model, so only one chunk of each is ever in memory. */
#ifndef DS_ENGINE_PERPLEXITY_H
#define DS_ENGINE_PERPLEXITY_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

typedef struct ds_ppl_opts {
    int n_ctx;        /* tokens per chunk (at least 4) */
    int batch;        /* most tokens per forward call */
    int max_chunks;   /* 0: every whole chunk of the text */
    int32_t bos_id;   /* written over the first token of every chunk; -1: none */
} ds_ppl_opts;

/* A mean over scored positions and its standard error. */
typedef struct ds_ppl_stat {
    double mean, err;
} ds_ppl_stat;

typedef struct ds_ppl_result {
    int chunks_done, n_chunks;
    int64_t n_scored;        /* positions scored so far */
    double ppl, ppl_err;     /* exp(mean NLL) and its standard error */
    ds_ppl_stat nll;         /* nats per token */
    bool has_base;           /* the fields below are set */
    double base_ppl, base_ppl_err;
    ds_ppl_stat base_nll;
    ds_ppl_stat kl;          /* KL(base ‖ model) in nats per position */
    ds_ppl_stat top1;        /* fraction of positions where both models' argmax agree */
} ds_ppl_result;

/* Called after every chunk with the figures so far. */
typedef void (*ds_ppl_progress)(const ds_ppl_result *so_far, double chunk_seconds, void *user);

/* The number of chunks ds_perplexity will evaluate for n_tokens tokens; fails (saying how many
 * tokens are needed) when the text is shorter than two chunks, as llama.cpp does. */
int ds_perplexity_chunks(int n_tokens, const ds_ppl_opts *o, int *n_chunks, ds_err *err);

/* Scores `tokens` with `m` and, when `base` is not NULL, against `base` (which must have the
 * same vocabulary; the caller checks the tokenizers, this checks the logit width). `progress`
 * may be NULL. */
int ds_perplexity(const ds_model *m, const ds_model *base, ds_pool *pool, const int32_t *tokens, int n_tokens,
                  const ds_ppl_opts *o, ds_ppl_progress progress, void *user, ds_ppl_result *out, ds_err *err);

#endif
