/* Template values with Python's semantics, as jinja2 evaluates them: constructors, ordered
 * dicts, truthiness, ==, ordering, str() and repr() (Python's float repr included), iteration,
 * attribute and item lookup with jinja2's sandbox rules, and transformers' tojson (Python's
 * json.dumps with ensure_ascii=False). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "template/tpl_internal.h"

/* ---- errors and budget ----------------------------------------------------------------------- */

val *rt_err(rctx *c, int line, const char *fmt, ...) {
    if (c->failed) return NULL;
    c->failed = true;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ds_errf(c->err, "template error at line %d: %s", line > 0 ? line : c->line, msg);
    return NULL;
}

bool rt_step(rctx *c, int line, uint64_t n) {
    if (c->failed) return false;
    if (line > 0) c->line = line;
    c->steps += n;
    if (c->steps > c->max_steps) {
        rt_err(c, line, "template exceeded its step limit (%" PRIu64 " steps)", c->max_steps);
        return false;
    }
    return true;
}

static void *mem_err(rctx *c) {
    rt_err(c, 0, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    return NULL;
}

void rt_sbuf(rctx *c, sbuf *b) {
    memset(b, 0, sizeof *b);
    b->acct = c->ar;
}

/* ---- constructors ---------------------------------------------------------------------------- */

static val V_NONE_ = {.kind = VK_NONE};
static val V_TRUE_ = {.kind = VK_BOOL, .u.b = true};
static val V_FALSE_ = {.kind = VK_BOOL, .u.b = false};

val *v_new(rctx *c, vkind k) {
    val *v = ar_alloc(c->ar, sizeof *v);
    if (!v) return mem_err(c);
    v->kind = (uint8_t)k;
    return v;
}

val *v_undef(rctx *c, const char *hint) {
    val *v = v_new(c, VK_UNDEF);
    if (v) v->u.hint = hint;
    return v;
}

val *v_none(void) { return &V_NONE_; }
val *v_bool(bool b) { return b ? &V_TRUE_ : &V_FALSE_; }

val *v_int(rctx *c, int64_t i) {
    val *v = v_new(c, VK_INT);
    if (v) v->u.i = i;
    return v;
}

val *v_float(rctx *c, double f) {
    val *v = v_new(c, VK_FLOAT);
    if (v) v->u.f = f;
    return v;
}

val *v_str(rctx *c, tstr s) {
    val *v = v_new(c, VK_STR);
    if (v) v->u.s = s;
    return v;
}

val *v_text(rctx *c, const char *p, size_t n, bool caller) {
    tstr s = {ar_strndup(c->ar, p, n), n, NULL, 0};
    if (!s.p) return mem_err(c);
    if (caller && n) {
        tpl_span *sp = ar_alloc(c->ar, sizeof *sp);
        if (!sp) return mem_err(c);
        sp->len = n;
        s.sp = sp;
        s.nsp = 1;
    }
    return v_str(c, s);
}

val *v_lit(rctx *c, const char *s) {
    tstr t = {s, strlen(s), NULL, 0};
    return v_str(c, t);
}

val *v_list(rctx *c, val **items, size_t n, int seq) {
    val *v = v_new(c, VK_LIST);
    if (!v) return NULL;
    v->seq = (uint8_t)seq;
    v->u.l.n = n;
    if (n) {
        v->u.l.v = ar_alloc(c->ar, n * sizeof *items);
        if (!v->u.l.v) return mem_err(c);
        memcpy(v->u.l.v, items, n * sizeof *items);
    }
    return v;
}

val *v_seq(rctx *c, val **items, size_t n, int seq) {
    val *v = v_new(c, VK_LIST);
    if (!v) return NULL;
    v->seq = (uint8_t)seq;
    v->u.l.v = items;
    v->u.l.n = n;
    return v;
}

val *v_dict(rctx *c, vdict *d) {
    val *v = v_new(c, VK_DICT);
    if (v) v->u.d = d;
    return v;
}

/* ---- dicts ----------------------------------------------------------------------------------- */

static uint64_t str_hash(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

vdict *vd_new(rctx *c) {
    vdict *d = ar_alloc(c->ar, sizeof *d);
    if (!d) return mem_err(c);
    return d;
}

static bool vd_rehash(rctx *c, vdict *d) {
    size_t hcap = 16;
    while (hcap < d->n * 2 + 2) hcap *= 2;
    int32_t *h = ar_alloc(c->ar, hcap * sizeof *h);
    if (!h) return mem_err(c), false;
    for (size_t i = 0; i < d->n; i++) {
        if (d->keys[i]->kind != VK_STR) continue;
        size_t j = (size_t)str_hash(d->keys[i]->u.s.p, d->keys[i]->u.s.len) & (hcap - 1);
        while (h[j]) j = (j + 1) & (hcap - 1);
        h[j] = (int32_t)(i + 1);
    }
    d->hash = h;
    d->hcap = hcap;
    return true;
}

static long vd_find(const vdict *d, const val *k) {
    if (d->hash && k->kind == VK_STR) {
        size_t j = (size_t)str_hash(k->u.s.p, k->u.s.len) & (d->hcap - 1);
        while (d->hash[j]) {
            size_t i = (size_t)d->hash[j] - 1;
            const val *x = d->keys[i];
            if (x->kind == VK_STR && x->u.s.len == k->u.s.len && memcmp(x->u.s.p, k->u.s.p, k->u.s.len) == 0)
                return (long)i;
            j = (j + 1) & (d->hcap - 1);
        }
        return -1;
    }
    for (size_t i = 0; i < d->n; i++)
        if (v_eq(d->keys[i], k)) return (long)i;
    return -1;
}

bool vd_set(rctx *c, vdict *d, val *k, val *v) {
    long i = vd_find(d, k);
    if (i >= 0) {
        d->vals[i] = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (d->n > INT32_MAX / 4) return rt_err(c, 0, "dict too large"), false;
        val **nk = ar_realloc(c->ar, d->keys, d->n, cap, sizeof *nk);
        val **nv = ar_realloc(c->ar, d->vals, d->n, cap, sizeof *nv);
        if (!nk || !nv) return mem_err(c), false;
        d->keys = nk;
        d->vals = nv;
        d->cap = cap;
    }
    d->keys[d->n] = k;
    d->vals[d->n] = v;
    d->n++;
    if (d->n > 8 && (!d->hash || d->n * 2 + 2 > d->hcap)) return vd_rehash(c, d);
    if (d->hash && k->kind == VK_STR) {
        size_t j = (size_t)str_hash(k->u.s.p, k->u.s.len) & (d->hcap - 1);
        while (d->hash[j]) j = (j + 1) & (d->hcap - 1);
        d->hash[j] = (int32_t)d->n;
    }
    return true;
}

val *vd_get(const vdict *d, const val *k) {
    long i = vd_find(d, k);
    return i >= 0 ? d->vals[i] : NULL;
}

val *vd_get_str(const vdict *d, const char *k, size_t klen) {
    val key = {.kind = VK_STR};
    key.u.s.p = k;
    key.u.s.len = klen;
    return vd_get(d, &key);
}

/* ---- truth, equality, order ------------------------------------------------------------------ */

bool v_hashable(const val *v) {
    if (v->kind == VK_DICT || v->kind == VK_NS) return false;
    if (v->kind != VK_LIST) return true;
    if (v->seq == SEQ_TUPLE) {
        for (size_t i = 0; i < v->u.l.n; i++)
            if (!v_hashable(v->u.l.v[i])) return false;
        return true;
    }
    return v->seq == SEQ_GEN || v->seq == SEQ_RANGE;
}

bool v_truthy(const val *v) {
    switch ((vkind)v->kind) {
    case VK_UNDEF:
    case VK_NONE: return false;
    case VK_BOOL: return v->u.b;
    case VK_INT: return v->u.i != 0;
    case VK_FLOAT: return v->u.f != 0.0;
    case VK_STR: return v->u.s.len != 0;
    case VK_LIST: return v->seq == SEQ_GEN || v->u.l.n != 0;
    case VK_DICT: return v->u.d->n != 0;
    default: return true;
    }
}

static bool is_num(const val *v) { return v->kind == VK_BOOL || v->kind == VK_INT || v->kind == VK_FLOAT; }

static int64_t as_int(const val *v) { return v->kind == VK_BOOL ? (int64_t)v->u.b : v->u.i; }

/* Python's exact comparison of an int and a float. */
static int cmp_int_float(int64_t i, double f) {
    if (isnan(f)) return 2; /* unordered */
    if (f >= 9223372036854775808.0) return -1;
    if (f < -9223372036854775808.0) return 1;
    double fl = floor(f);
    int64_t fi = (int64_t)fl;
    if (i < fi) return -1;
    if (i > fi) return 1;
    return fl < f ? -1 : 0;
}

/* -1 / 0 / 1, or 2 when unordered (NaN). Both numeric. */
static int num_cmp(const val *a, const val *b) {
    if (a->kind != VK_FLOAT && b->kind != VK_FLOAT) {
        int64_t x = as_int(a), y = as_int(b);
        return x < y ? -1 : x > y;
    }
    if (a->kind == VK_FLOAT && b->kind == VK_FLOAT) {
        if (isnan(a->u.f) || isnan(b->u.f)) return 2;
        return a->u.f < b->u.f ? -1 : a->u.f > b->u.f;
    }
    if (a->kind == VK_FLOAT) {
        int r = cmp_int_float(as_int(b), a->u.f);
        return r == 2 ? 2 : -r;
    }
    return cmp_int_float(as_int(a), b->u.f);
}

static int str_cmp(const tstr *a, const tstr *b) {
    size_t n = a->len < b->len ? a->len : b->len;
    int r = n ? memcmp(a->p, b->p, n) : 0;
    if (r) return r < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Depth-bounded ==: values nested deeper than this (only templates can build them) compare
 * unequal instead of exhausting the stack. */
static bool eq_rec(const val *a, const val *b, int depth);

bool v_eq(const val *a, const val *b) { return eq_rec(a, b, 0); }

static bool eq_rec(const val *a, const val *b, int depth) {
    if (depth > 400) return false;
    if (is_num(a) && is_num(b)) return num_cmp(a, b) == 0;
    if (a->kind != b->kind) return false;
    switch ((vkind)a->kind) {
    case VK_UNDEF:
    case VK_NONE: return true;
    case VK_STR: return a->u.s.len == b->u.s.len && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
    case VK_LIST:
        if (a->seq != b->seq || a->u.l.n != b->u.l.n) return false;
        if (a->seq != SEQ_LIST && a->seq != SEQ_TUPLE && a->seq != SEQ_RANGE) return a == b;
        for (size_t i = 0; i < a->u.l.n; i++)
            if (!eq_rec(a->u.l.v[i], b->u.l.v[i], depth + 1)) return false;
        return true;
    case VK_DICT: {
        const vdict *x = a->u.d, *y = b->u.d;
        if (x->n != y->n) return false;
        for (size_t i = 0; i < x->n; i++) {
            const val *o = vd_get(y, x->keys[i]);
            if (!o || !eq_rec(x->vals[i], o, depth + 1)) return false;
        }
        return true;
    }
    case VK_METHOD: return a->u.m.self == b->u.m.self && a->u.m.id == b->u.m.id;
    case VK_FUNC: return a->u.fn == b->u.fn;
    case VK_MACRO: return a->u.mac.m == b->u.mac.m;
    default: return a == b;
    }
}

const char *v_type_name(const val *v) {
    switch ((vkind)v->kind) {
    case VK_UNDEF: return "Undefined";
    case VK_NONE: return "NoneType";
    case VK_BOOL: return "bool";
    case VK_INT: return "int";
    case VK_FLOAT: return "float";
    case VK_STR: return "str";
    case VK_LIST: {
        static const char *const names[] = {"list", "tuple", "generator", "range", "dict_items", "dict_keys",
                                            "dict_values"};
        return names[v->seq];
    }
    case VK_DICT: return "dict";
    case VK_NS: return "Namespace";
    case VK_LOOP: return "LoopContext";
    case VK_MACRO: return "Macro";
    case VK_FUNC: return "function";
    case VK_METHOD: return "builtin_function_or_method";
    }
    return "object";
}

static int cmp_rec(rctx *c, const val *a, const val *b, int line, int depth);

int v_cmp(rctx *c, const val *a, const val *b, int line) { return cmp_rec(c, a, b, line, 0); }

static int cmp_rec(rctx *c, const val *a, const val *b, int line, int depth) {
    if (depth > 400) {
        rt_err(c, line, "values nested too deeply to compare");
        return -2;
    }
    if (a->kind == VK_UNDEF || b->kind == VK_UNDEF) {
        const val *u = a->kind == VK_UNDEF ? a : b;
        rt_err(c, line, "%s", u->u.hint ? u->u.hint : "undefined value");
        return -2;
    }
    if (is_num(a) && is_num(b)) {
        int r = num_cmp(a, b);
        return r == 2 ? 3 : r; /* 3: unordered, every ordering test is false */
    }
    if (a->kind == VK_STR && b->kind == VK_STR) return str_cmp(&a->u.s, &b->u.s);
    if (a->kind == VK_LIST && b->kind == VK_LIST && a->seq == b->seq && a->seq <= SEQ_TUPLE) {
        size_t n = a->u.l.n < b->u.l.n ? a->u.l.n : b->u.l.n;
        for (size_t i = 0; i < n; i++) {
            if (v_eq(a->u.l.v[i], b->u.l.v[i])) continue;
            return cmp_rec(c, a->u.l.v[i], b->u.l.v[i], line, depth + 1);
        }
        return a->u.l.n < b->u.l.n ? -1 : a->u.l.n > b->u.l.n;
    }
    rt_err(c, line, "'<' not supported between instances of '%s' and '%s'", v_type_name(a), v_type_name(b));
    return -2;
}

/* ---- str and repr ---------------------------------------------------------------------------- */

void fmt_float(double f, char *buf, size_t cap) {
    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        snprintf(buf, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp: [-]d[.ddd]e[+-]xx */
    bool neg = tmp[0] == '-';
    const char *p = tmp + neg;
    char digits[32];
    int nd = 0;
    while (*p && *p != 'e') {
        if (*p != '.') digits[nd++] = *p;
        p++;
    }
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp = atoi(p + 1);
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp - 1; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = digits[i];
    } else {
        for (int i = 0; i <= exp; i++) out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd > exp + 1)
            for (int i = exp + 1; i < nd; i++) out[o++] = digits[i];
        else
            out[o++] = '0';
    }
    out[o] = '\0';
    snprintf(buf, cap, "%s", out);
}

bool v_has_caller(const val *v, int depth) {
    if (depth > 200) return true;
    switch ((vkind)v->kind) {
    case VK_STR: return v->u.s.nsp != 0;
    case VK_LIST:
        for (size_t i = 0; i < v->u.l.n; i++)
            if (v_has_caller(v->u.l.v[i], depth + 1)) return true;
        return false;
    case VK_DICT:
    case VK_NS:
        for (size_t i = 0; i < v->u.d->n; i++)
            if (v_has_caller(v->u.d->keys[i], depth + 1) || v_has_caller(v->u.d->vals[i], depth + 1)) return true;
        return false;
    default: return v->caller != 0;
    }
}

/* Python's str.isprintable for one code point (via Unicode categories). */
static bool py_isprintable(uint32_t cp) {
    if (cp == ' ') return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static void repr_str(sbuf *b, tstr s) {
    bool sq = false, dq = false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '\'') sq = true;
        if (s.p[i] == '"') dq = true;
    }
    char q = sq && !dq ? '"' : '\'';
    sb_putc(b, q);
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        int n;
        uint32_t cp = utf8_decode(p, end, &n);
        char tmp[16];
        if (cp == (uint32_t)q || cp == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)cp;
            sb_put(b, tmp, 2, false);
        } else if (cp == '\t') {
            sb_puts(b, "\\t");
        } else if (cp == '\n') {
            sb_puts(b, "\\n");
        } else if (cp == '\r') {
            sb_puts(b, "\\r");
        } else if (cp < 0x20 || cp == 0x7F || (n == 1 && cp >= 0x80)) {
            snprintf(tmp, sizeof tmp, "\\x%02x", cp);
            sb_puts(b, tmp);
        } else if (cp >= 0x80 && !py_isprintable(cp)) {
            if (cp < 0x100) snprintf(tmp, sizeof tmp, "\\x%02x", cp);
            else if (cp < 0x10000) snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            else snprintf(tmp, sizeof tmp, "\\U%08x", cp);
            sb_puts(b, tmp);
        } else {
            sb_put(b, p, (size_t)n, false);
        }
        p += n;
    }
    sb_putc(b, q);
}

static bool repr_rec(rctx *c, const val *v, sbuf *b, int line, int depth) {
    if (depth > 200) return rt_err(c, line, "value nested too deeply to print"), false;
    char tmp[64];
    switch ((vkind)v->kind) {
    case VK_UNDEF: return true;
    case VK_NONE: sb_puts(b, "None"); return true;
    case VK_BOOL: sb_puts(b, v->u.b ? "True" : "False"); return true;
    case VK_INT: snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i); sb_puts(b, tmp); return true;
    case VK_FLOAT: fmt_float(v->u.f, tmp, sizeof tmp); sb_puts(b, tmp); return true;
    case VK_STR: repr_str(b, v->u.s); return true;
    case VK_LIST: {
        bool tuple = v->seq == SEQ_TUPLE;
        if (v->seq == SEQ_GEN || v->seq == SEQ_RANGE)
            return rt_err(c, line, "cannot print a %s (Python shows its memory address or constructor)",
                          v_type_name(v)), false;
        if (v->seq >= SEQ_ITEMS) {
            sb_puts(b, v_type_name(v));
            sb_putc(b, '(');
        }
        sb_putc(b, tuple ? '(' : '[');
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i) sb_puts(b, ", ");
            if (!rt_step(c, line, 1) || !repr_rec(c, v->u.l.v[i], b, line, depth + 1)) return false;
        }
        if (tuple && v->u.l.n == 1) sb_putc(b, ',');
        sb_putc(b, tuple ? ')' : ']');
        if (v->seq >= SEQ_ITEMS) sb_putc(b, ')');
        return true;
    }
    case VK_DICT:
    case VK_NS:
        if (v->kind == VK_NS) sb_puts(b, "<Namespace ");
        sb_putc(b, '{');
        for (size_t i = 0; i < v->u.d->n; i++) {
            if (i) sb_puts(b, ", ");
            if (!rt_step(c, line, 1) || !repr_rec(c, v->u.d->keys[i], b, line, depth + 1)) return false;
            sb_puts(b, ": ");
            if (!repr_rec(c, v->u.d->vals[i], b, line, depth + 1)) return false;
        }
        sb_putc(b, '}');
        if (v->kind == VK_NS) sb_putc(b, '>');
        return true;
    case VK_LOOP:
        snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", v->u.loop->i + 1, v->u.loop->n);
        sb_puts(b, tmp);
        return true;
    case VK_MACRO:
        sb_puts(b, "<Macro '");
        sb_puts(b, v->u.mac.m->name);
        sb_puts(b, "'>");
        return true;
    default:
        return rt_err(c, line, "cannot print a function or method (its Python repr holds a memory address)"), false;
    }
}

bool v_repr(rctx *c, const val *v, sbuf *b, int line) {
    size_t start = b->len;
    if (!repr_rec(c, v, b, line, 0)) return false;
    /* repr_rec writes template text only; a value holding caller content is caller content
     * as a whole */
    if (b->len > start && v_has_caller(v, 0)) sb_mark(b, start, b->len - start);
    if (b->oom) return mem_err(c), false;
    return true;
}

bool v_to_str(rctx *c, const val *v, tstr *out, int line) {
    char tmp[64];
    memset(out, 0, sizeof *out);
    switch ((vkind)v->kind) {
    case VK_STR: *out = v->u.s; return true;
    case VK_UNDEF: out->p = ""; return true;
    case VK_NONE: snprintf(tmp, sizeof tmp, "None"); break;
    case VK_BOOL: snprintf(tmp, sizeof tmp, "%s", v->u.b ? "True" : "False"); break;
    case VK_INT: snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i); break;
    case VK_FLOAT: fmt_float(v->u.f, tmp, sizeof tmp); break;
    default: {
        sbuf b;
        rt_sbuf(c, &b);
        if (!v_repr(c, v, &b, line)) {
            sb_free(&b);
            return false;
        }
        if (!sb_finish(&b, c->ar, out)) return mem_err(c), false;
        return true;
    }
    }
    size_t n = strlen(tmp);
    char *p = ar_strndup(c->ar, tmp, n);
    if (!p) return mem_err(c), false;
    out->p = p;
    out->len = n;
    if (v->caller) {
        tpl_span *sp = ar_alloc(c->ar, sizeof *sp);
        if (!sp) return mem_err(c), false;
        sp->off = 0;
        sp->len = n;
        out->sp = sp;
        out->nsp = 1;
    }
    return true;
}

/* ---- iteration and lookup -------------------------------------------------------------------- */

size_t tstr_cplen(tstr s) {
    size_t n = 0;
    const char *p = s.p, *end = s.p + s.len;
    while (p < end) {
        int k;
        utf8_decode(p, end, &k);
        p += k;
        n++;
    }
    return n;
}

/* The characters of a string as one-character strings. */
static bool str_chars(rctx *c, val *v, val ***items, size_t *n) {
    size_t cnt = tstr_cplen(v->u.s);
    val **it = cnt ? ar_alloc(c->ar, cnt * sizeof *it) : NULL;
    if (cnt && !it) return mem_err(c), false;
    const char *p = v->u.s.p, *end = p + v->u.s.len;
    for (size_t i = 0; i < cnt; i++) {
        int k;
        utf8_decode(p, end, &k);
        size_t off = (size_t)(p - v->u.s.p);
        tstr s;
        if (!tstr_sub(c->ar, v->u.s, off, off + (size_t)k, &s) || !(it[i] = v_str(c, s))) return mem_err(c), false;
        p += k;
    }
    *items = it;
    *n = cnt;
    return true;
}

bool v_iter(rctx *c, val *v, val ***items, size_t *n, int line) {
    *items = NULL;
    *n = 0;
    switch ((vkind)v->kind) {
    case VK_UNDEF: return true;
    case VK_LIST:
        if (v->seq == SEQ_GEN) {
            if (v->used)
                return rt_err(c, line, "a generator (from select, map, items, unique or reverse) is used a second "
                                       "time; jinja2 would find it exhausted (add |list)"), false;
            v->used = 1;
        }
        *items = v->u.l.v;
        *n = v->u.l.n;
        return true;
    case VK_DICT:
        *items = v->u.d->keys;
        *n = v->u.d->n;
        return true;
    case VK_STR: return rt_step(c, line, v->u.s.len / 16) && str_chars(c, v, items, n);
    case VK_LOOP:
        *items = v->u.loop->items;
        *n = v->u.loop->n;
        return true;
    default: return rt_err(c, line, "'%s' object is not iterable", v_type_name(v)), false;
    }
}

/* jinja2's object_type_repr for messages. */
static const char *obj_repr(const val *v) {
    switch ((vkind)v->kind) {
    case VK_NONE: return "None";
    case VK_BOOL: return "bool object";
    case VK_INT: return "int object";
    case VK_FLOAT: return "float object";
    case VK_STR: return "str object";
    case VK_LIST: {
        static const char *const names[] = {"list object", "tuple object", "generator object", "range object",
                                            "dict_items object", "dict_keys object", "dict_values object"};
        return names[v->seq];
    }
    case VK_DICT: return "dict object";
    case VK_NS: return "jinja2.utils.Namespace object";
    case VK_LOOP: return "jinja2.runtime.LoopContext object";
    default: return "object";
    }
}

static val *undef_attr(rctx *c, const val *obj, const char *name) {
    char buf[300];
    snprintf(buf, sizeof buf, "'%s' has no attribute '%.200s'", obj_repr(obj), name);
    char *h = ar_strndup(c->ar, buf, strlen(buf));
    if (!h) return mem_err(c);
    return v_undef(c, h);
}

static val *undef_item(rctx *c, const val *obj, const val *key, int line) {
    char buf[300];
    if (key->kind == VK_STR) {
        snprintf(buf, sizeof buf, "'%s' has no attribute '%.*s'", obj_repr(obj),
                 (int)(key->u.s.len > 200 ? 200 : key->u.s.len), key->u.s.p);
    } else {
        sbuf b;
        rt_sbuf(c, &b);
        if (!v_repr(c, key, &b, line)) {
            sb_free(&b);
            return NULL;
        }
        snprintf(buf, sizeof buf, "'%s' has no element %.200s", obj_repr(obj), b.p ? b.p : "");
        sb_free(&b);
    }
    char *h = ar_strndup(c->ar, buf, strlen(buf));
    if (!h) return mem_err(c);
    return v_undef(c, h);
}

static val *loop_attr(rctx *c, val *lv, const char *name) {
    loopobj *l = lv->u.loop;
    int64_t i = (int64_t)l->i, n = (int64_t)l->n;
    if (!strcmp(name, "index")) return v_int(c, i + 1);
    if (!strcmp(name, "index0")) return v_int(c, i);
    if (!strcmp(name, "revindex")) return v_int(c, n - i);
    if (!strcmp(name, "revindex0")) return v_int(c, n - i - 1);
    if (!strcmp(name, "first")) return v_bool(i == 0);
    if (!strcmp(name, "last")) return v_bool(i == n - 1);
    if (!strcmp(name, "length")) return v_int(c, n);
    if (!strcmp(name, "depth")) return v_int(c, l->depth);
    if (!strcmp(name, "depth0")) return v_int(c, l->depth - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? l->items[i - 1] : v_undef(c, "there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? l->items[i + 1] : v_undef(c, "there is no next item");
    return NULL;
}

val *v_getattr(rctx *c, val *obj, const char *name, int line) {
    if (obj->kind == VK_UNDEF) return rt_err(c, line, "%s", obj->u.hint ? obj->u.hint : "undefined value");
    if (name[0] == '_' && name[1] == '_') return undef_attr(c, obj, name);
    switch ((vkind)obj->kind) {
    case VK_DICT: {
        val *m = tpl_method_lookup(c, obj, name, line);
        if (m || c->failed) return m;
        val *v = vd_get_str(obj->u.d, name, strlen(name));
        return v ? v : undef_attr(c, obj, name);
    }
    case VK_NS: {
        val *v = vd_get_str(obj->u.d, name, strlen(name));
        return v ? v : undef_attr(c, obj, name);
    }
    case VK_LOOP: {
        val *v = loop_attr(c, obj, name);
        if (v || c->failed) return v;
        v = tpl_method_lookup(c, obj, name, line);
        if (v || c->failed) return v;
        return undef_attr(c, obj, name);
    }
    case VK_STR:
    case VK_LIST: {
        val *m = tpl_method_lookup(c, obj, name, line);
        if (m || c->failed) return m;
        return undef_attr(c, obj, name);
    }
    default: return undef_attr(c, obj, name);
    }
}

/* Python index normalisation: false when out of range. */
static bool norm_index(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *out = (size_t)i;
    return true;
}

/* Byte offset of code point `k` in s (k <= number of code points). */
static size_t cp_offset(tstr s, size_t k) {
    const char *p = s.p, *end = s.p + s.len;
    while (k > 0 && p < end) {
        int n;
        utf8_decode(p, end, &n);
        p += n;
        k--;
    }
    return (size_t)(p - s.p);
}

val *v_getitem(rctx *c, val *obj, val *key, int line) {
    if (obj->kind == VK_UNDEF) return rt_err(c, line, "%s", obj->u.hint ? obj->u.hint : "undefined value");
    bool int_key = key->kind == VK_INT || key->kind == VK_BOOL;
    switch ((vkind)obj->kind) {
    case VK_DICT: {
        if (!v_hashable(key)) break;
        val *v = vd_get(obj->u.d, key);
        if (v) return v;
        break;
    }
    case VK_LIST:
        if (int_key && obj->seq <= SEQ_RANGE && obj->seq != SEQ_GEN) {
            size_t i;
            if (norm_index(as_int(key), obj->u.l.n, &i)) return obj->u.l.v[i];
            return undef_item(c, obj, key, line);
        }
        break;
    case VK_STR:
        if (int_key) {
            size_t n = tstr_cplen(obj->u.s), i;
            if (!norm_index(as_int(key), n, &i)) return undef_item(c, obj, key, line);
            size_t a = cp_offset(obj->u.s, i), b = cp_offset(obj->u.s, i + 1);
            tstr s;
            if (!tstr_sub(c->ar, obj->u.s, a, b, &s)) return mem_err(c);
            return v_str(c, s);
        }
        break;
    default: break;
    }
    /* jinja2: a failed subscript with a string key falls back to the attribute */
    if (key->kind == VK_STR) {
        char *name = ar_strndup(c->ar, key->u.s.p, key->u.s.len);
        if (!name) return mem_err(c);
        if (strlen(name) != key->u.s.len) return undef_item(c, obj, key, line);
        if (obj->kind == VK_DICT) {
            val *m = tpl_method_lookup(c, obj, name, line);
            if (m || c->failed) return m;
            return undef_item(c, obj, key, line);
        }
        return v_getattr(c, obj, name, line);
    }
    return undef_item(c, obj, key, line);
}

/* ---- tojson ---------------------------------------------------------------------------------- */

static void json_str(sbuf *b, tstr s, bool ensure_ascii) {
    sb_putc(b, '"');
    const char *p = s.p, *end = s.p + s.len, *run = p;
    while (p < end) {
        unsigned char ch = (unsigned char)*p;
        const char *esc = NULL;
        char tmp[16];
        int n = 1;
        if (ch == '"') esc = "\\\"";
        else if (ch == '\\') esc = "\\\\";
        else if (ch == '\n') esc = "\\n";
        else if (ch == '\r') esc = "\\r";
        else if (ch == '\t') esc = "\\t";
        else if (ch == '\b') esc = "\\b";
        else if (ch == '\f') esc = "\\f";
        else if (ch < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", ch);
            esc = tmp;
        } else if (ch >= 0x80 && ensure_ascii) {
            uint32_t cp = utf8_decode(p, end, &n);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
            esc = tmp;
        }
        if (esc) {
            sb_put(b, run, (size_t)(p - run), false);
            sb_puts(b, esc);
            p += n;
            run = p;
        } else {
            p++;
        }
    }
    sb_put(b, run, (size_t)(p - run), false);
    sb_putc(b, '"');
}

static void json_num(sbuf *b, const val *v) {
    char tmp[64];
    if (v->kind == VK_BOOL) {
        sb_puts(b, v->u.b ? "true" : "false");
    } else if (v->kind == VK_INT) {
        snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
        sb_puts(b, tmp);
    } else if (isnan(v->u.f)) {
        sb_puts(b, "NaN");
    } else if (isinf(v->u.f)) {
        sb_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
    } else {
        fmt_float(v->u.f, tmp, sizeof tmp);
        sb_puts(b, tmp);
    }
}

static void json_newline(sbuf *b, int indent_n, const char *indent_s, int level) {
    sb_putc(b, '\n');
    for (int i = 0; i < level; i++) {
        if (indent_s) sb_puts(b, indent_s);
        else
            for (int k = 0; k < indent_n; k++) sb_putc(b, ' ');
    }
}

bool v_tojson(rctx *c, const val *v, sbuf *b, int indent_n, const char *indent_s, const char *item_sep,
              const char *key_sep, bool sort_keys, bool ensure_ascii, int level, int line) {
    if (level > 500) return rt_err(c, line, "tojson: value nested too deeply"), false;
    if (!rt_step(c, line, 1)) return false;
    bool pretty = indent_s || indent_n >= 0;
    switch ((vkind)v->kind) {
    case VK_NONE: sb_puts(b, "null"); return true;
    case VK_BOOL:
    case VK_INT:
    case VK_FLOAT: json_num(b, v); return true;
    case VK_STR: json_str(b, v->u.s, ensure_ascii); return true;
    case VK_LIST:
        if (v->seq != SEQ_LIST && v->seq != SEQ_TUPLE)
            return rt_err(c, line, "Object of type %s is not JSON serializable", v_type_name(v)), false;
        if (v->u.l.n == 0) {
            sb_puts(b, "[]");
            return true;
        }
        sb_putc(b, '[');
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i) sb_puts(b, item_sep);
            if (pretty) json_newline(b, indent_n, indent_s, level + 1);
            if (!v_tojson(c, v->u.l.v[i], b, indent_n, indent_s, item_sep, key_sep, sort_keys, ensure_ascii,
                          level + 1, line))
                return false;
        }
        if (pretty) json_newline(b, indent_n, indent_s, level);
        sb_putc(b, ']');
        return true;
    case VK_DICT: {
        const vdict *d = v->u.d;
        if (d->n == 0) {
            sb_puts(b, "{}");
            return true;
        }
        size_t *order = malloc(d->n * sizeof *order);
        if (!order) return mem_err(c), false;
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        bool ok = true;
        if (sort_keys) { /* insertion sort keeps it stable and simple; keys must be strings */
            for (size_t i = 0; i < d->n && ok; i++)
                if (d->keys[i]->kind != VK_STR) {
                    rt_err(c, line, "tojson: sort_keys needs string keys");
                    ok = false;
                }
            for (size_t i = 1; i < d->n && ok; i++) {
                size_t x = order[i], j = i;
                while (j > 0 && str_cmp(&d->keys[order[j - 1]]->u.s, &d->keys[x]->u.s) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        sb_putc(b, '{');
        for (size_t k = 0; k < d->n && ok; k++) {
            size_t i = order[k];
            const val *key = d->keys[i];
            if (k) sb_puts(b, item_sep);
            if (pretty) json_newline(b, indent_n, indent_s, level + 1);
            if (key->kind == VK_STR) {
                json_str(b, key->u.s, ensure_ascii);
            } else if (key->kind == VK_NONE) {
                sb_puts(b, "\"null\"");
            } else if (is_num(key)) {
                sb_putc(b, '"');
                json_num(b, key);
                sb_putc(b, '"');
            } else {
                rt_err(c, line, "keys must be str, int, float, bool or None, not %s", v_type_name(key));
                ok = false;
                break;
            }
            sb_puts(b, key_sep);
            ok = v_tojson(c, d->vals[i], b, indent_n, indent_s, item_sep, key_sep, sort_keys, ensure_ascii,
                          level + 1, line);
        }
        free(order);
        if (!ok) return false;
        if (pretty) json_newline(b, indent_n, indent_s, level);
        sb_putc(b, '}');
        return true;
    }
    default:
        return rt_err(c, line, "Object of type %s is not JSON serializable", v_type_name(v)), false;
    }
}
