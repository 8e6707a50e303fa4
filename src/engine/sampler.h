/* Token sampling: penalties, temperature, top-k, top-p, min-p, and a seeded RNG so that the
 * same seed and parameters always give the same ids. Rows at or beyond n_valid (vocabulary
 * padding) are never chosen. */
#ifndef DS_ENGINE_SAMPLER_H
#define DS_ENGINE_SAMPLER_H

#include <stdint.h>

typedef struct ds_sampler_params {
    float temperature;        /* ≤ 0: greedy (first maximum wins) */
    int top_k;                /* ≤ 0: off */
    float top_p;              /* ≥ 1: off */
    float min_p;              /* ≤ 0: off */
    float repeat_penalty;     /* 1: off; HF-style, over prompt and generated tokens */
    float presence_penalty;   /* 0: off; OpenAI-style, over generated tokens */
    float frequency_penalty;  /* 0: off; OpenAI-style, over generated tokens */
    uint64_t seed;
} ds_sampler_params;

typedef struct ds_sampler ds_sampler;

struct ds_sampling_defaults;

/* The parameters a model's generation_config.json asks for (greedy when it does not sample);
 * penalties other than repetition are off, and the seed is 0. */
ds_sampler_params ds_sampler_defaults(const struct ds_sampling_defaults *d);

ds_sampler *ds_sampler_create(const ds_sampler_params *p, int n_vocab, int n_valid);
void ds_sampler_free(ds_sampler *s);

/* Picks the next id from `logits` (n_vocab floats; modified in place). `tokens` holds the
 * sequence so far, of which the first n_prompt are the prompt. */
int32_t ds_sampler_sample(ds_sampler *s, float *logits, const int32_t *tokens, int n_tokens, int n_prompt);

/* A seed from the OS for when the user gives none. */
uint64_t ds_random_seed(void);

#endif
