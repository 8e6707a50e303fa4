/* dsinfer perplexity: perplexity of a model over a text file, and with --kl-base how far its
 * next-token distributions are from a base model's (mean KL divergence, top-1 agreement), the
 * way llama.cpp's perplexity tool computes them (engine/perplexity.h). Progress per chunk goes
 * to stderr; the summary (or one JSON object with --json) to stdout. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/model_tokenizer.h"
#include "engine/perplexity.h"

#define CMD "perplexity"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsinfer perplexity -m MODEL -f TEXT [--kl-base BASE] [-c CTX] [-b BATCH] [-t T]\n"
            "                          [--chunks N] [--json]\n"
            "  MODEL, BASE    Hugging Face model directories or .gguf files with the same tokenizer\n"
            "  -f TEXT        a UTF-8 text file ('-' = standard input)\n"
            "  --kl-base BASE also report KL(BASE || MODEL), top-1 agreement and BASE's perplexity\n"
            "  -c CTX         tokens per chunk (default 512); the second half of each chunk is scored\n"
            "  -b BATCH       tokens per forward call (default: CTX)\n"
            "  -t T           threads (default: all cores)\n"
            "  --chunks N     score only the first N chunks\n"
            "  --json         print one JSON object\n");
}

typedef struct ppl_opts {
    const char *model, *text, *base;
    int64_t ctx, batch, threads, chunks;
    bool json;
} ppl_opts;

static int parse(int argc, char **argv, ppl_opts *o) {
    *o = (ppl_opts){.ctx = 512};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        static const char *const k_valued[] = {"-m", "-f", "--kl-base", "-c", "-b", "-t", "--chunks"};
        bool known = false;
        for (size_t k = 0; k < sizeof k_valued / sizeof k_valued[0]; k++) known = known || !strcmp(a, k_valued[k]);
        if (!known) {
            fprintf(stderr, "dsinfer perplexity: unknown option '%s'\n", a);
            return -1;
        }
        if (!(v = arg_value(argc, argv, &i, CMD))) return -1;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "-f")) o->text = v;
        else if (!strcmp(a, "--kl-base")) o->base = v;
        else if (!strcmp(a, "-c")) {
            if (arg_int(CMD, a, v, 4, 1 << 16, &o->ctx)) return -1;
        } else if (!strcmp(a, "-b")) {
            if (arg_int(CMD, a, v, 1, 1 << 16, &o->batch)) return -1;
        } else if (!strcmp(a, "-t")) {
            if (arg_int(CMD, a, v, 1, 256, &o->threads)) return -1;
        } else if (arg_int(CMD, a, v, 1, 1 << 30, &o->chunks)) /* --chunks */
            return -1;
    }
    if (!o->model || !o->text) {
        usage(stderr);
        return -1;
    }
    if (!o->batch || o->batch > o->ctx) o->batch = o->ctx;
    return 0;
}

/* Scores against a base only make sense token for token: the same ids must mean the same
 * strings, and BOS must be handled alike. */
static int same_vocab(const tok_tokenizer *a, const tok_tokenizer *b, ds_err *err) {
    const int32_t n = tok_n_vocab(a);
    if (tok_n_vocab(b) != n)
        return ds_errf(err, "the tokenizers differ: the model's has %d ids and the base's %d", n, tok_n_vocab(b));
    for (int32_t id = 0; id < n; id++) {
        const char *sa = tok_token_text(a, id), *sb = tok_token_text(b, id);
        if ((sa || sb) && (!sa || !sb || strcmp(sa, sb)))
            return ds_errf(err, "the tokenizers differ: id %d is '%.40s' in the model and '%.40s' in the base", id,
                           sa ? sa : "(none)", sb ? sb : "(none)");
    }
    if (tok_adds_bos(a) != tok_adds_bos(b) || tok_bos_id(a) != tok_bos_id(b))
        return ds_errf(err, "the tokenizers differ in their BOS token");
    return 0;
}

/* The text's ids as llama.cpp's perplexity takes them: special tokens written in the text stay
 * text, and BOS comes first when the tokenizer adds one. */
static int tokenize_text(const tok_tokenizer *t, const char *text, size_t len, tok_ids *ids, ds_err *err) {
    if (tok_adds_bos(t) && tok_ids_push(ids, tok_bos_id(t))) return ds_errf(err, "out of memory");
    return tok_encode(t, text, len, TOK_ADDED_NON_SPECIAL, false, ids, err);
}

static void progress(const ds_ppl_result *r, double seconds, void *user) {
    (void)user;
    fprintf(stderr, "perplexity: chunk %d/%d: PPL %.4f", r->chunks_done, r->n_chunks, r->ppl);
    if (r->has_base)
        fprintf(stderr, ", base PPL %.4f, KL %.6f, top-1 %.2f %%", r->base_ppl, r->kl.mean, 100 * r->top1.mean);
    fprintf(stderr, " (%.2f s)\n", seconds);
}

static void print_text(const ppl_opts *o, int n_tokens, const ds_ppl_result *r) {
    printf("model            %s\n", o->model);
    printf("text             %s: %d tokens, %d chunks of %lld, %lld positions scored\n", o->text, n_tokens,
           r->n_chunks, (long long)o->ctx, (long long)r->n_scored);
    printf("PPL              %.4f +/- %.4f\n", r->ppl, r->ppl_err);
    if (!r->has_base) return;
    printf("base             %s\n", o->base);
    printf("base PPL         %.4f +/- %.4f\n", r->base_ppl, r->base_ppl_err);
    printf("KL(base||model)  %.6f +/- %.6f nats per token\n", r->kl.mean, r->kl.err);
    printf("top-1 agreement  %.2f +/- %.2f %%\n", 100 * r->top1.mean, 100 * r->top1.err);
}

static int print_json(const ppl_opts *o, int n_tokens, const ds_ppl_result *r) {
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:f, s:f, s:f, s:f}", "model", o->model, "text", o->text,
                          "n_tokens", (json_int_t)n_tokens, "n_ctx", (json_int_t)o->ctx, "n_chunks", r->n_chunks,
                          "n_scored", (json_int_t)r->n_scored, "ppl", r->ppl, "ppl_err", r->ppl_err, "nll",
                          r->nll.mean, "nll_err", r->nll.err);
    if (j && r->has_base) {
        json_t *b = json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "base", o->base, "base_ppl", r->base_ppl,
                              "base_ppl_err", r->base_ppl_err, "base_nll", r->base_nll.mean, "base_nll_err",
                              r->base_nll.err, "kl", r->kl.mean, "kl_err", r->kl.err, "top1_agreement",
                              r->top1.mean, "top1_agreement_err", r->top1.err);
        if (!b || json_object_update(j, b)) json_decref(j), j = NULL;
        json_decref(b);
    }
    char *s = j ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(j);
    if (!s) return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    ppl_opts o;
    if (parse(argc, argv, &o)) return 2;
    char *text;
    size_t len;
    if (arg_read_file(CMD, o.text, &text, &len)) return 1;
    if (len == 0) {
        fprintf(stderr, "dsinfer perplexity: %s is empty\n", o.text);
        free(text);
        return 1;
    }
    int status = 1;
    ds_err err = {0};
    ds_model *m = NULL, *base = NULL;
    tok_tokenizer *tok = NULL, *base_tok = NULL;
    tok_ids ids = {0};
    ds_pool *pool = NULL;
    if (ds_model_load(o.model, &m, &err) || ds_model_tokenizer(m, &tok, &err)) {
        ds_err_wrap(&err, "%s", o.model);
        goto out;
    }
    if (o.base && (ds_model_load(o.base, &base, &err) || ds_model_tokenizer(base, &base_tok, &err))) {
        ds_err_wrap(&err, "%s", o.base);
        goto out;
    }
    if (base_tok && same_vocab(tok, base_tok, &err)) goto out;
    if (tokenize_text(tok, text, len, &ids, &err)) {
        ds_err_wrap(&err, "%s", o.text);
        goto out;
    }
    const ds_ppl_opts po = {.n_ctx = (int)o.ctx, .batch = (int)o.batch, .max_chunks = (int)o.chunks,
                            .bos_id = tok_adds_bos(tok) ? tok_bos_id(tok) : -1};
    int n_chunks;
    if (ds_perplexity_chunks((int)ids.n, &po, &n_chunks, &err)) {
        ds_err_wrap(&err, "%s", o.text);
        goto out;
    }
    if (!(pool = ds_pool_create(o.threads ? (int)o.threads : ds_cpu_count()))) {
        ds_errf(&err, "out of memory");
        goto out;
    }
    fprintf(stderr, "perplexity: %zu tokens, %d chunks of %d, %d threads\n", ids.n, n_chunks, po.n_ctx,
            ds_pool_size(pool));
    ds_ppl_result r;
    if (ds_perplexity(m, base, pool, ids.ids, (int)ids.n, &po, progress, NULL, &r, &err)) goto out;
    if (o.json ? print_json(&o, (int)ids.n, &r) : (print_text(&o, (int)ids.n, &r), 0)) {
        ds_errf(&err, "out of memory");
        goto out;
    }
    status = 0;
out:
    if (status) fprintf(stderr, "dsinfer perplexity: %s\n", err.msg);
    ds_pool_destroy(pool);
    tok_ids_free(&ids);
    free(text);
    tok_free(base_tok);
    tok_free(tok);
    ds_model_free(base);
    ds_model_free(m);
    return status;
}
