/* encode.c — the encode pipeline (HF Tokenizer::encode):
 *
 *   1. cut added tokens with normalized=false out of the raw text (leftmost-longest, with the
 *      single_word / lstrip / rstrip rules of HF's AddedVocabulary::find_matches);
 *   2. normalize each remaining piece, then cut added tokens with normalized=true out of it;
 *   3. pre-tokenize each run of text between added tokens and BPE every piece;
 *   4. optionally wrap the ids with the post-processor's prefix / suffix.
 *
 * Which added tokens may be cut depends on the mode; a skipped special token still consumes
 * its text (as with HF's encode_special_tokens), so no token is ever found inside it. With
 * segments, each segment is matched under its own mode, and runs of text that touch across a
 * segment boundary are joined before pre-tokenization, so the result equals HF's on the
 * concatenated text whenever the caller content holds no added-token text. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* ---- character classes of HF's added-token rules (Rust regex \s and \w) ---- */

static bool cp_is_space(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85) return true;
    if (cp < 0x80) return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool cp_is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return true; /* Join_Control */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

/* The code point ending just before s[i] (i > 0). */
static uint32_t cp_before(const char *s, size_t i, size_t *start) {
    size_t k = i - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    tok_utf8_decode(s + k, i - k, &cp);
    if (start) *start = k;
    return cp;
}

/* ---- added-token matching ---- */

typedef struct piece {
    uint32_t off, len;
    int32_t id; /* -1: text */
} piece;

typedef struct piece_list {
    piece *p;
    size_t n, cap;
} piece_list;

static int piece_push(piece_list *l, uint32_t off, uint32_t len, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        piece *q = realloc(l->p, cap * sizeof *q);
        if (!q) return -1;
        l->p = q;
        l->cap = cap;
    }
    l->p[l->n++] = (piece){off, len, id};
    return 0;
}

/* Longest added token of `tr` starting at s[i]; returns its index in t->added and its length,
 * or -1. */
static int32_t trie_longest(const tok_trie *tr, const uint8_t *s, size_t n, size_t i, size_t *mlen) {
    uint32_t node = 0;
    int32_t best = -1;
    for (size_t k = i; k < n; k++) {
        uint32_t c = tr->child[node];
        while (c && tr->byte[c] != s[k]) c = tr->sibling[c];
        if (!c) break;
        node = c;
        if (tr->term[node] >= 0) {
            best = tr->term[node];
            *mlen = k + 1 - i;
        }
    }
    return best;
}

/* Splits s[0..n) into added tokens of `tr` and text between them, appending to `out` with
 * offsets shifted by `base` (HF AddedVocabulary::find_matches). */
static int split_added(const tok_tokenizer *t, const tok_trie *tr, tok_added_mode mode,
                       const char *s, size_t n, uint32_t base, piece_list *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t start_offset = 0, i = 0;
    if (mode != TOK_ADDED_NONE && !tr->empty) {
        while (i < n) {
            if (!(tr->first[u[i] >> 3] & (1u << (u[i] & 7)))) {
                i++;
                continue;
            }
            size_t mlen = 0;
            int32_t k = trie_longest(tr, u, n, i, &mlen);
            if (k < 0) {
                i++;
                continue;
            }
            const tok_added *a = &t->added[k];
            size_t start = i, stop = i + mlen;
            i = stop; /* the match is consumed even when it is skipped below */
            if (mode == TOK_ADDED_NON_SPECIAL && a->special) continue;
            if (a->single_word) {
                bool start_space = start == 0 || !cp_is_word(cp_before(s, start, NULL));
                uint32_t cp = 0;
                if (stop < n) tok_utf8_decode(s + stop, n - stop, &cp);
                bool stop_space = stop == n || !cp_is_word(cp);
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t k2 = start, at;
                while (k2 > start_offset && cp_is_space(cp_before(s, k2, &at))) k2 = at;
                start = k2;
            }
            if (a->rstrip) {
                while (stop < n) {
                    uint32_t cp;
                    int l = tok_utf8_decode(s + stop, n - stop, &cp);
                    if (!cp_is_space(cp)) break;
                    stop += (size_t)l;
                }
                i = stop;
            }
            if (start_offset < start &&
                piece_push(out, base + (uint32_t)start_offset, (uint32_t)(start - start_offset), -1))
                return -1;
            if (piece_push(out, base + (uint32_t)start, (uint32_t)(stop - start), a->id)) return -1;
            start_offset = stop;
        }
    }
    if (start_offset < n &&
        piece_push(out, base + (uint32_t)start_offset, (uint32_t)(n - start_offset), -1))
        return -1;
    return 0;
}

/* ---- the pipeline ---- */

int tok_encode_segments(const tok_tokenizer *t, const tok_segment *segs, size_t n_segs,
                        bool add_special, tok_ids *out, ds_err *err) {
    int rc = -1;
    piece_list raw = {0}, norm_pieces = {0}, items = {0};
    tok_buf norm = {0}, tmp = {0};
    size_t total = 0;
    for (size_t g = 0; g < n_segs; g++) total += segs[g].len;
    tok_scratch s;
    if (tok_scratch_init(&s, total >= 4096, err)) return -1;

    size_t base = 0;
    for (size_t g = 0; g < n_segs; g++) {
        const char *text = segs[g].text;
        size_t len = segs[g].len;
        if (len == 0) continue;
        if (len > UINT32_MAX / 4) {
            ds_errf(err, "tokenizer: text of %zu bytes is too long", len);
            goto done;
        }
        long bad = tok_utf8_validate(text, len);
        if (bad >= 0) {
            ds_errf(err, "invalid UTF-8 at byte %zu", base + (size_t)bad);
            goto done;
        }
        raw.n = 0;
        if (split_added(t, &t->trie_raw, segs[g].mode, text, len, 0, &raw)) goto oom;
        for (size_t r = 0; r < raw.n; r++) {
            if (raw.p[r].id >= 0) {
                if (piece_push(&items, 0, 0, raw.p[r].id)) goto oom;
                continue;
            }
            tmp.n = 0;
            if (tok_normalize(t, text + raw.p[r].off, raw.p[r].len, &tmp, err)) goto done;
            norm_pieces.n = 0;
            if (split_added(t, &t->trie_norm, segs[g].mode, tmp.p, tmp.n, 0, &norm_pieces)) goto oom;
            for (size_t q = 0; q < norm_pieces.n; q++) {
                piece *np = &norm_pieces.p[q];
                if (np->id >= 0) {
                    if (piece_push(&items, 0, 0, np->id)) goto oom;
                    continue;
                }
                if (norm.n + np->len > UINT32_MAX) {
                    ds_errf(err, "tokenizer: text too long");
                    goto done;
                }
                uint32_t off = (uint32_t)norm.n;
                if (tok_buf_append(&norm, tmp.p + np->off, np->len)) goto oom;
                /* text right after text (only across a segment boundary) joins it */
                if (items.n > 0 && items.p[items.n - 1].id < 0) items.p[items.n - 1].len += np->len;
                else if (piece_push(&items, off, np->len, -1)) goto oom;
            }
        }
        base += len;
    }

    if (add_special)
        for (uint32_t k = 0; k < t->n_post_prefix; k++)
            if (tok_ids_push(out, t->post_prefix[k])) goto oom;
    for (size_t k = 0; k < items.n; k++) {
        if (items.p[k].id >= 0) {
            if (tok_ids_push(out, items.p[k].id)) goto oom;
        } else if (tok_pretok_and_bpe(t, &s, norm.p + items.p[k].off, items.p[k].len, out, err))
            goto done;
    }
    if (add_special)
        for (uint32_t k = 0; k < t->n_post_suffix; k++)
            if (tok_ids_push(out, t->post_suffix[k])) goto oom;
    rc = 0;
    goto done;
oom:
    ds_errf(err, "tokenizer: out of memory");
done:
    free(raw.p);
    free(norm_pieces.p);
    free(items.p);
    tok_buf_free(&norm);
    tok_buf_free(&tmp);
    tok_scratch_free(&s);
    return rc;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, tok_added_mode mode,
               bool add_special, tok_ids *out, ds_err *err) {
    tok_segment seg = {text, len, mode};
    return tok_encode_segments(t, &seg, 1, add_special, out, err);
}

int tok_encode_prompt(const tok_tokenizer *t, const char *text, size_t len, tok_ids *out,
                      ds_err *err) {
    size_t start = out->n;
    if (tok_encode(t, text, len, TOK_ADDED_ALL, true, out, err)) return -1;
    /* the post-processor put BOS in front of a text that already starts with BOS: drop one */
    if (tok_adds_bos(t) && out->n >= start + 2 && out->ids[start] == t->bos_id &&
        out->ids[start + 1] == t->bos_id) {
        memmove(out->ids + start, out->ids + start + 1, (out->n - start - 1) * sizeof *out->ids);
        out->n--;
    }
    return 0;
}
