/* pretok.c — normalizers and pre-tokenizers.
 *
 * Normalizers are Unicode normal forms done by utf8proc. Pre-tokenizers are HF's Split (a regex
 * or a literal string, with any SplitDelimiterBehavior and invert), Digits (compiled as a \p{N}
 * regex split) and ByteLevel (optional prefix space, optional GPT-2 regex split; its mapping of
 * bytes to characters is implicit because the BPE works on raw bytes). Each step splits every
 * piece the previous step produced; empty pieces are dropped (HF PreTokenizedString::split).
 *
 * Regexes are PCRE2 with UTF and UCP, JIT-compiled. HF runs them on Oniguruma with Ruby syntax,
 * where ^ and $ match at line breaks, hence PCRE2_MULTILINE. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

int tok_regex_compile(const char *pattern, size_t len, bool literal, pcre2_code **out,
                      ds_err *err) {
    int code;
    PCRE2_SIZE off;
    uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ds_errf(err, "pre-tokenizer regex /%.*s/: %s at offset %zu", (int)(len > 200 ? 200 : len),
                       pattern, (const char *)msg, (size_t)off);
    }
    /* JIT is an optimisation: without it pcre2_match interprets the same pattern */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return 0;
}

/* ---- normalizers ---- */

bool tok_has_normalizer(const tok_tokenizer *t) { return t->n_norms > 0; }

/* A code point that NFC leaves alone whatever surrounds it: no canonical decomposition,
 * combining class 0, and never the second half of a canonical composition (Hangul V and T
 * jamo compose algorithmically, hence the range). NFC may then cut the text right before
 * it: the test unit checks this predicate against utf8proc over every code point. */
bool tok_nfc_stable(uint32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->combining_class != 0) return false;
    if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return false;
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
    return !(cp >= 0x1160 && cp <= 0x11FF);
}

/* Runs the normalizers over s[0..n), appending to out. */
static int normalize_all(const tok_tokenizer *t, const char *s, size_t n, tok_buf *out, ds_err *err) {
    utf8proc_uint8_t *cur = NULL;
    const utf8proc_uint8_t *src = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t cur_n = (utf8proc_ssize_t)n;
    for (uint32_t k = 0; k < t->n_norms; k++) {
        int opts = UTF8PROC_STABLE;
        switch (t->norms[k]) {
        case TOK_NORM_NFC: opts |= UTF8PROC_COMPOSE; break;
        case TOK_NORM_NFD: opts |= UTF8PROC_DECOMPOSE; break;
        case TOK_NORM_NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
        case TOK_NORM_NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
        }
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map(src, cur_n, &dst, (utf8proc_option_t)opts);
        free(cur);
        if (r < 0) {
            free(dst);
            return ds_errf(err, "normalizer: %s", utf8proc_errmsg(r));
        }
        cur = dst;
        src = dst;
        cur_n = r;
    }
    int rc = tok_buf_append(out, cur, (size_t)cur_n);
    free(cur);
    return rc ? ds_errf(err, "tokenizer: out of memory") : 0;
}

int tok_normalize(const tok_tokenizer *t, const char *s, size_t n, tok_buf *out, ds_err *err) {
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) ascii = (uint8_t)s[i] < 0x80;
    if (ascii || t->n_norms == 0) /* every normal form leaves ASCII unchanged */
        return tok_buf_append(out, s, n) ? ds_errf(err, "tokenizer: out of memory") : 0;
    if (t->n_norms != 1 || t->norms[0] != TOK_NORM_NFC) return normalize_all(t, s, n, out, err);

    /* NFC: copy stable stretches, normalize only from the stable character before an unstable
     * run to the next stable character */
    size_t copied = 0, i = 0;
    long last_stable = -1;
    while (i < n) {
        uint32_t cp;
        int l = tok_utf8_decode(s + i, n - i, &cp);
        if (tok_nfc_stable(cp)) {
            last_stable = (long)i;
            i += (size_t)l;
            continue;
        }
        size_t cs = last_stable >= (long)copied ? (size_t)last_stable : copied, j = i;
        while (j < n) {
            l = tok_utf8_decode(s + j, n - j, &cp);
            if (tok_nfc_stable(cp)) break;
            j += (size_t)l;
        }
        if (tok_buf_append(out, s + copied, cs - copied)) return ds_errf(err, "tokenizer: out of memory");
        if (normalize_all(t, s + cs, j - cs, out, err)) return -1;
        copied = i = j;
        last_stable = -1;
    }
    return tok_buf_append(out, s + copied, n - copied) ? ds_errf(err, "tokenizer: out of memory") : 0;
}

/* ---- scratch ---- */

int tok_scratch_init(tok_scratch *s, bool use_cache, ds_err *err) {
    memset(s, 0, sizeof *s);
    if (use_cache && !(s->cache = calloc(TOK_CACHE_SLOTS, sizeof *s->cache))) return ds_errf(err, "tokenizer: out of memory");
    s->md = pcre2_match_data_create(4, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->jit = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
    if (!s->md || !s->mctx) {
        tok_scratch_free(s);
        return ds_errf(err, "tokenizer: out of memory");
    }
    if (s->jit) pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    return 0;
}

void tok_scratch_free(tok_scratch *s) {
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    free(s->a);
    free(s->b);
    free(s->parts);
    tok_buf_free(&s->work);
    free(s->sym_id);
    free(s->sym_prev);
    free(s->sym_next);
    free(s->sym_len);
    free(s->heap);
    free(s->cache);
    tok_buf_free(&s->cache_keys);
    tok_ids_free(&s->cache_ids);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Appends the pieces of one split: span [off, off+len) to list (n, cap) when non-empty. */
static int push_span(tok_span **list, size_t *n, size_t *cap, uint32_t off, uint32_t len) {
    if (len == 0) return 0;
    if (grow((void **)list, cap, *n + 1, sizeof **list)) return -1;
    (*list)[(*n)++] = (tok_span){off, len};
    return 0;
}

static int push_part(tok_scratch *s, size_t *n, uint32_t off, uint32_t len, bool m) {
    if (grow((void **)&s->parts, &s->cap_parts, *n + 1, sizeof *s->parts)) return -1;
    s->parts[(*n)++] = (tok_part){off, len, m};
    return 0;
}

/* Finds every match of re in buf[off, off+len) (HF Pattern::find_matches): matches and the
 * gaps between them, in order, into s->parts. Returns the count or -1. */
static long find_matches(tok_scratch *s, const pcre2_code *re, const char *buf, uint32_t off,
                         uint32_t len, ds_err *err) {
    size_t n = 0;
    const char *subj = buf + off;
    size_t pos = 0, prev = 0;
    long last_end = -1;
    while (pos <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)subj, len, pos, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            ds_errf(err, "pre-tokenizer regex: %s", (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t ms = ov[0], me = ov[1];
        if (ms == me) {
            /* an empty match: skip it right after a previous match, then move one char on */
            size_t step = 1;
            while (ms + step < len && ((uint8_t)subj[ms + step] & 0xC0) == 0x80) step++;
            if ((long)ms != last_end) {
                if (ms > prev && push_part(s, &n, off + (uint32_t)prev, (uint32_t)(ms - prev), false)) goto oom;
                if (push_part(s, &n, off + (uint32_t)ms, 0, true)) goto oom;
                prev = ms;
                last_end = (long)me;
            }
            pos = ms + step;
            continue;
        }
        if (ms > prev && push_part(s, &n, off + (uint32_t)prev, (uint32_t)(ms - prev), false)) goto oom;
        if (push_part(s, &n, off + (uint32_t)ms, (uint32_t)(me - ms), true)) goto oom;
        prev = me;
        last_end = (long)me;
        pos = me;
    }
    if (prev < len && push_part(s, &n, off + (uint32_t)prev, (uint32_t)(len - prev), false)) goto oom;
    return (long)n;
oom:
    ds_errf(err, "tokenizer: out of memory");
    return -1;
}

/* Applies a Split step to every piece of `in`, producing `out` (HF NormalizedString::split). */
static int split_step(tok_scratch *s, const tok_pretok *pt, const char *buf, const tok_span *in,
                      size_t n_in, tok_span **out, size_t *n_out, size_t *cap_out, ds_err *err) {
    *n_out = 0;
    for (size_t i = 0; i < n_in; i++) {
        long np = find_matches(s, pt->re, buf, in[i].off, in[i].len, err);
        if (np < 0) return -1;
        tok_part *p = s->parts;
        if (pt->invert)
            for (long k = 0; k < np; k++) p[k].m = !p[k].m;
        /* fold the parts into pieces by the behaviour; merged parts extend the last piece */
        bool prev_m = false;
        switch (pt->behavior) {
        case TOK_SPLIT_ISOLATED:
            for (long k = 0; k < np; k++)
                if (push_span(out, n_out, cap_out, p[k].off, p[k].len)) goto oom;
            break;
        case TOK_SPLIT_REMOVED:
            for (long k = 0; k < np; k++)
                if (!p[k].m && push_span(out, n_out, cap_out, p[k].off, p[k].len)) goto oom;
            break;
        case TOK_SPLIT_CONTIGUOUS:
        case TOK_SPLIT_MERGED_PREV: {
            /* fold into a local list that may hold empty pieces, then drop the empty ones */
            size_t m = 0;
            for (long k = 0; k < np; k++) {
                bool merge = pt->behavior == TOK_SPLIT_CONTIGUOUS ? (p[k].m == prev_m && m > 0)
                                                                  : (p[k].m && !prev_m && m > 0);
                if (merge) p[m - 1].len = p[k].off + p[k].len - p[m - 1].off;
                else p[m++] = p[k];
                prev_m = p[k].m;
            }
            for (size_t k = 0; k < m; k++)
                if (push_span(out, n_out, cap_out, p[k].off, p[k].len)) goto oom;
            break;
        }
        case TOK_SPLIT_MERGED_NEXT: {
            /* HF folds from the right: a match joins the piece after it */
            long m = np; /* write from the end: p[m..np) are the folded pieces */
            for (long k = np - 1; k >= 0; k--) {
                bool merge = p[k].m && !prev_m && m < np;
                if (merge) {
                    p[m].len = p[m].off + p[m].len - p[k].off;
                    p[m].off = p[k].off;
                } else
                    p[--m] = p[k];
                prev_m = p[k].m;
            }
            for (long k = m; k < np; k++)
                if (push_span(out, n_out, cap_out, p[k].off, p[k].len)) goto oom;
            break;
        }
        }
    }
    return 0;
oom:
    return ds_errf(err, "tokenizer: out of memory");
}

/* ByteLevel add_prefix_space: prepends a space to every piece of s->a that does not start with
 * one; the pieces then live in s->work. */
static int prefix_spaces(tok_scratch *s, const char **buf, size_t na, ds_err *err) {
    tok_buf w = {0};
    for (size_t i = 0; i < na; i++) {
        uint32_t off = (uint32_t)w.n;
        if ((*buf)[s->a[i].off] != ' ' && tok_buf_append(&w, " ", 1)) goto oom;
        if (tok_buf_append(&w, *buf + s->a[i].off, s->a[i].len)) goto oom;
        s->a[i] = (tok_span){off, (uint32_t)w.n - off};
    }
    tok_buf_free(&s->work);
    s->work = w;
    *buf = s->work.p;
    return 0;
oom:
    tok_buf_free(&w);
    return ds_errf(err, "tokenizer: out of memory");
}

int tok_pretok_and_bpe(const tok_tokenizer *t, tok_scratch *s, const char *text, size_t n,
                       tok_ids *out, ds_err *err) {
    if (n == 0) return 0;
    if (n > UINT32_MAX / 2) return ds_errf(err, "tokenizer: text of %zu bytes is too long", n);
    const char *buf = text;
    size_t na = 0, nb = 0;
    if (push_span(&s->a, &na, &s->cap_a, 0, (uint32_t)n)) return ds_errf(err, "tokenizer: out of memory");

    for (uint32_t k = 0; k < t->n_pretoks; k++) {
        const tok_pretok *pt = &t->pretoks[k];
        if (pt->kind == TOK_PT_BYTELEVEL && pt->add_prefix_space) {
            if (prefix_spaces(s, &buf, na, err)) return -1;
        }
        if (!pt->re) continue;
        if (split_step(s, pt, buf, s->a, na, &s->b, &nb, &s->cap_b, err)) return -1;
        tok_span *tmp = s->a;
        s->a = s->b;
        s->b = tmp;
        size_t tc = s->cap_a;
        s->cap_a = s->cap_b;
        s->cap_b = tc;
        na = nb;
    }
    for (size_t i = 0; i < na; i++)
        if (tok_bpe_piece(t, s, (const uint8_t *)buf + s->a[i].off, s->a[i].len, out, err)) return -1;
    return 0;
}
