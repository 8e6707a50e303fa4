/* load_hf.c — a tok_tokenizer from a Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * tokenizer.json gives the model (BPE: vocab, merges as "a b" strings or [a, b] pairs,
 * ignore_merges, unk_token), added_tokens with their flags, normalizer, pre_tokenizer,
 * post_processor and decoder. tokenizer_config.json, when present beside it, gives what
 * transformers adds on top: bos/eos tokens (strings or AddedToken dicts), add_bos_token /
 * add_eos_token (which replace the post-processor for Llama-class tokenizers, as
 * LlamaTokenizerFast.update_post_processor does), clean_up_tokenization_spaces,
 * added_tokens_decoder flags and the chat template.
 *
 * Anything we do not implement is an error naming it, never a silent approximation. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_internal.h"

typedef struct hf_ctx {
    const char *file; /* for messages */
    tok_tokenizer *t;
    ds_err *err;
} hf_ctx;

static const char *type_of(json_t *o) {
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static bool get_bool(json_t *o, const char *key, bool dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* ---- normalizer ---- */

static int add_norm(hf_ctx *c, tok_norm_kind k) {
    tok_norm_kind *n = realloc(c->t->norms, (c->t->n_norms + 1) * sizeof *n);
    if (!n) return ds_errf(c->err, "%s: out of memory", c->file);
    c->t->norms = n;
    n[c->t->n_norms++] = k;
    return 0;
}

static int load_normalizer(hf_ctx *c, json_t *n) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = type_of(n);
    if (!ty) return ds_errf(c->err, "%s: normalizer without a type", c->file);
    if (!strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return ds_errf(c->err, "%s: Sequence normalizer without a list", c->file);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) if (load_normalizer(c, e)) return -1;
        return 0;
    }
    if (!strcmp(ty, "NFC")) return add_norm(c, TOK_NORM_NFC);
    if (!strcmp(ty, "NFD")) return add_norm(c, TOK_NORM_NFD);
    if (!strcmp(ty, "NFKC")) return add_norm(c, TOK_NORM_NFKC);
    if (!strcmp(ty, "NFKD")) return add_norm(c, TOK_NORM_NFKD);
    return ds_errf(c->err, "%s: unsupported normalizer type '%s'", c->file, ty);
}

/* ---- pre-tokenizer ---- */

static int add_pretok(hf_ctx *c, tok_pretok p) {
    tok_pretok *n = realloc(c->t->pretoks, (c->t->n_pretoks + 1) * sizeof *n);
    if (!n) {
        pcre2_code_free(p.re);
        return ds_errf(c->err, "%s: out of memory", c->file);
    }
    c->t->pretoks = n;
    n[c->t->n_pretoks++] = p;
    return 0;
}

/* The GPT-2 split regex of HF's ByteLevel pre-tokenizer (use_regex: true). */
static const char k_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pretok(hf_ctx *c, json_t *p, bool *saw_bytelevel) {
    const char *ty = type_of(p);
    if (!ty) return ds_errf(c->err, "%s: pre_tokenizer without a type", c->file);
    if (*saw_bytelevel)
        return ds_errf(c->err, "%s: pre_tokenizer '%s' after ByteLevel is not supported", c->file, ty);
    if (!strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return ds_errf(c->err, "%s: Sequence pre_tokenizer without a list", c->file);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) if (load_pretok(c, e, saw_bytelevel)) return -1;
        return 0;
    }
    tok_pretok pt = {.kind = TOK_PT_SPLIT, .behavior = TOK_SPLIT_ISOLATED};
    if (!strcmp(ty, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        json_t *rx = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
        json_t *src = json_is_string(rx) ? rx : lit;
        if (!json_is_string(src)) return ds_errf(c->err, "%s: Split without a Regex or String pattern", c->file);
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!beh) return ds_errf(c->err, "%s: Split without a behavior", c->file);
        if (!strcmp(beh, "Isolated")) pt.behavior = TOK_SPLIT_ISOLATED;
        else if (!strcmp(beh, "Removed")) pt.behavior = TOK_SPLIT_REMOVED;
        else if (!strcmp(beh, "MergedWithPrevious")) pt.behavior = TOK_SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) pt.behavior = TOK_SPLIT_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) pt.behavior = TOK_SPLIT_CONTIGUOUS;
        else return ds_errf(c->err, "%s: unsupported Split behavior '%s'", c->file, beh);
        pt.invert = get_bool(p, "invert", false);
        if (tok_regex_compile(json_string_value(src), json_string_length(src), src == lit, &pt.re, c->err))
            return ds_err_wrap(c->err, "%s", c->file);
        return add_pretok(c, pt);
    }
    if (!strcmp(ty, "Digits")) {
        /* HF splits on char::is_numeric (Unicode N): one digit each, or runs (Contiguous) */
        const char *rx = get_bool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+";
        if (tok_regex_compile(rx, strlen(rx), false, &pt.re, c->err)) return -1;
        return add_pretok(c, pt);
    }
    if (!strcmp(ty, "ByteLevel")) {
        pt.kind = TOK_PT_BYTELEVEL;
        pt.add_prefix_space = get_bool(p, "add_prefix_space", true);
        if (get_bool(p, "use_regex", true) &&
            tok_regex_compile(k_gpt2_regex, strlen(k_gpt2_regex), false, &pt.re, c->err))
            return -1;
        *saw_bytelevel = true;
        return add_pretok(c, pt);
    }
    return ds_errf(c->err, "%s: unsupported pre_tokenizer type '%s'", c->file, ty);
}

/* ---- post-processor ---- */

static int set_post(hf_ctx *c, const int32_t *pre, uint32_t npre, const int32_t *suf, uint32_t nsuf) {
    tok_tokenizer *t = c->t;
    free(t->post_prefix);
    free(t->post_suffix);
    t->post_prefix = malloc((npre + 1) * sizeof *pre);
    t->post_suffix = malloc((nsuf + 1) * sizeof *suf);
    if (!t->post_prefix || !t->post_suffix) return ds_errf(c->err, "%s: out of memory", c->file);
    if (npre) memcpy(t->post_prefix, pre, npre * sizeof *pre);
    if (nsuf) memcpy(t->post_suffix, suf, nsuf * sizeof *suf);
    t->n_post_prefix = npre;
    t->n_post_suffix = nsuf;
    return 0;
}

static int load_post(hf_ctx *c, json_t *p) {
    if (!p || json_is_null(p)) return 0;
    const char *ty = type_of(p);
    if (!ty) return ds_errf(c->err, "%s: post_processor without a type", c->file);
    if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(p, "processors");
        if (!json_is_array(list)) return ds_errf(c->err, "%s: Sequence post_processor without a list", c->file);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) if (load_post(c, e)) return -1;
        return 0;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
        if (!json_is_array(single)) return ds_errf(c->err, "%s: TemplateProcessing without 'single'", c->file);
        int32_t pre[64], suf[64];
        uint32_t npre = 0, nsuf = 0;
        bool seen_seq = false;
        size_t i;
        json_t *e;
        json_array_foreach(single, i, e) {
            json_t *st = json_object_get(e, "SpecialToken");
            if (json_object_get(e, "Sequence")) {
                if (seen_seq) return ds_errf(c->err, "%s: TemplateProcessing with two sequences in 'single'", c->file);
                seen_seq = true;
                continue;
            }
            if (!st) return ds_errf(c->err, "%s: TemplateProcessing piece is neither SpecialToken nor Sequence", c->file);
            const char *name = json_string_value(json_object_get(st, "id"));
            json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
            if (!name || !json_is_array(ids))
                return ds_errf(c->err, "%s: TemplateProcessing special token '%s' is not defined", c->file,
                               name ? name : "?");
            size_t k;
            json_t *v;
            json_array_foreach(ids, k, v) {
                uint32_t *cnt = seen_seq ? &nsuf : &npre;
                if (*cnt >= 64 || !json_is_integer(v))
                    return ds_errf(c->err, "%s: bad TemplateProcessing ids for '%s'", c->file, name);
                (seen_seq ? suf : pre)[(*cnt)++] = (int32_t)json_integer_value(v);
            }
        }
        return set_post(c, pre, npre, suf, nsuf);
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        json_t *cls = json_array_get(json_object_get(p, "cls"), 1);
        json_t *sep = json_array_get(json_object_get(p, "sep"), 1);
        if (!json_is_integer(cls) || !json_is_integer(sep))
            return ds_errf(c->err, "%s: %s without cls/sep ids", c->file, ty);
        int32_t a = (int32_t)json_integer_value(cls), b = (int32_t)json_integer_value(sep);
        return set_post(c, &a, 1, &b, 1);
    }
    return ds_errf(c->err, "%s: unsupported post_processor type '%s'", c->file, ty);
}

/* ---- decoder ---- */

static int check_decoder(hf_ctx *c, json_t *d) {
    if (!d || json_is_null(d)) return ds_errf(c->err, "%s: no decoder (a ByteLevel decoder is required)", c->file);
    const char *ty = type_of(d);
    if (ty && !strcmp(ty, "ByteLevel")) return 0;
    if (ty && !strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(d, "decoders");
        size_t i;
        json_t *e;
        if (!json_is_array(list) || json_array_size(list) == 0)
            return ds_errf(c->err, "%s: Sequence decoder without a list", c->file);
        json_array_foreach(list, i, e) if (check_decoder(c, e)) return -1;
        return 0;
    }
    return ds_errf(c->err, "%s: unsupported decoder type '%s'", c->file, ty ? ty : "?");
}

/* ---- model ---- */

static int load_bpe(hf_ctx *c, json_t *model, json_t *added) {
    tok_tokenizer *t = c->t;
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE")) return ds_errf(c->err, "%s: unsupported model type '%s'", c->file, ty);
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges))
        return ds_errf(c->err, "%s: BPE model without vocab and merges", c->file);
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) != 0.0)
        return ds_errf(c->err, "%s: BPE dropout is not supported", c->file);
    if (get_bool(model, "byte_fallback", false))
        return ds_errf(c->err, "%s: BPE byte_fallback is not supported", c->file);
    const char *pfx = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *sfx = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((pfx && *pfx) || (sfx && *sfx))
        return ds_errf(c->err, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported", c->file);
    t->ignore_merges = get_bool(model, "ignore_merges", false);
    t->fuse_unk = get_bool(model, "fuse_unk", false);

    /* id space: the largest id of the vocab and of the added tokens */
    int64_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX - 1)
            return ds_errf(c->err, "%s: vocab entry '%s' has a bad id", c->file, key);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        json_t *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX - 1 ||
            !json_is_string(json_object_get(a, "content")))
            return ds_errf(c->err, "%s: added_tokens[%zu] needs an id and a content", c->file, i);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (tok_set_size(t, (int32_t)(max_id + 1), c->err)) return -1;
    json_object_foreach(vocab, key, v)
        if (tok_set_token(t, (int32_t)json_integer_value(v), key, strlen(key), TOKF_MODEL, c->err)) return -1;
    json_array_foreach(added, i, a) {
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        json_t *content = json_object_get(a, "content");
        const char *s = json_string_value(content);
        size_t n = json_string_length(content);
        uint8_t f = TOKF_ADDED;
        if ((t->flags[id] & TOKF_MODEL) && t->text_len[id] == n && !memcmp(t->blob.p + t->text_off[id], s, n))
            f |= TOKF_MODEL;
        if (tok_set_token(t, id, s, n, f, c->err)) return -1;
    }
    if (tok_build_maps(t, c->err)) return -1;

    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk) {
        t->unk_id = tok_token_id(t, unk);
        if (t->unk_id < 0) return ds_errf(c->err, "%s: unk_token '%s' is not in the vocab", c->file, unk);
    }

    /* merges */
    if (tok_merges_reserve(&t->merges, json_array_size(merges))) return ds_errf(c->err, "%s: out of memory", c->file);
    tok_buf cat = {0};
    json_t *m;
    uint32_t rank = 0;
    json_array_foreach(merges, i, m) {
        const char *l, *r;
        size_t ll, rl;
        if (json_is_string(m)) {
            l = json_string_value(m);
            const char *sp = strchr(l, ' ');
            if (sp == NULL || strchr(sp + 1, ' ') != NULL) {
                if (!strncmp(l, "#version", 8)) continue;
                tok_buf_free(&cat);
                return ds_errf(c->err, "%s: merges[%zu] '%s' is not two tokens separated by one space", c->file, i, l);
            }
            ll = (size_t)(sp - l);
            r = sp + 1;
            rl = strlen(r);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0));
            ll = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1));
            rl = json_string_length(json_array_get(m, 1));
        } else {
            tok_buf_free(&cat);
            return ds_errf(c->err, "%s: merges[%zu] is neither \"a b\" nor [a, b]", c->file, i);
        }
        int32_t ia = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, l, ll);
        int32_t ib = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, r, rl);
        cat.n = 0;
        if (tok_buf_append(&cat, l, ll) || tok_buf_append(&cat, r, rl)) {
            tok_buf_free(&cat);
            return ds_errf(c->err, "%s: out of memory", c->file);
        }
        int32_t ir = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, cat.p, cat.n);
        if (ia < 0 || ib < 0 || ir < 0) {
            int rc = ds_errf(c->err, "%s: merges[%zu] '%.*s %.*s' uses a token missing from the vocab",
                             c->file, i, (int)ll, l, (int)rl, r);
            tok_buf_free(&cat);
            return rc;
        }
        if (tok_merge_put(&t->merges, ia, ib, rank++, ir)) {
            tok_buf_free(&cat);
            return ds_errf(c->err, "%s: out of memory", c->file);
        }
    }
    tok_buf_free(&cat);
    return 0;
}

/* Flags of one added token: tokenizer_config's added_tokens_decoder entry wins over
 * tokenizer.json's, as transformers re-adds tokens whose flags differ. */
static int load_added_flags(hf_ctx *c, json_t *added, json_t *cfg_decoder) {
    tok_tokenizer *t = c->t;
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        json_t *o = a, *alt = json_object_get(cfg_decoder, key);
        if (json_is_object(alt)) {
            json_t *ct = json_object_get(alt, "content");
            if (json_is_string(ct) && json_string_length(ct) == t->text_len[id] &&
                !memcmp(json_string_value(ct), t->blob.p + t->text_off[id], t->text_len[id]))
                o = alt;
        }
        bool special = get_bool(o, "special", false);
        if (tok_add_added(t, id, special, get_bool(o, "lstrip", false), get_bool(o, "rstrip", false),
                          get_bool(o, "normalized", !special), get_bool(o, "single_word", false), c->err))
            return -1;
    }
    return 0;
}

/* bos_token / eos_token in tokenizer_config: a string or an AddedToken dict. */
static char *token_content(json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static bool is_llama_class(const char *cls) {
    static const char *const k[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                    "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
    for (size_t i = 0; cls && i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(cls, k[i])) return true;
    return false;
}

static int load_config(hf_ctx *c, json_t *cfg) {
    tok_tokenizer *t = c->t;
    if (!cfg) return 0;
    t->bos_text = token_content(json_object_get(cfg, "bos_token"));
    t->eos_text = token_content(json_object_get(cfg, "eos_token"));
    if (t->bos_text) t->bos_id = tok_token_id(t, t->bos_text);
    if (t->eos_text) t->eos_id = tok_token_id(t, t->eos_text);
    t->clean_up_spaces = get_bool(cfg, "clean_up_tokenization_spaces", false);

    json_t *tpl = json_object_get(cfg, "chat_template");
    if (json_is_string(tpl)) t->chat_template = strdup(json_string_value(tpl));
    else if (json_is_array(tpl)) {
        size_t i;
        json_t *e;
        json_array_foreach(tpl, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *body = json_string_value(json_object_get(e, "template"));
            if (name && body && !strcmp(name, "default")) t->chat_template = strdup(body);
        }
    }

    const char *cls = json_string_value(json_object_get(cfg, "tokenizer_class"));
    if (is_llama_class(cls)) {
        /* LlamaTokenizerFast.update_post_processor: "[bos] $A [eos]" by add_bos/add_eos */
        bool add_bos = get_bool(cfg, "add_bos_token", true), add_eos = get_bool(cfg, "add_eos_token", false);
        int32_t pre = t->bos_id, suf = t->eos_id;
        if (add_bos && pre < 0) return ds_errf(c->err, "%s: add_bos_token is true but there is no bos_token", c->file);
        if (add_eos && suf < 0) return ds_errf(c->err, "%s: add_eos_token is true but there is no eos_token", c->file);
        return set_post(c, &pre, add_bos ? 1 : 0, &suf, add_eos ? 1 : 0);
    }
    return 0;
}

/* tokenizer_config.json may hold integers too big for jansson (model_max_length = 1e30):
 * there `as_real` reads every number as a double; nothing we use from it is a number. */
static json_t *load_json(const char *path, bool as_real, ds_err *err) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL | (as_real ? JSON_DECODE_INT_AS_REAL : 0), &je);
    if (!j) ds_errf(err, "%s: %s (line %d, column %d)", path, je.text, je.line, je.column);
    return j;
}

static int load_hf_files(const char *json_path, const char *cfg_path, tok_tokenizer **out, ds_err *err) {
    *out = NULL;
    int rc = -1;
    json_t *root = load_json(json_path, false, err), *cfg = NULL;
    if (!root) return -1;
    struct stat st;
    if (cfg_path && stat(cfg_path, &st) == 0) {
        cfg = load_json(cfg_path, true, err);
        if (!cfg) {
            json_decref(root);
            return -1;
        }
    }
    tok_tokenizer *t = tok_alloc();
    if (!t) {
        ds_errf(err, "%s: out of memory", json_path);
        goto done;
    }
    hf_ctx c = {json_path, t, err};
    json_t *added = json_object_get(root, "added_tokens");
    json_t *empty = json_array();
    if (!json_is_array(added)) added = empty;
    bool bytelevel = false;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (check_decoder(&c, json_object_get(root, "decoder")) ||
        load_normalizer(&c, json_object_get(root, "normalizer")) ||
        (pre && !json_is_null(pre) && load_pretok(&c, pre, &bytelevel)) ||
        load_bpe(&c, json_object_get(root, "model"), added) ||
        load_added_flags(&c, added, json_object_get(cfg, "added_tokens_decoder")) ||
        load_post(&c, json_object_get(root, "post_processor"))) {
        json_decref(empty);
        goto done;
    }
    json_decref(empty);
    if (!bytelevel) {
        ds_errf(err, "%s: only byte-level BPE is supported (no ByteLevel pre_tokenizer)", json_path);
        goto done;
    }
    if (tok_build_added(t, err)) goto done;
    if (cfg) {
        c.file = cfg_path;
        if (load_config(&c, cfg)) goto done;
    }
    *out = t;
    t = NULL;
    rc = 0;
done:
    tok_free(t);
    json_decref(root);
    json_decref(cfg);
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int tok_load(const char *path, tok_tokenizer **out, ds_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return ds_errf(err, "%s: no such file or directory", path);
    if (!S_ISDIR(st.st_mode) && ends_with(path, ".gguf")) {
        gguf_file f;
        if (gguf_open(path, &f, err)) return -1;
        int rc = tok_load_gguf(&f, out, err);
        gguf_close(&f);
        return rc;
    }
    size_t n = strlen(path);
    char *json = malloc(n + 32), *cfg = malloc(n + 32);
    if (!json || !cfg) {
        free(json);
        free(cfg);
        return ds_errf(err, "out of memory");
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(json, n + 32, "%s/tokenizer.json", path);
        snprintf(cfg, n + 32, "%s/tokenizer_config.json", path);
        if (stat(json, &st) != 0) {
            ds_errf(err, "%s: no tokenizer.json in this directory", path);
            free(json);
            free(cfg);
            return -1;
        }
    } else {
        snprintf(json, n + 32, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(cfg, n + 32, "%.*s/tokenizer_config.json", (int)(slash - path), path);
        else snprintf(cfg, n + 32, "tokenizer_config.json");
    }
    int rc = load_hf_files(json, cfg, out, err);
    free(json);
    free(cfg);
    return rc;
}
