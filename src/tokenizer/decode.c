/* decode.c — ids back to text: HF's ByteLevel decoder, incrementally.
 *
 * Each token contributes its decoder bytes (tok_token_bytes). The stream assembles them into
 * UTF-8 characters and emits a character only once it is complete. Bytes that can never form
 * a character are replaced by U+FFFD one "maximal subpart" at a time, the rule Rust's
 * String::from_utf8_lossy (so HF's decode) follows; hence streaming and whole decoding agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

struct tok_stream {
    const tok_tokenizer *t;
    bool skip_special;
    uint8_t pend[4]; /* bytes of an unfinished character */
    int npend;       /* bytes held */
    int need;        /* continuation bytes the lead byte announces */
    tok_buf out;     /* text produced by the current call */
};

static const char k_fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

static int emit_fffd(tok_stream *s) { return tok_buf_append(&s->out, k_fffd, 3); }

/* Feeds one byte through the UTF-8 assembler. */
static int feed_byte(tok_stream *s, uint8_t b) {
    for (;;) {
        if (s->npend == 0) {
            if (b < 0x80) return tok_buf_append(&s->out, &b, 1);
            if (b >= 0xC2 && b <= 0xDF) s->need = 1;
            else if (b >= 0xE0 && b <= 0xEF) s->need = 2;
            else if (b >= 0xF0 && b <= 0xF4) s->need = 3;
            else return emit_fffd(s);
            s->pend[s->npend++] = b;
            return 0;
        }
        uint8_t lo = 0x80, hi = 0xBF;
        if (s->npend == 1) {
            switch (s->pend[0]) {
            case 0xE0: lo = 0xA0; break;
            case 0xED: hi = 0x9F; break;
            case 0xF0: lo = 0x90; break;
            case 0xF4: hi = 0x8F; break;
            default: break;
            }
        }
        if (b >= lo && b <= hi) {
            s->pend[s->npend++] = b;
            if (s->npend == s->need + 1) {
                int rc = tok_buf_append(&s->out, s->pend, (size_t)s->npend);
                s->npend = 0;
                return rc;
            }
            return 0;
        }
        /* the held bytes are a maximal invalid subpart; b starts afresh */
        s->npend = 0;
        if (emit_fffd(s)) return -1;
    }
}

tok_stream *tok_stream_new(const tok_tokenizer *t, bool skip_special) {
    tok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->skip_special = skip_special;
    return s;
}

void tok_stream_free(tok_stream *s) {
    if (!s) return;
    tok_buf_free(&s->out);
    free(s);
}

/* Appends the text of one id to s->out (without clearing it). */
static int stream_add(tok_stream *s, int32_t id, ds_err *err) {
    const tok_tokenizer *t = s->t;
    if (id < 0 || id >= t->n_tokens)
        return ds_errf(err, "token id %d is out of range (the vocabulary has ids 0..%d)", id,
                       t->n_tokens - 1);
    if (!(t->flags[id] & TOKF_PRESENT)) return ds_errf(err, "token id %d has no token", id);
    if (s->skip_special && (t->flags[id] & TOKF_SPECIAL)) return 0;
    const uint8_t *p = (const uint8_t *)t->blob.p + t->dec_off[id];
    for (uint32_t i = 0; i < t->dec_len[id]; i++)
        if (feed_byte(s, p[i])) return ds_errf(err, "tokenizer: out of memory");
    return 0;
}

int tok_stream_push(tok_stream *s, int32_t id, const char **text, size_t *len, ds_err *err) {
    s->out.n = 0;
    int rc = stream_add(s, id, err);
    *text = s->out.p ? s->out.p : "";
    *len = rc ? 0 : s->out.n;
    return rc;
}

void tok_stream_finish(tok_stream *s, const char **text, size_t *len) {
    s->out.n = 0;
    if (s->npend) {
        s->npend = 0;
        if (emit_fffd(s)) s->out.n = 0;
    }
    *text = s->out.p ? s->out.p : "";
    *len = s->out.n;
}

/* transformers' clean_up_tokenization: a chain of str.replace calls, done in place. */
static size_t clean_up(char *s, size_t n) {
    static const char *const k_from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const k_to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof k_from / sizeof k_from[0]; r++) {
        size_t fl = strlen(k_from[r]), tl = strlen(k_to[r]);
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + fl <= n && !memcmp(s + i, k_from[r], fl)) {
                memmove(s + w, k_to[r], tl); /* tl < fl and w <= i: never overtakes the reader */
                w += tl;
                i += fl;
            } else
                s[w++] = s[i++];
        }
        n = w;
    }
    return n;
}

int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
               char **out, size_t *out_len, ds_err *err) {
    *out = NULL;
    *out_len = 0;
    tok_stream s = {.t = t, .skip_special = skip_special};
    for (size_t i = 0; i < n; i++)
        if (stream_add(&s, ids[i], err)) {
            tok_buf_free(&s.out);
            return -1;
        }
    if (s.npend && emit_fffd(&s)) goto oom;
    if (tok_buf_append(&s.out, "", 1)) goto oom;
    size_t len = s.out.n - 1;
    if (t->clean_up_spaces) {
        len = clean_up(s.out.p, len);
        s.out.p[len] = 0;
    }
    *out = s.out.p;
    *out_len = len;
    return 0;
oom:
    tok_buf_free(&s.out);
    return ds_errf(err, "tokenizer: out of memory");
}
