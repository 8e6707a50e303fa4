/* /metrics: counters, gauges and latency histograms in the Prometheus text format (0.0.4),
 * every name prefixed dsinfer_. The histograms and the outcome counters follow vLLM's and
 * SGLang's (PEERS.md): time to first token, end-to-end latency, time per output token, and
 * choices finished by finish_reason; HTTP responses are counted by status code. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"

typedef struct hist_spec {
    const char *name, *help;
    double le[SRV_HIST_MAX_BOUNDS]; /* upper bounds, ascending; +Inf is implicit */
    int n_le;
} hist_spec;

/* vLLM's buckets, extended below for small models on fast hardware. */
static const hist_spec k_hists[SRV_N_HIST] = {
    [SRV_HIST_TTFT] = {"dsinfer_time_to_first_token_seconds", "Time from receiving a request to its first generated token.",
                       {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40,
                        80, 160, 640, 2560},
                       22},
    [SRV_HIST_E2E] = {"dsinfer_e2e_request_latency_seconds", "Time from receiving a request to answering it in full.",
                      {0.01, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920,
                       7680},
                      23},
    [SRV_HIST_TPOT] = {"dsinfer_time_per_output_token_seconds",
                       "Mean time between the tokens of a choice after its first (choices of two or more tokens).",
                       {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
                        20, 40, 80},
                       21},
};

static const char *const k_finish[SRV_N_FINISH] = {"stop", "length", "abort", "error"};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void srv_metrics_observe(srv_metrics *m, srv_hist h, double seconds) {
    const hist_spec *spec = &k_hists[h];
    int b = 0;
    while (b < spec->n_le && seconds > spec->le[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->buckets[h][b]++;
    m->sum[h] += seconds;
    m->count[h]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_count_status(srv_metrics *m, int status) {
    if (status >= 100 && status < 600) atomic_fetch_add(&m->http_status[status], 1);
}

void srv_metrics_count_finish(srv_metrics *m, const char *finish_reason) {
    for (int i = 0; i < SRV_N_FINISH; i++)
        if (finish_reason && !strcmp(finish_reason, k_finish[i])) atomic_fetch_add(&m->finished[i], 1);
}

/* ---- the exposition ----------------------------------------------------------------------- */

typedef struct out {
    srv_buf b;
    bool oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || srv_buf_add(&o->b, line, (size_t)n)) o->oom = true;
}

static void header(out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(out *o, const char *name, const char *type, const char *help, double value) {
    header(o, name, type, help);
    put(o, "%s %.17g\n", name, value);
}

static void histograms(out *o, srv_metrics *m) {
    uint64_t buckets[SRV_N_HIST][SRV_HIST_MAX_BOUNDS + 1], count[SRV_N_HIST];
    double sum[SRV_N_HIST];
    pthread_mutex_lock(&m->mu); /* one consistent snapshot: count equals the +Inf bucket */
    memcpy(buckets, m->buckets, sizeof buckets);
    memcpy(count, m->count, sizeof count);
    memcpy(sum, m->sum, sizeof sum);
    pthread_mutex_unlock(&m->mu);
    for (int h = 0; h < SRV_N_HIST; h++) {
        const hist_spec *spec = &k_hists[h];
        header(o, spec->name, "histogram", spec->help);
        uint64_t cumulative = 0;
        for (int b = 0; b < spec->n_le; b++) {
            cumulative += buckets[h][b];
            put(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", spec->name, spec->le[b], cumulative);
        }
        cumulative += buckets[h][spec->n_le];
        put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", spec->name, cumulative);
        put(o, "%s_sum %.17g\n%s_count %" PRIu64 "\n", spec->name, sum[h], spec->name, count[h]);
    }
}

static uint64_t status_range(srv_metrics *m, int from, int to) {
    uint64_t n = 0;
    for (int c = from; c < to; c++) n += atomic_load(&m->http_status[c]);
    return n;
}

static void outcomes(out *o, srv_state *s) {
    srv_metrics *m = &s->metrics;
    header(o, "dsinfer_request_success_total", "counter", "Choices answered in full, by finish_reason.");
    for (int i = 0; i < SRV_N_FINISH; i++)
        put(o, "dsinfer_request_success_total{finish_reason=\"%s\"} %" PRIu64 "\n", k_finish[i],
            (uint64_t)atomic_load(&m->finished[i]));
    header(o, "dsinfer_http_responses_total", "counter", "HTTP responses by status code.");
    for (int c = 100; c < 600; c++) {
        uint64_t n = atomic_load(&m->http_status[c]);
        if (n) put(o, "dsinfer_http_responses_total{code=\"%d\"} %" PRIu64 "\n", c, n);
    }
    metric(o, "dsinfer_http_responses_2xx_total", "counter", "HTTP responses below 400.", (double)status_range(m, 100, 400));
    metric(o, "dsinfer_http_responses_4xx_total", "counter", "HTTP 4xx responses.", (double)status_range(m, 400, 500));
    metric(o, "dsinfer_http_responses_5xx_total", "counter", "HTTP 5xx responses.", (double)status_range(m, 500, 600));
}

char *srv_metrics_text(srv_state *s, size_t *len) {
    out o = {0};
    sched_stats st = {0};
    if (s->engine) sched_get_stats(s->engine, &st);
    metric(&o, "dsinfer_requests_running", "gauge", "Sequences being generated.", st.running);
    metric(&o, "dsinfer_requests_waiting", "gauge", "Requests queued for admission.", st.waiting);
    metric(&o, "dsinfer_requests_in_flight", "gauge", "Generation requests being answered.", atomic_load(&s->active));
    metric(&o, "dsinfer_kv_blocks_used", "gauge", "KV blocks held by running sequences.", st.kv_blocks_used);
    metric(&o, "dsinfer_kv_blocks_total", "gauge", "KV blocks in the pool.", st.kv_blocks_total);
    metric(&o, "dsinfer_kv_blocks_cached", "gauge", "KV blocks kept by the prefix cache.", st.kv_blocks_cached);
    metric(&o, "dsinfer_kv_block_size", "gauge", "Positions per KV block.", st.block_size);
    metric(&o, "dsinfer_kv_usage_ratio", "gauge", "Fraction of KV blocks held by running sequences.",
           st.kv_blocks_total ? (double)st.kv_blocks_used / st.kv_blocks_total : 0);
    metric(&o, "dsinfer_prefix_cache_queried_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.",
           (double)st.prefix_queried_tokens);
    metric(&o, "dsinfer_prefix_cache_hit_tokens_total", "counter", "Prompt tokens served from the prefix cache.",
           (double)st.prefix_hit_tokens);
    metric(&o, "dsinfer_prompt_tokens_total", "counter", "Prompt tokens admitted (per sequence).", (double)st.prompt_tokens);
    metric(&o, "dsinfer_generation_tokens_total", "counter", "Tokens generated.", (double)st.generated_tokens);
    metric(&o, "dsinfer_engine_steps_total", "counter", "Engine steps (forward passes).", (double)st.steps);
    metric(&o, "dsinfer_sequences_cancelled_total", "counter", "Sequences cancelled before finishing.",
           (double)st.seqs_cancelled);
    metric(&o, "dsinfer_requests_finished_total", "counter", "Generation requests answered in full.",
           (double)atomic_load(&s->requests_finished));
    metric(&o, "dsinfer_requests_rejected_queue_full_total", "counter", "Requests answered 429 because the queue was full.",
           (double)atomic_load(&s->rejected_queue_full));
    metric(&o, "dsinfer_requests_disconnected_total", "counter", "Generation requests whose client went away.",
           (double)atomic_load(&s->cancelled_disconnect));
    outcomes(&o, s);
    histograms(&o, &s->metrics);
    if (o.oom) {
        free(o.b.p);
        return NULL;
    }
    *len = o.b.len;
    return o.b.p;
}
