/* Memory and text primitives of template/: the arena every value and syntax node lives in, the
 * growable string with provenance (sbuf), substrings that keep provenance, and UTF-8 helpers
 * including Python's notion of whitespace. */
#include <stdlib.h>
#include <string.h>

#include "template/tpl_internal.h"

/* ---- arena ----------------------------------------------------------------------------------- */

struct ar_chunk {
    ar_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

enum { AR_CHUNK = 64 * 1024 };

void *ar_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) return NULL;
    ar_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > AR_CHUNK / 4 ? n : AR_CHUNK;
        ar_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (cap == n && c) { /* a big block: keep filling the current chunk afterwards */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void *ar_realloc(tpl_arena *a, const void *old, size_t n, size_t cap, size_t elem) {
    if (cap > SIZE_MAX / elem) return NULL;
    void *p = ar_alloc(a, cap * elem);
    if (p && n) memcpy(p, old, n * elem);
    return p;
}

char *ar_strndup(tpl_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = ar_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ar_free(tpl_arena *a) {
    ar_chunk *c = a->head;
    while (c) {
        ar_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- sbuf ------------------------------------------------------------------------------------ */

/* Charges (or refunds, when negative) n bytes of buffer memory to the render's budget. */
static bool acct_charge(tpl_arena *a, size_t add, size_t sub) {
    if (!a) return true;
    a->used -= sub < a->used ? sub : a->used;
    if (a->limit && (add > a->limit || a->used > a->limit - add)) return false;
    a->used += add;
    return true;
}

static bool sb_grow(sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (extra > SIZE_MAX / 4 - b->len) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < need) cap *= 2;
    if (!acct_charge(b->acct, cap - b->cap, 0)) {
        b->oom = true;
        return false;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        acct_charge(b->acct, 0, cap - b->cap);
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sb_mark(sbuf *b, size_t off, size_t n) {
    if (n == 0) return;
    if (b->nsp && b->sp[b->nsp - 1].off + b->sp[b->nsp - 1].len == off) {
        b->sp[b->nsp - 1].len += n;
        return;
    }
    if (b->nsp == b->spcap) {
        size_t cap = b->spcap ? b->spcap * 2 : 8;
        if (!acct_charge(b->acct, (cap - b->spcap) * sizeof *b->sp, 0)) {
            b->oom = true;
            return;
        }
        tpl_span *sp = realloc(b->sp, cap * sizeof *sp);
        if (!sp) {
            acct_charge(b->acct, 0, (cap - b->spcap) * sizeof *b->sp);
            b->oom = true;
            return;
        }
        b->sp = sp;
        b->spcap = cap;
    }
    b->sp[b->nsp].off = off;
    b->sp[b->nsp].len = n;
    b->nsp++;
}

bool sb_reserve(sbuf *b, size_t n) { return sb_grow(b, n); }

void sb_put(sbuf *b, const char *s, size_t n, bool caller) {
    if (n == 0 || !sb_grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    if (caller) sb_mark(b, b->len, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s), false); }

void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1, false); }

void sb_put_tstr(sbuf *b, tstr s) {
    if (s.len == 0 || !sb_grow(b, s.len)) return;
    size_t base = b->len;
    memcpy(b->p + base, s.p, s.len);
    b->len += s.len;
    b->p[b->len] = '\0';
    for (size_t i = 0; i < s.nsp; i++) sb_mark(b, base + s.sp[i].off, s.sp[i].len);
}

void sb_free(sbuf *b) {
    acct_charge(b->acct, 0, b->cap + b->spcap * sizeof *b->sp);
    free(b->p);
    free(b->sp);
    memset(b, 0, sizeof *b);
}

bool sb_finish(sbuf *b, tpl_arena *a, tstr *out) {
    bool ok = !b->oom;
    memset(out, 0, sizeof *out);
    if (ok) {
        char *p = ar_strndup(a, b->p ? b->p : "", b->len);
        tpl_span *sp = NULL;
        if (p && b->nsp) {
            sp = ar_alloc(a, b->nsp * sizeof *sp);
            if (sp) memcpy(sp, b->sp, b->nsp * sizeof *sp);
        }
        if (!p || (b->nsp && !sp)) {
            ok = false;
        } else {
            out->p = p;
            out->len = b->len;
            out->sp = sp;
            out->nsp = b->nsp;
        }
    }
    sb_free(b);
    return ok;
}

/* ---- tstr ------------------------------------------------------------------------------------ */

bool tstr_sub(tpl_arena *ar, tstr s, size_t a, size_t b, tstr *out) {
    tstr r = {s.p + a, b > a ? b - a : 0, NULL, 0};
    *out = r;
    if (s.nsp == 0 || a >= b) return true;
    size_t first = s.nsp, cnt = 0;
    for (size_t i = 0; i < s.nsp; i++) {
        size_t so = s.sp[i].off, se = so + s.sp[i].len;
        if (se <= a) continue;
        if (so >= b) break;
        if (first == s.nsp) first = i;
        cnt++;
    }
    if (cnt == 0) return true;
    tpl_span *sp = ar_alloc(ar, cnt * sizeof *sp);
    if (!sp) return false;
    for (size_t i = 0; i < cnt; i++) {
        size_t so = s.sp[first + i].off, se = so + s.sp[first + i].len;
        if (so < a) so = a;
        if (se > b) se = b;
        sp[i].off = so - a;
        sp[i].len = se - so;
    }
    out->sp = sp;
    out->nsp = cnt;
    return true;
}

bool tstr_has_caller(tstr s) { return s.nsp != 0; }

bool tstr_caller_at(tstr s, size_t off) {
    size_t lo = 0, hi = s.nsp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s.sp[mid].off + s.sp[mid].len <= off) lo = mid + 1;
        else hi = mid;
    }
    return lo < s.nsp && s.sp[lo].off <= off;
}

bool tstr_eq(tstr s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* ---- UTF-8 and Python whitespace ------------------------------------------------------------ */

uint32_t utf8_decode(const char *p, const char *end, int *n) {
    const unsigned char *s = (const unsigned char *)p;
    size_t avail = (size_t)(end - p);
    unsigned c = s[0];
    if (c < 0x80) {
        *n = 1;
        return c;
    }
    int len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (c >= 0xF5) len = 0;
    if (len == 0 || (size_t)len > avail) {
        *n = 1;
        return c;
    }
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *n = 1;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        *n = 1;
        return c;
    }
    *n = len;
    return cp;
}

int utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool py_isspace(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}
