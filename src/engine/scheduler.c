/* Scheduler (see scheduler.h): the engine thread, its queue, and one step of continuous
 * batching. Reading order: the structures, request objects, admission, the step, the thread
 * loop, then creation and the public calls. */
#include "engine/scheduler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/prefix_cache.h"

/* A running sequence: one choice of one request. Engine thread only. */
typedef struct sched_seq {
    sched_req *req;
    int choice;
    ds_kv_seq kv;        /* its block table: blocks for every position of its budget */
    int32_t *tokens;     /* [budget] prompt, then generated ids */
    int n_tokens;        /* prompt + generated so far */
    int n_computed;      /* positions whose K/V are in the cache */
    int n_hashed;        /* leading full blocks offered to the prefix cache */
    uint64_t last_hash;  /* hash of block n_hashed - 1 (0 before the first) */
    int max_gen, n_gen;
    bool pending;        /* tokens[n_tokens - 1] was sampled and still has to be fed */
    ds_sampler *sampler;
} sched_seq;

struct sched_engine {
    const ds_model *model;
    sched_config cfg;
    int n_vocab, n_valid;

    /* Engine thread only. */
    ds_pool *pool;
    ds_kv_cache *kv;
    pc_cache *pc;
    ds_forward_ctx *fwd;
    sched_seq *running;  /* [parallel] */
    int n_running;
    int32_t *b_tokens, *b_pos, *b_seq; /* [step_tokens + parallel] batch under construction */
    uint8_t *b_want;
    const int32_t **b_tables;          /* [parallel] */
    int32_t *b_counts;                 /* [parallel] */
    int *row_seq;                      /* [parallel] running index of each logits row */
    float *logits;                     /* [parallel][n_vocab] */
    float *lp_scratch;                 /* [n_vocab] */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    sched_req **queue;   /* [cfg.queue] FIFO of waiting requests */
    int q_head, q_len;
    int next_choice;     /* choices of queue[q_head] already admitted */
    bool stopping;
    sched_stats stats;
    pthread_t thread;
};

/* ---- requests ----------------------------------------------------------------------------- */

sched_req *sched_req_new(const int32_t *prompt, int n_prompt, int n_choices, int max_tokens,
                         const ds_sampler_params *sampling, int top_logprobs, bool ignore_eos) {
    sched_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->prompt = malloc(sizeof *r->prompt * (size_t)(n_prompt > 0 ? n_prompt : 1));
    r->choices = calloc((size_t)n_choices, sizeof *r->choices);
    if (!r->prompt || !r->choices) {
        free(r->prompt);
        free(r->choices);
        free(r);
        return NULL;
    }
    if (n_prompt > 0) memcpy(r->prompt, prompt, sizeof *prompt * (size_t)n_prompt);
    r->n_prompt = n_prompt;
    r->n_choices = n_choices;
    r->max_tokens = max_tokens;
    r->top_logprobs = top_logprobs > SCHED_MAX_TOP_LOGPROBS ? SCHED_MAX_TOP_LOGPROBS : top_logprobs;
    r->ignore_eos = ignore_eos;
    r->sampling = *sampling;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&r->cancel, false);
    atomic_init(&r->refs, 1);
    for (int i = 0; i < n_choices; i++) atomic_init(&r->choices[i].stop, false);
    return r;
}

void sched_req_release(sched_req *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    for (int i = 0; i < r->n_choices; i++) free(r->choices[i].tokens);
    free(r->choices);
    free(r->prompt);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}

void sched_req_lock(sched_req *r) { pthread_mutex_lock(&r->mu); }
void sched_req_unlock(sched_req *r) { pthread_mutex_unlock(&r->mu); }

void sched_req_wait(sched_req *r, uint64_t seen, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    while (r->version == seen)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT) break;
}

/* Records the end of one choice (engine thread). */
static void finish_choice(sched_req *r, int choice, sched_finish how, const char *error) {
    pthread_mutex_lock(&r->mu);
    sched_choice *c = &r->choices[choice];
    if (c->finish == SCHED_RUNNING) {
        c->finish = how;
        r->n_finished++;
        if (error && !r->error[0]) snprintf(r->error, sizeof r->error, "%s", error);
    }
    r->version++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int push_token(sched_req *r, int choice, const sched_token *t) {
    pthread_mutex_lock(&r->mu);
    sched_choice *c = &r->choices[choice];
    if (c->n_tokens == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        sched_token *p = realloc(c->tokens, sizeof *p * (size_t)cap);
        if (!p) {
            pthread_mutex_unlock(&r->mu);
            return -1;
        }
        c->tokens = p;
        c->cap = cap;
    }
    c->tokens[c->n_tokens++] = *t;
    r->version++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* ---- sequences ---------------------------------------------------------------------------- */

static void seq_end(sched_engine *e, int idx, sched_finish how, const char *error) {
    sched_seq *s = &e->running[idx];
    pc_release_seq(e->pc, &s->kv);
    ds_sampler_free(s->sampler);
    free(s->tokens);
    finish_choice(s->req, s->choice, how, error);
    pthread_mutex_lock(&e->mu);
    if (how == SCHED_FINISH_CANCELLED) e->stats.seqs_cancelled++;
    pthread_mutex_unlock(&e->mu);
    sched_req_release(s->req);
    e->running[idx] = e->running[--e->n_running];
}

/* Tries to start choice `choice` of `r`: prefix-cache lookup, then blocks for the whole
 * budget. Returns 1 when started, 0 when the blocks are not there yet, -1 on no memory.
 * Called with e->mu held. */
static int admit(sched_engine *e, sched_req *r, int choice) {
    const int bs = e->cfg.block_size;
    int budget = r->n_prompt + r->max_tokens;
    int need = (budget + bs - 1) / bs;
    sched_seq s = {.req = r, .choice = choice, .max_gen = r->max_tokens};
    s.tokens = malloc(sizeof *s.tokens * (size_t)budget);
    s.kv.blocks = malloc(sizeof *s.kv.blocks * (size_t)need);
    if (!s.tokens || !s.kv.blocks) {
        free(s.tokens);
        free(s.kv.blocks);
        return -1;
    }
    s.kv.cap = need;
    memcpy(s.tokens, r->prompt, sizeof *s.tokens * (size_t)r->n_prompt);
    s.n_tokens = r->n_prompt;

    /* The last prompt token is always computed: its logits start generation. */
    int max_hits = (r->n_prompt - 1) / bs;
    uint64_t h = 0;
    while (s.kv.n_blocks < max_hits) {
        const int32_t *blk = s.tokens + (size_t)s.kv.n_blocks * (size_t)bs;
        uint64_t hb = pc_hash(h, blk, bs);
        int32_t b = pc_lookup(e->pc, hb, blk);
        if (b < 0) break;
        s.kv.blocks[s.kv.n_blocks++] = b;
        h = hb;
    }
    int hits = s.kv.n_blocks;
    if (pc_available(e->pc) < need - hits) {
        for (int i = 0; i < hits; i++) ds_kv_unref(e->kv, s.kv.blocks[i]);
        free(s.tokens);
        free(s.kv.blocks);
        return 0;
    }
    while (s.kv.n_blocks < need) s.kv.blocks[s.kv.n_blocks++] = pc_alloc_block(e->pc);
    s.n_computed = hits * bs;
    s.n_hashed = hits;
    s.last_hash = h;
    ds_sampler_params sp = r->sampling;
    sp.seed += (uint64_t)choice;
    s.sampler = ds_sampler_create(&sp, e->n_vocab, e->n_valid);
    if (!s.sampler) {
        pc_release_seq(e->pc, &s.kv);
        free(s.tokens);
        return -1;
    }
    atomic_fetch_add(&r->refs, 1);
    e->running[e->n_running++] = s;
    e->stats.prefix_queried_tokens += (uint64_t)r->n_prompt;
    e->stats.prefix_hit_tokens += (uint64_t)(hits * bs);
    e->stats.prompt_tokens += (uint64_t)r->n_prompt;
    pthread_mutex_lock(&r->mu);
    r->choices[choice].n_cached = hits * bs;
    r->started = true;
    r->version++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    return 1;
}

/* Pops cancelled requests and admits choices from the head of the queue while sequences and
 * blocks allow (first come, first served). Called with e->mu held. */
static void admit_waiting(sched_engine *e) {
    while (e->q_len > 0) {
        sched_req *r = e->queue[e->q_head];
        bool cancelled = atomic_load(&r->cancel);
        if (!cancelled) {
            if (e->n_running == e->cfg.parallel) return;
            int rc = admit(e, r, e->next_choice);
            if (rc == 0) return;
            if (rc < 0) {
                cancelled = true;
                snprintf(r->error, sizeof r->error, "out of memory");
            } else if (++e->next_choice < r->n_choices) {
                continue;
            }
        }
        if (cancelled) {
            pthread_mutex_unlock(&e->mu);
            for (int c = e->next_choice; c < r->n_choices; c++) finish_choice(r, c, SCHED_FINISH_CANCELLED, NULL);
            pthread_mutex_lock(&e->mu);
            e->stats.seqs_cancelled += (uint64_t)(r->n_choices - e->next_choice);
        }
        sched_req_release(r);
        e->q_head = (e->q_head + 1) % e->cfg.queue;
        e->q_len--;
        e->next_choice = 0;
    }
}

/* ---- one step ----------------------------------------------------------------------------- */

/* Log-softmax of a row over the valid ids into e->lp_scratch; fills the token's logprob and
 * the top n alternatives (ties: lower id first). */
static void logprobs(sched_engine *e, const float *row, sched_token *t, int n_top) {
    float mx = -INFINITY;
    for (int i = 0; i < e->n_valid; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0;
    for (int i = 0; i < e->n_valid; i++) sum += exp((double)row[i] - mx);
    float lse = mx + (float)log(sum);
    float *lp = e->lp_scratch;
    for (int i = 0; i < e->n_valid; i++) lp[i] = row[i] - lse;
    t->logprob = lp[t->id];
    t->n_top = 0;
    for (int k = 0; k < n_top; k++) {
        int best = -1;
        for (int i = 0; i < e->n_valid; i++) {
            if (lp[i] == -INFINITY) continue;
            bool taken = false;
            for (int j = 0; j < t->n_top && !taken; j++) taken = t->top_ids[j] == i;
            if (!taken && (best < 0 || lp[i] > lp[best])) best = i;
        }
        if (best < 0) break;
        t->top_ids[t->n_top] = best;
        t->top_logprobs[t->n_top++] = lp[best];
    }
}

static bool is_eos(const ds_model *m, int32_t id) {
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == id) return true;
    return false;
}

/* Offers every newly completed, computed block of a sequence to the prefix cache. */
static void cache_blocks(sched_engine *e, sched_seq *s) {
    const int bs = e->cfg.block_size;
    while ((s->n_hashed + 1) * bs <= s->n_computed) {
        const int32_t *blk = s->tokens + (size_t)s->n_hashed * (size_t)bs;
        s->last_hash = pc_hash(s->last_hash, blk, bs);
        pc_insert(e->pc, s->last_hash, blk, s->kv.blocks[s->n_hashed]);
        s->n_hashed++;
    }
}

/* One batch: decode tokens of every sequence that has one, then prefill chunks in admission
 * order within the token budget; one forward pass; sampling for rows that end a prompt or
 * decode a token. */
static void step(sched_engine *e) {
    for (int i = e->n_running - 1; i >= 0; i--) {
        sched_seq *s = &e->running[i];
        if (atomic_load(&s->req->cancel)) seq_end(e, i, SCHED_FINISH_CANCELLED, NULL);
        else if (atomic_load(&s->req->choices[s->choice].stop)) seq_end(e, i, SCHED_FINISH_STOPPED, NULL);
    }
    if (e->n_running == 0) return;

    int n = 0, n_rows = 0, budget = e->cfg.step_tokens;
    int chunk_of[e->n_running];
    for (int i = 0; i < e->n_running; i++) {
        sched_seq *s = &e->running[i];
        e->b_tables[i] = s->kv.blocks;
        e->b_counts[i] = s->kv.n_blocks;
        chunk_of[i] = 0;
        if (!s->pending) continue;
        e->b_tokens[n] = s->tokens[s->n_tokens - 1];
        e->b_pos[n] = s->n_tokens - 1;
        e->b_seq[n] = i;
        e->b_want[n++] = 1;
        e->row_seq[n_rows++] = i;
        chunk_of[i] = 1;
        budget--;
    }
    for (int i = 0; i < e->n_running && budget > 0; i++) {
        sched_seq *s = &e->running[i];
        if (s->pending) continue;
        int left = s->req->n_prompt - s->n_computed;
        int take = left < budget ? left : budget;
        for (int j = 0; j < take; j++) {
            e->b_tokens[n] = s->tokens[s->n_computed + j];
            e->b_pos[n] = s->n_computed + j;
            e->b_seq[n] = i;
            e->b_want[n++] = j == left - 1;
        }
        if (take == left) e->row_seq[n_rows++] = i;
        chunk_of[i] = take;
        budget -= take;
    }
    ds_batch b = {.n_tokens = n, .tokens = e->b_tokens, .pos = e->b_pos, .seq = e->b_seq,
                  .want_logits = e->b_want, .n_seqs = e->n_running, .block_tables = e->b_tables,
                  .block_counts = e->b_counts};
    ds_err err = {0};
    if (ds_forward(e->model, e->fwd, e->kv, e->pool, &b, e->logits, &err)) {
        while (e->n_running > 0) seq_end(e, e->n_running - 1, SCHED_FINISH_ERROR, err.msg);
        return;
    }

    /* Rows come out in batch order, which is the order row_seq was filled in. */
    uint64_t generated = 0;
    bool done[e->n_running];
    sched_finish how[e->n_running];
    for (int i = 0; i < e->n_running; i++) {
        done[i] = false;
        how[i] = SCHED_RUNNING;
        sched_seq *s = &e->running[i];
        s->n_computed += chunk_of[i];
        cache_blocks(e, s);
    }
    for (int r = 0; r < n_rows; r++) {
        int i = e->row_seq[r];
        sched_seq *s = &e->running[i];
        float *row = e->logits + (size_t)r * (size_t)e->n_vocab;
        sched_token t = {0};
        bool want_lp = s->req->top_logprobs >= 0;
        if (want_lp) memcpy(e->lp_scratch, row, sizeof *row * (size_t)e->n_vocab);
        t.id = ds_sampler_sample(s->sampler, row, s->tokens, s->n_tokens, s->req->n_prompt);
        if (want_lp) {
            /* the sampler rewrote `row`; the copy holds the model's logits */
            memcpy(row, e->lp_scratch, sizeof *row * (size_t)e->n_vocab);
            logprobs(e, row, &t, s->req->top_logprobs);
        }
        s->pending = false;
        if (!s->req->ignore_eos && is_eos(e->model, t.id)) {
            done[i] = true, how[i] = SCHED_FINISH_EOS;
            continue;
        }
        s->tokens[s->n_tokens++] = t.id;
        s->n_gen++;
        generated++;
        if (push_token(s->req, s->choice, &t)) {
            done[i] = true, how[i] = SCHED_FINISH_ERROR;
            continue;
        }
        if (s->n_gen >= s->max_gen) done[i] = true, how[i] = SCHED_FINISH_LENGTH;
        else s->pending = true;
    }
    for (int i = e->n_running - 1; i >= 0; i--)
        if (done[i]) seq_end(e, i, how[i], how[i] == SCHED_FINISH_ERROR ? "out of memory" : NULL);
    pthread_mutex_lock(&e->mu);
    e->stats.generated_tokens += generated;
    e->stats.steps++;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the engine thread -------------------------------------------------------------------- */

static void publish_gauges(sched_engine *e) {
    e->stats.running = e->n_running;
    e->stats.waiting = e->q_len;
    e->stats.kv_blocks_used = e->kv->n_blocks - pc_available(e->pc);
    e->stats.kv_blocks_cached = pc_n_cached(e->pc);
}

static void *engine_main(void *arg) {
    sched_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        admit_waiting(e);
        publish_gauges(e);
        if (e->stopping) break;
        if (e->n_running == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 100000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&e->cond, &e->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        step(e);
        pthread_mutex_lock(&e->mu);
    }
    /* Shutdown: everything still queued or running ends cancelled. */
    while (e->q_len > 0) {
        atomic_store(&e->queue[e->q_head]->cancel, true);
        admit_waiting(e);
    }
    pthread_mutex_unlock(&e->mu);
    while (e->n_running > 0) seq_end(e, e->n_running - 1, SCHED_FINISH_CANCELLED, NULL);
    pthread_mutex_lock(&e->mu);
    publish_gauges(e);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- creation and the public calls --------------------------------------------------------- */

int sched_create(const ds_model *m, const sched_config *cfg, sched_engine **out, ds_err *err) {
    *out = NULL;
    if (cfg->parallel < 1 || cfg->ctx < 1 || cfg->queue < 1 || cfg->block_size < 1 || cfg->step_tokens < 1)
        return ds_errf(err, "scheduler: parallel, ctx, queue, block size and step budget must be positive");
    sched_engine *e = calloc(1, sizeof *e);
    if (!e) return ds_errf(err, "out of memory");
    e->model = m;
    e->cfg = *cfg;
    if (e->cfg.step_tokens < e->cfg.parallel) e->cfg.step_tokens = e->cfg.parallel;
    const int bs = e->cfg.block_size, P = e->cfg.parallel, T = e->cfg.step_tokens + P;
    int per_seq = (e->cfg.ctx + bs - 1) / bs;
    if (e->cfg.kv_blocks < per_seq) e->cfg.kv_blocks = per_seq * P;
    e->n_vocab = m->hp.n_vocab;
    e->n_valid = m->n_vocab_tokens > 0 && m->n_vocab_tokens < m->hp.n_vocab ? m->n_vocab_tokens : m->hp.n_vocab;
    int wk, wv;
    ds_model_kv_widths(m, &wk, &wv);
    if (ds_kv_create(&e->kv, m->hp.n_layer, wk, wv, bs, e->cfg.kv_blocks, err)) {
        free(e);
        return -1;
    }
    e->pool = ds_pool_create(cfg->n_threads > 0 ? cfg->n_threads : ds_cpu_count());
    e->pc = pc_create(e->kv);
    e->fwd = ds_forward_ctx_create(m, T, e->cfg.ctx);
    e->running = calloc((size_t)P, sizeof *e->running);
    e->b_tokens = malloc(sizeof(int32_t) * (size_t)T);
    e->b_pos = malloc(sizeof(int32_t) * (size_t)T);
    e->b_seq = malloc(sizeof(int32_t) * (size_t)T);
    e->b_want = malloc((size_t)T);
    e->b_tables = malloc(sizeof *e->b_tables * (size_t)P);
    e->b_counts = malloc(sizeof *e->b_counts * (size_t)P);
    e->row_seq = malloc(sizeof *e->row_seq * (size_t)P);
    e->logits = malloc(sizeof(float) * (size_t)P * (size_t)e->n_vocab);
    e->lp_scratch = malloc(sizeof(float) * (size_t)e->n_vocab);
    e->queue = malloc(sizeof *e->queue * (size_t)e->cfg.queue);
    if (!e->pool || !e->pc || !e->fwd || !e->running || !e->b_tokens || !e->b_pos || !e->b_seq || !e->b_want ||
        !e->b_tables || !e->b_counts || !e->row_seq || !e->logits || !e->lp_scratch || !e->queue) {
        e->stopping = true;
        sched_destroy(e);
        return ds_errf(err, "out of memory for the engine (%d blocks of %d positions, %d tokens per step)",
                       e->cfg.kv_blocks, bs, T);
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    e->stats.kv_blocks_total = e->cfg.kv_blocks;
    e->stats.block_size = bs;
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        e->stopping = true;
        sched_destroy(e);
        return ds_errf(err, "cannot start the engine thread");
    }
    *out = e;
    return 0;
}

void sched_destroy(sched_engine *e) {
    if (!e) return;
    if (e->thread) {
        pthread_mutex_lock(&e->mu);
        e->stopping = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cond);
    }
    pc_free(e->pc);
    ds_kv_free(e->kv);
    ds_forward_ctx_free(e->fwd);
    ds_pool_destroy(e->pool);
    free(e->running);
    free(e->b_tokens), free(e->b_pos), free(e->b_seq), free(e->b_want);
    free(e->b_tables), free(e->b_counts), free(e->row_seq);
    free(e->logits), free(e->lp_scratch), free(e->queue);
    free(e);
}

sched_submit_result sched_submit(sched_engine *e, sched_req *r, ds_err *err) {
    const int bs = e->cfg.block_size;
    int budget = r->n_prompt + r->max_tokens;
    if (r->n_prompt < 1 || r->max_tokens < 1 || r->n_choices < 1) {
        ds_errf(err, "a request needs at least one prompt token, one new token and one choice");
        return SCHED_TOO_BIG;
    }
    if (budget > e->cfg.ctx) {
        ds_errf(err, "this request needs %d positions (%d prompt + %d new tokens) but the context holds %d (--ctx)",
                budget, r->n_prompt, r->max_tokens, e->cfg.ctx);
        return SCHED_TOO_BIG;
    }
    if ((budget + bs - 1) / bs > e->cfg.kv_blocks) {
        ds_errf(err, "this request needs %d KV blocks but the pool holds %d", (budget + bs - 1) / bs,
                e->cfg.kv_blocks);
        return SCHED_TOO_BIG;
    }
    pthread_mutex_lock(&e->mu);
    sched_submit_result res = SCHED_OK;
    if (e->stopping) res = SCHED_STOPPING;
    else if (e->q_len == e->cfg.queue) res = SCHED_QUEUE_FULL;
    else {
        atomic_fetch_add(&r->refs, 1);
        e->queue[(e->q_head + e->q_len++) % e->cfg.queue] = r;
        e->stats.waiting = e->q_len;
        pthread_cond_broadcast(&e->cond);
    }
    pthread_mutex_unlock(&e->mu);
    return res;
}

void sched_req_cancel(sched_engine *e, sched_req *r) {
    atomic_store(&r->cancel, true);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

void sched_req_stop_choice(sched_engine *e, sched_req *r, int choice) {
    atomic_store(&r->choices[choice].stop, true);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

void sched_get_stats(sched_engine *e, sched_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}
