/* dsinfer run: generate from a prompt given as text (-p) or as token ids (--prompt-ids).
 * stdout carries the generated text, or with --ids one line of prompt + generated ids;
 * stderr ends with one line of stable key=value figures. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/sampler.h"
#include "engine/chat.h"
#include "engine/model_tokenizer.h"
#include "engine/session.h"

#define CMD "run"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsinfer run -m MODEL (-p TEXT | --prompt-ids IDS) [-n N] [-t T] [-c CTX]\n"
            "                   [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S]\n"
            "                   [--repeat-penalty R] [--presence-penalty P] [--frequency-penalty F]\n"
            "                   [--ignore-eos] [--ids] [--chat [--system TEXT]]\n"
            "  MODEL   a Hugging Face model directory or a .gguf file\n"
            "  IDS     comma- or space-separated token ids\n"
            "  -n N    at most N new tokens (default 128)\n"
            "  -t T    threads (default: all cores)\n"
            "  -c CTX  context size (default: the model's, at most 4096)\n"
            "  --ids   print prompt and generated ids on one line instead of text\n"
            "  --chat  wrap -p TEXT as a user message in the model's chat template (--system adds one)\n"
            "Sampling defaults come from generation_config.json when present, else greedy;\n"
            "--temp 0 is greedy. --seed defaults to a random seed, printed on stderr.\n");
}

typedef struct run_opts {
    const char *model, *prompt, *prompt_ids, *system;
    int64_t n_predict, threads, ctx;
    bool ignore_eos, print_ids, chat;
    /* sampling overrides; NAN / -1 = not given */
    double temp, top_p, min_p, repeat, presence, frequency;
    int64_t top_k, seed;
    bool has_seed;
} run_opts;

static int parse(int argc, char **argv, run_opts *o) {
    *o = (run_opts){.n_predict = 128, .threads = 0, .ctx = 0, .temp = -1, .top_p = -1, .min_p = -1,
                    .repeat = -1, .presence = 0, .frequency = 0, .top_k = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = arg_value(argc, argv, &i, CMD))) return -1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VALUE();
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            VALUE();
            o->prompt = v;
        } else if (!strcmp(a, "--prompt-ids")) {
            VALUE();
            o->prompt_ids = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VALUE();
            if (arg_int(CMD, a, v, 0, 1 << 30, &o->n_predict)) return -1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VALUE();
            if (arg_int(CMD, a, v, 1, 256, &o->threads)) return -1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            VALUE();
            if (arg_int(CMD, a, v, 1, 1 << 24, &o->ctx)) return -1;
        } else if (!strcmp(a, "--temp")) {
            VALUE();
            if (arg_float(CMD, a, v, 0, 100, &o->temp)) return -1;
        } else if (!strcmp(a, "--top-k")) {
            VALUE();
            if (arg_int(CMD, a, v, 0, 1 << 30, &o->top_k)) return -1;
        } else if (!strcmp(a, "--top-p")) {
            VALUE();
            if (arg_float(CMD, a, v, 0, 1, &o->top_p)) return -1;
        } else if (!strcmp(a, "--min-p")) {
            VALUE();
            if (arg_float(CMD, a, v, 0, 1, &o->min_p)) return -1;
        } else if (!strcmp(a, "--repeat-penalty")) {
            VALUE();
            if (arg_float(CMD, a, v, 0.01, 100, &o->repeat)) return -1;
        } else if (!strcmp(a, "--presence-penalty")) {
            VALUE();
            if (arg_float(CMD, a, v, -2, 2, &o->presence)) return -1;
        } else if (!strcmp(a, "--frequency-penalty")) {
            VALUE();
            if (arg_float(CMD, a, v, -2, 2, &o->frequency)) return -1;
        } else if (!strcmp(a, "--seed")) {
            VALUE();
            if (arg_int(CMD, a, v, 0, INT64_MAX, &o->seed)) return -1;
            o->has_seed = true;
        } else if (!strcmp(a, "--chat")) {
            o->chat = true;
        } else if (!strcmp(a, "--system")) {
            VALUE();
            o->system = v;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
        } else if (!strcmp(a, "--ids")) {
            o->print_ids = true;
        } else {
            fprintf(stderr, "dsinfer run: unknown option '%s'\n", a);
            return -1;
        }
#undef VALUE
    }
    if (!o->model) {
        fprintf(stderr, "dsinfer run: -m MODEL is required\n");
        return -1;
    }
    if (!o->prompt == !o->prompt_ids) {
        fprintf(stderr, "dsinfer run: give exactly one of -p TEXT and --prompt-ids IDS\n");
        return -1;
    }
    if ((o->chat || o->system) && !o->prompt) {
        fprintf(stderr, "dsinfer run: --chat and --system need -p TEXT\n");
        return -1;
    }
    if (o->system) o->chat = true;
    return 0;
}

static ds_sampler_params sampler_params(const run_opts *o, const ds_model *m) {
    ds_sampler_params p = ds_sampler_defaults(&m->sampling);
    p.presence_penalty = (float)o->presence;
    p.frequency_penalty = (float)o->frequency;
    if (o->temp >= 0) p.temperature = (float)o->temp;
    if (o->top_k >= 0) p.top_k = (int)o->top_k;
    if (o->top_p >= 0) p.top_p = (float)o->top_p;
    if (o->min_p >= 0) p.min_p = (float)o->min_p;
    if (o->repeat >= 0) p.repeat_penalty = (float)o->repeat;
    p.seed = o->has_seed ? (uint64_t)o->seed : ds_random_seed();
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool is_eos(const ds_model *m, int32_t id) {
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == id) return true;
    return false;
}

/* --chat: [system,] user messages through the model's chat template. */
static int chat_prompt(const tok_tokenizer *tok, const run_opts *o, tok_ids *ids, ds_err *err) {
    tpl_template *tpl;
    if (ds_chat_template(tok, &tpl, err)) return -1;
    json_t *msgs = json_array();
    if (o->system) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", o->system));
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", o->prompt));
    int rc = ds_chat_encode(tok, tpl, msgs, NULL, true, NULL, ids, NULL, err);
    json_decref(msgs);
    tpl_free(tpl);
    return rc;
}

/* Prints the text a generated id completes, as soon as it forms whole characters. */
static int emit(tok_stream *stream, int32_t id, ds_err *err) {
    const char *text;
    size_t len;
    if (tok_stream_push(stream, id, &text, &len, err)) return -1;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* Parses --prompt-ids against the vocabulary; exit status on failure. */
static int prompt_from_ids(const char *s, const ds_model *m, int32_t **ids, int *n) {
    int64_t *raw;
    if (arg_int_list(CMD, "--prompt-ids", s, &raw, n)) return 2;
    if (*n == 0) {
        fprintf(stderr, "dsinfer run: --prompt-ids is empty\n");
        free(raw);
        return 2;
    }
    *ids = malloc(sizeof **ids * (size_t)*n);
    if (!*ids) {
        fprintf(stderr, "dsinfer run: out of memory\n");
        free(raw);
        return 1;
    }
    for (int i = 0; i < *n; i++) {
        if (raw[i] >= m->hp.n_vocab) {
            fprintf(stderr, "dsinfer run: --prompt-ids: id %lld at position %d is not below vocab_size %d\n",
                    (long long)raw[i], i, m->hp.n_vocab);
            free(raw);
            free(*ids);
            return 2;
        }
        (*ids)[i] = (int32_t)raw[i];
    }
    free(raw);
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "(dsinfer run --help for usage)\n");
        return 2;
    }
    ds_err err = {0};
    ds_model *m;
    if (ds_model_load(o.model, &m, &err)) {
        fprintf(stderr, "dsinfer run: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    int32_t *tokens = NULL;
    int n_prompt = 0;
    ds_pool *pool = NULL;
    ds_sampler *sampler = NULL;
    ds_session sess = {0};
    tok_tokenizer *tok = NULL;
    tok_stream *stream = NULL;
    if (!o.print_ids || o.prompt) {
        if (ds_model_tokenizer(m, &tok, &err)) {
            fprintf(stderr, "dsinfer run: %s needs a tokenizer: %s%s\n", o.prompt ? "-p TEXT" : "text output", err.msg,
                    m->has_tokenizer ? "" : "; use --prompt-ids IDS with --ids");
            status = m->has_tokenizer ? 1 : 2;
            goto out;
        }
    }
    if (o.chat) {
        tok_ids enc = {0};
        if (chat_prompt(tok, &o, &enc, &err)) {
            fprintf(stderr, "dsinfer run: --chat: %s\n", err.msg);
            tok_ids_free(&enc);
            goto out;
        }
        tokens = enc.ids;
        n_prompt = (int)enc.n;
    } else if (o.prompt) {
        tok_ids enc = {0};
        if (tok_encode_prompt(tok, o.prompt, strlen(o.prompt), &enc, &err)) {
            fprintf(stderr, "dsinfer run: -p: %s\n", err.msg);
            tok_ids_free(&enc);
            goto out;
        }
        tokens = enc.ids;
        n_prompt = (int)enc.n;
        if (n_prompt == 0) {
            fprintf(stderr, "dsinfer run: -p: the prompt encodes to no tokens\n");
            status = 2;
            goto out;
        }
    } else if ((status = prompt_from_ids(o.prompt_ids, m, &tokens, &n_prompt)) != 0) {
        goto out;
    }
    if (!o.print_ids && !(stream = tok_stream_new(tok, true))) {
        fprintf(stderr, "dsinfer run: out of memory\n");
        goto out;
    }
    status = 1;
    int n_ctx = o.ctx ? (int)o.ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_prompt > n_ctx) {
        fprintf(stderr, "dsinfer run: the prompt has %d tokens but the context holds %d (-c)\n", n_prompt, n_ctx);
        goto out;
    }
    int64_t want_total = (int64_t)n_prompt + o.n_predict;
    int n_cache = (int)(want_total < n_ctx ? want_total : n_ctx);
    tokens = realloc(tokens, sizeof *tokens * (size_t)(n_cache + 1));
    pool = ds_pool_create(o.threads ? (int)o.threads : ds_cpu_count());
    ds_sampler_params sp = sampler_params(&o, m);
    sampler = ds_sampler_create(&sp, m->hp.n_vocab, m->n_vocab_tokens);
    if (!tokens || !pool || !sampler || ds_session_init(&sess, m, pool, n_cache, 256, &err)) {
        fprintf(stderr, "dsinfer run: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }

    double t0 = now_s();
    if (ds_session_feed(&sess, tokens, n_prompt, &err)) {
        fprintf(stderr, "dsinfer run: %s\n", err.msg);
        goto out;
    }
    double t_prefill = now_s() - t0, t_decode = 0;
    int n_gen = 0, n_decode_steps = 0;
    const char *stop = "length";
    while (n_gen < o.n_predict) {
        int32_t id = ds_sampler_sample(sampler, sess.logits, tokens, n_prompt + n_gen, n_prompt);
        tokens[n_prompt + n_gen++] = id;
        if (stream && emit(stream, id, &err)) {
            fprintf(stderr, "dsinfer run: %s\n", err.msg);
            goto out;
        }
        if (!o.ignore_eos && is_eos(m, id)) {
            stop = "eos";
            break;
        }
        if (n_gen == o.n_predict) break;
        if (n_prompt + n_gen >= n_ctx) {
            stop = "context";
            break;
        }
        double t1 = now_s();
        if (ds_session_feed(&sess, &id, 1, &err)) {
            fprintf(stderr, "dsinfer run: %s\n", err.msg);
            goto out;
        }
        t_decode += now_s() - t1;
        n_decode_steps++;
    }
    if (stream) {
        const char *text;
        size_t len;
        tok_stream_finish(stream, &text, &len);
        fwrite(text, 1, len, stdout);
        printf("\n");
    } else {
        for (int i = 0; i < n_prompt + n_gen; i++) printf(i ? " %d" : "%d", tokens[i]);
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr, "prompt_tokens=%d generated_tokens=%d stop=%s prefill_tok_s=%.2f decode_tok_s=%.2f seed=%llu\n",
            n_prompt, n_gen, stop, t_prefill > 0 ? n_prompt / t_prefill : 0.0,
            t_decode > 0 ? n_decode_steps / t_decode : 0.0, (unsigned long long)sp.seed);
    status = 0;
out:
    tok_stream_free(stream);
    tok_free(tok);
    ds_session_free(&sess);
    ds_sampler_free(sampler);
    ds_pool_destroy(pool);
    free(tokens);
    ds_model_free(m);
    return status;
}
