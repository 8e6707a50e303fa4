/* load_gguf.c — a tok_tokenizer from a GGUF vocabulary (tokenizer.ggml.*).
 *
 * GGUF keeps the tokens (byte-level strings for regular tokens, literal text for added ones),
 * their types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), the merges
 * as "a b" strings and the name of the pre-tokenizer (tokenizer.ggml.pre). The regexes for a
 * name are those of the model's Hugging Face tokenizer.json, as transcribed in llama.cpp's
 * llama-vocab.cpp and MODELS.md §8.1 (we keep HF's original forms, e.g. (?i:'s|...), where
 * llama.cpp adapted them to its own regex engine). Control tokens become special added tokens
 * and user-defined ones non-special added tokens, which is how they behave in HF. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* Non-ASCII characters are written as PCRE2 \x{...} escapes on purpose: the deepseek-llm
 * class holds characters that NFC maps to others (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126,
 * U+212A), and any tool that normalizes text turns its ranges upside down (MODELS.md's copy
 * shows that damage: "\x{1F5F}-\x{3CE}"). */
/* clang-format off */
static const char *const k_re_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
    NULL};
static const char *const k_re_deepseek_coder[] = {
    "[\\r\\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
    NULL};
static const char *const k_re_deepseek_v3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const k_re_qwen2[] = {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", NULL};
static const char *const k_re_llama3[] = {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", NULL};
static const char *const k_re_smollm[] = {"\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", NULL};
/* clang-format on */

typedef struct gguf_pre {
    const char *name;
    const char *const *regexes;
    bool nfc;           /* HF's Qwen2 tokenizer normalizes to NFC */
    bool ignore_merges; /* llama3 */
    bool add_bos;       /* llama.cpp's default when tokenizer.ggml.add_bos_token is absent */
    bool clean_up;      /* llama.cpp's clean_spaces (= the HF file's clean_up_tokenization_spaces) */
} gguf_pre;

static const gguf_pre k_pres[] = {
    {"deepseek-llm", k_re_deepseek_llm, false, false, false, false},
    {"deepseek-coder", k_re_deepseek_coder, false, false, false, false},
    {"deepseek-v3", k_re_deepseek_v3, false, false, false, false},
    {"qwen2", k_re_qwen2, true, false, false, false},
    {"deepseek-r1-qwen", k_re_qwen2, true, false, false, false},
    {"llama-bpe", k_re_llama3, false, true, true, true},
    {"llama3", k_re_llama3, false, true, true, true},
    {"llama-v3", k_re_llama3, false, true, true, true},
    {"smollm", k_re_smollm, false, false, false, false},
};

enum { GGUF_TOK_NORMAL = 1, GGUF_TOK_UNKNOWN = 2, GGUF_TOK_CONTROL = 3, GGUF_TOK_USER = 4,
       GGUF_TOK_UNUSED = 5, GGUF_TOK_BYTE = 6 };

static int find_pre(const char *name, size_t n, const gguf_pre **out, ds_err *err) {
    for (size_t i = 0; i < sizeof k_pres / sizeof k_pres[0]; i++)
        if (strlen(k_pres[i].name) == n && !memcmp(k_pres[i].name, name, n)) {
            *out = &k_pres[i];
            return 0;
        }
    char list[512] = "";
    for (size_t i = 0; i < sizeof k_pres / sizeof k_pres[0]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, k_pres[i].name, sizeof list - strlen(list) - 1);
    }
    return ds_errf(err, "unknown GGUF pre-tokenizer '%.*s' (tokenizer.ggml.pre); supported: %s", (int)n,
                   name, list);
}

static int setup_pipeline(tok_tokenizer *t, const gguf_pre *pre, ds_err *err) {
    if (pre->nfc) {
        t->norms = malloc(sizeof *t->norms);
        if (!t->norms) return ds_errf(err, "out of memory");
        t->norms[0] = TOK_NORM_NFC;
        t->n_norms = 1;
    }
    size_t n = 0;
    while (pre->regexes[n]) n++;
    t->pretoks = calloc(n + 1, sizeof *t->pretoks);
    if (!t->pretoks) return ds_errf(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tok_pretok *p = &t->pretoks[t->n_pretoks];
        p->kind = TOK_PT_SPLIT;
        p->behavior = TOK_SPLIT_ISOLATED;
        if (tok_regex_compile(pre->regexes[i], strlen(pre->regexes[i]), false, &p->re, err)) return -1;
        t->n_pretoks++;
    }
    /* ByteLevel without regex and without prefix space: the byte mapping only */
    t->pretoks[t->n_pretoks++] = (tok_pretok){.kind = TOK_PT_BYTELEVEL};
    t->ignore_merges = pre->ignore_merges;
    t->clean_up_spaces = pre->clean_up;
    return 0;
}

static char *dup_str(gguf_str s) {
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
    }
    return p;
}

int tok_load_gguf(const gguf_file *f, tok_tokenizer **out, ds_err *err) {
    *out = NULL;
    const char *label = f->label ? f->label : "gguf";
    gguf_str model, pre_name, tpl;
    gguf_str *tokens = NULL, *merges = NULL;
    int64_t *types = NULL;
    uint64_t n_tokens = 0, n_merges = 0, n_types = 0;
    tok_buf cat = {0};
    int rc = -1;
    tok_tokenizer *t = NULL;

    int r = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (r < 0) goto fail;
    if (r == 0) {
        ds_errf(err, "no tokenizer in this file (tokenizer.ggml.model is missing)");
        goto fail;
    }
    if (model.len != 4 || memcmp(model.ptr, "gpt2", 4)) {
        ds_errf(err, "unsupported GGUF tokenizer model '%.*s' (only gpt2 byte-level BPE)", (int)model.len,
                model.ptr);
        goto fail;
    }
    r = gguf_get_str(f, "tokenizer.ggml.pre", &pre_name, err);
    if (r < 0) goto fail;
    if (r == 0) {
        ds_errf(err, "tokenizer.ggml.pre is missing: the pre-tokenizer is unknown");
        goto fail;
    }
    const gguf_pre *pre = NULL;
    if (find_pre(pre_name.ptr, pre_name.len, &pre, err)) goto fail;
    if ((r = gguf_get_str_array(f, "tokenizer.ggml.tokens", &tokens, &n_tokens, err)) != 1) {
        if (r == 0) ds_errf(err, "tokenizer.ggml.tokens is missing");
        goto fail;
    }
    if ((r = gguf_get_str_array(f, "tokenizer.ggml.merges", &merges, &n_merges, err)) != 1) {
        if (r == 0) ds_errf(err, "tokenizer.ggml.merges is missing");
        goto fail;
    }
    r = gguf_get_int_array(f, "tokenizer.ggml.token_type", &types, &n_types, err);
    if (r < 0) goto fail;
    if (r == 1 && n_types != n_tokens) {
        ds_errf(err, "tokenizer.ggml.token_type has %llu entries for %llu tokens", (unsigned long long)n_types,
                (unsigned long long)n_tokens);
        goto fail;
    }
    if (n_tokens == 0 || n_tokens > INT32_MAX - 1) {
        ds_errf(err, "tokenizer.ggml.tokens has %llu tokens", (unsigned long long)n_tokens);
        goto fail;
    }

    t = tok_alloc();
    if (!t) goto oom;
    if (setup_pipeline(t, pre, err) || tok_set_size(t, (int32_t)n_tokens, err)) goto fail;
    for (uint64_t i = 0; i < n_tokens; i++) {
        int64_t ty = types ? types[i] : GGUF_TOK_NORMAL;
        uint8_t fl = (ty == GGUF_TOK_CONTROL || ty == GGUF_TOK_USER) ? TOKF_ADDED : TOKF_MODEL;
        if (tok_set_token(t, (int32_t)i, tokens[i].ptr, tokens[i].len, fl, err)) goto fail;
    }
    if (tok_build_maps(t, err)) goto fail;
    for (uint64_t i = 0; types && i < n_tokens; i++) {
        bool control = types[i] == GGUF_TOK_CONTROL;
        if ((control || types[i] == GGUF_TOK_USER) &&
            tok_add_added(t, (int32_t)i, control, false, false, false, false, err))
            goto fail;
    }
    if (tok_build_added(t, err)) goto fail;

    if (tok_merges_reserve(&t->merges, n_merges)) goto oom;
    for (uint64_t i = 0; i < n_merges; i++) {
        /* llama.cpp splits at the first space after the first byte */
        const char *s = merges[i].ptr;
        size_t n = merges[i].len, sp = 1;
        while (sp < n && s[sp] != ' ') sp++;
        if (n < 3 || sp >= n) {
            ds_errf(err, "tokenizer.ggml.merges[%llu] '%.*s' is not two tokens separated by a space",
                    (unsigned long long)i, (int)n, s);
            goto fail;
        }
        int32_t a = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, s, sp);
        int32_t b = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, s + sp + 1, n - sp - 1);
        cat.n = 0;
        if (tok_buf_append(&cat, s, sp) || tok_buf_append(&cat, s + sp + 1, n - sp - 1)) goto oom;
        int32_t res = tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, cat.p, cat.n);
        if (a < 0 || b < 0 || res < 0) {
            ds_errf(err, "tokenizer.ggml.merges[%llu] '%.*s' uses a token missing from the vocabulary",
                    (unsigned long long)i, (int)n, s);
            goto fail;
        }
        if (tok_merge_put(&t->merges, a, b, (uint32_t)i, res)) goto oom;
    }

    int64_t v;
    if ((r = gguf_get_int(f, "tokenizer.ggml.bos_token_id", &v, err)) < 0) goto fail;
    if (r == 1 && v >= 0 && v < (int64_t)n_tokens) t->bos_id = (int32_t)v;
    if ((r = gguf_get_int(f, "tokenizer.ggml.eos_token_id", &v, err)) < 0) goto fail;
    if (r == 1 && v >= 0 && v < (int64_t)n_tokens) t->eos_id = (int32_t)v;
    if (t->bos_id >= 0 && !(t->bos_text = strdup(tok_token_text(t, t->bos_id)))) goto oom;
    if (t->eos_id >= 0 && !(t->eos_text = strdup(tok_token_text(t, t->eos_id)))) goto oom;
    bool add_bos = pre->add_bos, add_eos = false;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos, err) < 0) goto fail;
    if (gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &add_eos, err) < 0) goto fail;
    t->post_prefix = malloc(sizeof *t->post_prefix);
    t->post_suffix = malloc(sizeof *t->post_suffix);
    if (!t->post_prefix || !t->post_suffix) goto oom;
    if (add_bos && t->bos_id >= 0) t->post_prefix[t->n_post_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0) t->post_suffix[t->n_post_suffix++] = t->eos_id;

    if ((r = gguf_get_str(f, "tokenizer.chat_template", &tpl, err)) < 0) goto fail;
    if (r == 1 && !(t->chat_template = dup_str(tpl))) goto oom;

    *out = t;
    t = NULL;
    rc = 0;
    goto done;
oom:
    ds_errf(err, "out of memory");
fail:
    ds_err_wrap(err, "%s", label);
done:
    tok_free(t);
    free(tokens);
    free(merges);
    free(types);
    tok_buf_free(&cat);
    return rc;
}
