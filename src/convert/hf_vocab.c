/* tokenizer.ggml.* from a Hugging Face tokenizer.json, as llama.cpp's converter writes them:
 * model "gpt2" (byte-level BPE), the tokens in id order (ids the tokenizer leaves empty, up
 * to the embedding's rows, become "[PADn]" of type UNUSED), token types (1 normal, 3 control
 * for special added tokens, 4 user-defined for the other added tokens, 5 unused), merges as
 * "a b", BOS / EOS / padding ids, add_bos_token / add_eos_token and the chat template.
 *
 * tokenizer.ggml.pre names the pre-tokenizer by a name llama.cpp knows. llama.cpp's converter
 * picks it from a hash of the tokens its Hugging Face tokenizer gives for a test text; we pick
 * it the same way in spirit but check the result directly: for each candidate name the
 * metadata is written, read back and loaded as a GGUF tokenizer, and the first name whose
 * tokenizer encodes our test texts exactly as the Hugging Face tokenizer does wins (the list is
 * ordered most specific first). No match
 * is an error (a wrong name would tokenize differently without any other sign). */
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert_internal.h"
#include "tokenizer/tokenizer.h"

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

/* llama.cpp pre-tokenizer names dsinfer reads (tokenizer/load_gguf.c), the most specific
 * first: a vocabulary can hide the difference between two regexes on ordinary text (DeepSeek-V3
 * has no merge that would join a space to a CJK character, so llama-bpe's pieces give the same
 * tokens), and then the narrower name is the one its authors meant. */
static const char *const k_pre_names[] = {"deepseek-v3", "deepseek-llm", "deepseek-coder", "qwen2", "llama-bpe",
                                          "smollm"};

/* Texts on which the candidate pre-tokenizers differ: digit runs, contractions in both cases,
 * whitespace and newline runs, punctuation glued to letters, CJK and kana next to spaces and
 * Latin letters (deepseek-v3 and deepseek-llm cut them out), Hangul, Greek, Cyrillic, accents
 * (composed and not), full-width forms, emoji. */
static const char *const k_check_texts[] = {
    "Hello world! It's 3 o'clock, WE'LL see: 1 12 123 1234 12345 3.14159 and 1,000,000.",
    "  leading spaces\n\n\ttabs\r\n  trailing   \n",
    "def f(x):\n    return x**2 + 0x1F  # comment\n\n\n",
    "解释量子计算的基本原理。日本語のテキスト、カタカナ。한국어 문장입니다.",
    " 中文abc 日本語テストtest 한국어中文 ｆｕｌｌｗｉｄｔｈ１２３ ..abc $x 3abc",
    "Ελληνικά κείμενα, русский текст, café naïve e\xcc\x81 \xc3\xa9 Ω Å",
    "emoji 🦙🚀 mixed123abc ABC-def_ghi.jkl/mno?pqr \"quoted\" (paren) [bracket] {brace}",
    "'s 'S 't 're 've 'm 'll 'd ?!... ---- ==== ____ ****",
};

typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

/* Appends s and returns its offset; -1 when memory runs out. */
static int64_t sb_add(strbuf *b, const char *s, size_t len) {
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + len) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    return (int64_t)(b->n - len);
}

typedef struct vocab {
    gguf_str *tokens;
    int32_t *types;
    gguf_str *merges;
    uint64_t n_tokens, n_merges;
    strbuf pads;      /* "[PADn]" names */
    strbuf merge_text; /* merge strings */
} vocab;

static void vocab_free(vocab *v) {
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->pads.p);
    free(v->merge_text.p);
}

/* Tokens and types for ids 0..n_rows-1. */
static int build_tokens(vocab *v, const tok_tokenizer *t, json_t *added, int64_t n_rows, ds_err *err) {
    v->n_tokens = (uint64_t)n_rows;
    v->tokens = calloc((size_t)n_rows, sizeof *v->tokens);
    v->types = calloc((size_t)n_rows, sizeof *v->types);
    int64_t *pad_off = calloc((size_t)n_rows, sizeof *pad_off);
    if (!v->tokens || !v->types || !pad_off) {
        free(pad_off);
        return ds_errf(err, "out of memory for %lld tokens", (long long)n_rows);
    }
    for (int64_t i = 0; i < n_rows; i++) {
        const char *s = i < tok_n_vocab(t) ? tok_token_text(t, (int32_t)i) : NULL;
        pad_off[i] = -1;
        if (s) {
            v->tokens[i] = (gguf_str){s, strlen(s)};
            v->types[i] = TOKEN_NORMAL;
            continue;
        }
        char name[32];
        int len = snprintf(name, sizeof name, "[PAD%lld]", (long long)i);
        if ((pad_off[i] = sb_add(&v->pads, name, (size_t)len)) < 0) {
            free(pad_off);
            return ds_errf(err, "out of memory");
        }
        v->tokens[i].len = (uint64_t)len;
        v->types[i] = TOKEN_UNUSED;
    }
    for (int64_t i = 0; i < n_rows; i++)
        if (pad_off[i] >= 0) v->tokens[i].ptr = v->pads.p + pad_off[i];
    free(pad_off);
    size_t k;
    json_t *a;
    json_array_foreach(added, k, a) {
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        if (id >= 0 && id < n_rows && v->types[id] == TOKEN_NORMAL)
            v->types[id] = tok_is_special(t, (int32_t)id) ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
    }
    return 0;
}

/* Merges as "a b" strings, from strings or [a, b] pairs. */
static int build_merges(vocab *v, json_t *merges, const char *file, ds_err *err) {
    size_t n = json_array_size(merges);
    v->merges = calloc(n ? n : 1, sizeof *v->merges);
    size_t *off = calloc(n ? n : 1, sizeof *off);
    if (!v->merges || !off) {
        free(off);
        return ds_errf(err, "out of memory for %zu merges", n);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(merges, i);
        int64_t o;
        if (json_is_string(m)) {
            o = sb_add(&v->merge_text, json_string_value(m), json_string_length(m));
            v->merges[i].len = json_string_length(m);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
            o = sb_add(&v->merge_text, json_string_value(l), json_string_length(l));
            if (o >= 0 && (sb_add(&v->merge_text, " ", 1) < 0 || sb_add(&v->merge_text, json_string_value(r), json_string_length(r)) < 0))
                o = -1;
            v->merges[i].len = json_string_length(l) + 1 + json_string_length(r);
        } else {
            free(off);
            return ds_errf(err, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", file, i);
        }
        if (o < 0) {
            free(off);
            return ds_errf(err, "out of memory");
        }
        off[i] = (size_t)o;
    }
    for (size_t i = 0; i < n; i++) v->merges[i].ptr = v->merge_text.p + off[i];
    v->n_merges = n;
    free(off);
    return 0;
}

/* Serializes w's metadata to memory and parses it back: what a reader of the file will see. */
static int read_back(gguf_writer *w, char **mem, gguf_file *g, ds_err *err) {
    size_t len = 0;
    *mem = NULL;
    FILE *f = open_memstream(mem, &len);
    if (!f) return ds_errf(err, "out of memory");
    int rc = gguf_write_header(w, f, err) || gguf_write_finish(w, f, err) ? -1 : 0;
    fclose(f);
    if (rc == 0) rc = gguf_parse((const uint8_t *)*mem, len, "tokenizer metadata", g, err);
    if (rc != 0) {
        free(*mem);
        *mem = NULL;
    }
    return rc;
}

static int same_encoding(const tok_tokenizer *a, const tok_tokenizer *b, bool *same, ds_err *err) {
    *same = true;
    for (size_t i = 0; *same && i < sizeof k_check_texts / sizeof k_check_texts[0]; i++) {
        tok_ids x = {0}, y = {0};
        const char *s = k_check_texts[i];
        int rc = tok_encode(a, s, strlen(s), TOK_ADDED_ALL, true, &x, err) ||
                 tok_encode(b, s, strlen(s), TOK_ADDED_ALL, true, &y, err);
        *same = rc == 0 && x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof *x.ids);
        tok_ids_free(&x);
        tok_ids_free(&y);
        if (rc) return -1;
    }
    return 0;
}

/* Sets tokenizer.ggml.pre in vw to the first candidate that tokenizes like hf. */
static int choose_pre(gguf_writer *vw, const tok_tokenizer *hf, const char *file, ds_err *err) {
    ds_err last = {{0}};
    for (size_t i = 0; i < sizeof k_pre_names / sizeof k_pre_names[0]; i++) {
        const char *name = k_pre_names[i];
        if (gguf_set_str(vw, "tokenizer.ggml.pre", name, strlen(name), err)) return -1;
        char *mem;
        gguf_file g;
        tok_tokenizer *t = NULL;
        if (read_back(vw, &mem, &g, err)) return -1;
        bool same = false;
        int rc = tok_load_gguf(&g, &t, &last);
        if (rc == 0) rc = same_encoding(hf, t, &same, err);
        tok_free(t);
        gguf_close(&g);
        free(mem);
        if (rc == 0 && same) return 0;
    }
    return ds_errf(err, "%s: no pre-tokenizer known to llama.cpp and dsinfer (deepseek-v3, deepseek-llm, "
                   "deepseek-coder, qwen2, llama-bpe, smollm) tokenizes like this tokenizer%s%s", file,
                   last.msg[0] ? "; last error: " : "", last.msg);
}

/* The id of tokenizer_config.json's pad_token, or -1. */
static int32_t pad_id(const char *dir, const tok_tokenizer *t) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, NULL);
    json_t *pad = json_object_get(cfg, "pad_token");
    if (json_is_object(pad)) pad = json_object_get(pad, "content");
    int32_t id = json_is_string(pad) ? tok_token_id(t, json_string_value(pad)) : -1;
    json_decref(cfg);
    return id;
}

/* Whether encoding with special tokens appends EOS. */
static int adds_eos(const tok_tokenizer *t, bool *out, ds_err *err) {
    tok_ids with = {0}, without = {0};
    int rc = tok_encode(t, "a", 1, TOK_ADDED_ALL, true, &with, err) || tok_encode(t, "a", 1, TOK_ADDED_ALL, false, &without, err);
    *out = rc == 0 && with.n > without.n && with.ids[with.n - 1] == tok_eos_id(t);
    tok_ids_free(&with);
    tok_ids_free(&without);
    return rc ? -1 : 0;
}

static int set_id(gguf_writer *w, const char *key, int64_t id, ds_err *err) {
    return id >= 0 ? gguf_set_u32(w, key, (uint32_t)id, err) : 0;
}

static int write_vocab(gguf_writer *vw, const vocab *v, const tok_tokenizer *t, const char *dir, ds_err *err) {
    bool add_eos;
    const char *tpl = tok_chat_template(t);
    if (adds_eos(t, &add_eos, err)) return -1;
    return gguf_set_str(vw, "tokenizer.ggml.model", "gpt2", 4, err) ||
                   gguf_set_str_array(vw, "tokenizer.ggml.tokens", v->tokens, v->n_tokens, err) ||
                   gguf_set_array(vw, "tokenizer.ggml.token_type", GGUF_INT32, v->types, v->n_tokens, err) ||
                   gguf_set_str_array(vw, "tokenizer.ggml.merges", v->merges, v->n_merges, err) ||
                   set_id(vw, "tokenizer.ggml.bos_token_id", tok_bos_id(t), err) ||
                   set_id(vw, "tokenizer.ggml.eos_token_id", tok_eos_id(t), err) ||
                   set_id(vw, "tokenizer.ggml.padding_token_id", pad_id(dir, t), err) ||
                   gguf_set_bool(vw, "tokenizer.ggml.add_bos_token", tok_adds_bos(t), err) ||
                   gguf_set_bool(vw, "tokenizer.ggml.add_eos_token", add_eos, err) ||
                   (tpl && gguf_set_str(vw, "tokenizer.chat_template", tpl, strlen(tpl), err))
               ? -1
               : 0;
}

/* Copies every key of src into w. */
static int copy_keys(gguf_writer *src, gguf_writer *w, ds_err *err) {
    char *mem;
    gguf_file g;
    if (read_back(src, &mem, &g, err)) return -1;
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < g.n_kv; i++) rc = gguf_set_kv(w, &g.kv[i], err);
    gguf_close(&g);
    free(mem);
    return rc;
}

int cv_hf_vocab(const char *dir, const ds_model *m, gguf_writer *w, FILE *log, ds_err *err) {
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        return ds_errf(err, "%s: path too long", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (log) fprintf(log, "note: %s has no tokenizer.json: the GGUF gets no vocabulary (llama.cpp needs one)\n", dir);
        return set_id(w, "tokenizer.ggml.bos_token_id", m->bos_id, err) ||
                       set_id(w, "tokenizer.ggml.eos_token_id", m->n_eos ? m->eos_ids[0] : -1, err)
                   ? -1
                   : 0;
    }
    tok_tokenizer *t = NULL;
    json_t *root = NULL;
    gguf_writer *vw = gguf_writer_new();
    vocab v = {0};
    int rc = -1;
    json_error_t je;
    if (!vw) {
        ds_errf(err, "out of memory");
        goto done;
    }
    if (tok_load(dir, &t, err)) goto done;
    if (tok_n_vocab(t) > m->hp.n_vocab) {
        ds_errf(err, "%s: the tokenizer has %d ids but the embedding has only %d rows", path, tok_n_vocab(t), m->hp.n_vocab);
        goto done;
    }
    if (!(root = json_load_file(path, JSON_ALLOW_NUL, &je))) {
        ds_errf(err, "%s: %s (line %d)", path, je.text, je.line);
        goto done;
    }
    if (build_tokens(&v, t, json_object_get(root, "added_tokens"), m->hp.n_vocab, err) ||
        build_merges(&v, json_object_get(json_object_get(root, "model"), "merges"), path, err) ||
        write_vocab(vw, &v, t, dir, err) || choose_pre(vw, t, path, err) || copy_keys(vw, w, err))
        goto done;
    rc = 0;
done:
    vocab_free(&v);
    json_decref(root);
    gguf_writer_free(vw);
    tok_free(t);
    return rc;
}
