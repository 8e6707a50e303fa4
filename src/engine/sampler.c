/* Sampling pipeline, in the order Hugging Face's logits processors apply it: penalties →
 * temperature → top-k → top-p → min-p → draw. Candidates are ordered by (logit desc, id asc),
 * so ties resolve the same way on every run. The RNG is xoshiro256** seeded by splitmix64. */
#include "engine/sampler.h"

#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct ds_sampler {
    ds_sampler_params p;
    int n_vocab, n_valid;
    uint64_t rng[4];
    cand *cands;      /* [n_valid] */
    int32_t *counts;  /* [n_vocab], zero between calls */
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_unit(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

ds_sampler *ds_sampler_create(const ds_sampler_params *p, int n_vocab, int n_valid) {
    ds_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->n_valid = n_valid > 0 && n_valid <= n_vocab ? n_valid : n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->cands = malloc(sizeof *s->cands * (size_t)s->n_valid);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    if (!s->cands || !s->counts) {
        ds_sampler_free(s);
        return NULL;
    }
    return s;
}

void ds_sampler_free(ds_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->counts);
    free(s);
}

ds_sampler_params ds_sampler_defaults(const ds_sampling_defaults *d) {
    return (ds_sampler_params){
        .temperature = d->do_sample ? d->temperature : 0.0f,
        .top_k = d->do_sample ? d->top_k : 0,
        .top_p = d->do_sample ? d->top_p : 1.0f,
        .min_p = d->do_sample ? d->min_p : 0.0f,
        .repeat_penalty = d->repetition_penalty > 0 ? d->repetition_penalty : 1.0f,
    };
}

uint64_t ds_random_seed(void) {
    uint64_t seed = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&seed, sizeof seed, 1, f) != 1) seed = (uint64_t)time(NULL) ^ (uint64_t)clock();
    if (f) fclose(f);
    return seed & 0x7fffffffffffffffull; /* printable as a signed value by every client */
}

static void apply_penalties(ds_sampler *s, float *logits, const int32_t *tokens, int n_tokens, int n_prompt) {
    const ds_sampler_params *p = &s->p;
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0) {
        for (int i = 0; i < n_tokens; i++) {
            int32_t id = tokens[i];
            if (s->counts[id]++) continue; /* once per distinct id */
            logits[id] = logits[id] > 0 ? logits[id] / p->repeat_penalty : logits[id] * p->repeat_penalty;
        }
        for (int i = 0; i < n_tokens; i++) s->counts[tokens[i]] = 0;
    }
    if (p->presence_penalty != 0 || p->frequency_penalty != 0) {
        for (int i = n_prompt; i < n_tokens; i++) s->counts[tokens[i]]++;
        for (int i = n_prompt; i < n_tokens; i++) {
            int32_t id = tokens[i];
            if (!s->counts[id]) continue;
            logits[id] -= p->presence_penalty + p->frequency_penalty * (float)s->counts[id];
            s->counts[id] = 0;
        }
    }
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t ds_sampler_sample(ds_sampler *s, float *logits, const int32_t *tokens, int n_tokens, int n_prompt) {
    const ds_sampler_params *p = &s->p;
    apply_penalties(s, logits, tokens, n_tokens, n_prompt);
    if (p->temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < s->n_valid; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    int n = s->n_valid;
    for (int i = 0; i < n; i++) s->cands[i] = (cand){logits[i] / p->temperature, i};
    const int keep_k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    const int needs_order = keep_k < n || p->top_p < 1.0f || p->min_p > 0;
    if (needs_order) qsort(s->cands, (size_t)n, sizeof *s->cands, cand_cmp);
    n = keep_k;
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (s->cands[i].logit > max) max = s->cands[i].logit;
    /* Probabilities in the logit slot from here on. */
    double total = 0;
    for (int i = 0; i < n; i++) {
        s->cands[i].logit = expf(s->cands[i].logit - max);
        total += s->cands[i].logit;
    }
    if (p->top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->cands[i].logit / total;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        /* The candidates are ordered, so the first one holds the maximum probability. */
        float floor_p = p->min_p * s->cands[0].logit;
        int keep = 1;
        while (keep < n && s->cands[keep].logit >= floor_p) keep++;
        n = keep;
    }
    total = 0;
    for (int i = 0; i < n; i++) total += s->cands[i].logit;
    double r = next_unit(s->rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->cands[i].logit;
        if (r < acc) return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
