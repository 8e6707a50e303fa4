/* Template evaluator: runs the syntax tree against a JSON context and writes the output with
 * provenance. Also the public entry points (compile, render, free) and the conversion of the
 * JSON context into values, where everything under the caller keys (messages, tools,
 * documents) becomes caller content.
 *
 * Scoping follows jinja2: the template has one top-level scope; every iteration of a for loop
 * and every macro call gets a fresh scope (so `set` inside a loop does not leak out, which is
 * why templates use namespace()); if blocks do not open a scope.
 *
 * Every statement and expression node costs a step; captured blocks and macro calls count as
 * nesting; all memory comes from one arena with a limit. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl_internal.h"

enum { MAX_RDEPTH = 1500 };

typedef struct scope {
    struct scope *parent;
    const char **names;
    val **vals;
    size_t n, cap;
    bool captured; /* a macro defined here refers to it: it must not be reused */
} scope;

static scope *scope_push(rctx *c);

/* A scope for one loop iteration: the previous iteration's, emptied, unless a macro kept it. */
static scope *scope_reuse(rctx *c, scope *prev) {
    if (prev && !prev->captured) {
        prev->n = 0;
        c->sc = prev;
        return prev;
    }
    return scope_push(c);
}

/* ---- scopes ---------------------------------------------------------------------------------- */

static scope *scope_push(rctx *c) {
    scope *s = ar_alloc(c->ar, sizeof *s);
    if (!s) {
        rt_err(c, 0, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        return NULL;
    }
    s->parent = c->sc;
    c->sc = s;
    return s;
}

static bool scope_set(rctx *c, scope *s, const char *name, val *v) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return true;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const char **nn = ar_realloc(c->ar, s->names, s->n, cap, sizeof *nn);
        val **nv = ar_realloc(c->ar, s->vals, s->n, cap, sizeof *nv);
        if (!nn || !nv) {
            rt_err(c, 0, "template exceeded its memory limit (%zu bytes)", c->max_memory);
            return false;
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
    return true;
}

static val *lookup(rctx *c, const char *name, int line) {
    for (scope *s = c->sc; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) return s->vals[i];
    val *v = vd_get_str(c->globals, name, strlen(name));
    if (v) return v;
    int fn = tpl_global_id(name);
    if (fn >= 0) {
        v = v_new(c, VK_FUNC);
        if (v) v->u.fn = fn;
        return v;
    }
    size_t n = strlen(name);
    char *hint = ar_alloc(c->ar, n + 32);
    if (!hint) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    memcpy(hint, "'", 1);
    memcpy(hint + 1, name, n);
    memcpy(hint + 1 + n, "' is undefined", 15);
    return v_undef(c, hint);
}

/* ---- expressions ----------------------------------------------------------------------------- */

static val *eval(rctx *c, const expr *e);

static val *undefined_error(rctx *c, const val *u, int line) {
    return rt_err(c, line, "%s", u->u.hint ? u->u.hint : "undefined value");
}

/* Evaluates n expressions into a new array (*out NULL when n == 0). */
static bool eval_exprs(rctx *c, expr *const *es, size_t n, val ***out) {
    *out = NULL;
    if (!n) return true;
    val **v = ar_alloc(c->ar, n * sizeof *v);
    if (!v) return rt_err(c, 0, "template exceeded its memory limit (%zu bytes)", c->max_memory), false;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = eval(c, es[i]))) return false;
    *out = v;
    return true;
}

static bool eval_args(rctx *c, const args *a, vargs *out) {
    memset(out, 0, sizeof *out);
    out->npos = a->npos;
    out->kwn = a->kwn;
    out->nkw = a->nkw;
    return eval_exprs(c, a->pos, a->npos, &out->pos) && eval_exprs(c, a->kwv, a->nkw, &out->kwv);
}

static bool is_num(const val *v) { return v->kind == VK_BOOL || v->kind == VK_INT || v->kind == VK_FLOAT; }
static int64_t as_int(const val *v) { return v->kind == VK_BOOL ? (int64_t)v->u.b : v->u.i; }
static double as_double(const val *v) { return v->kind == VK_FLOAT ? v->u.f : (double)as_int(v); }

static const char *op_sym(int op) {
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    case OP_POW: return "** or pow()";
    default: return "?";
    }
}

/* Python's float divmod. */
static void float_divmod(double vx, double wx, double *fdiv, double *fmod_out) {
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod != 0.0) {
        if ((wx < 0) != (mod < 0)) {
            mod += wx;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, wx);
    }
    double floordiv;
    if (div != 0.0) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    *fdiv = floordiv;
    *fmod_out = mod;
}

static val *overflow(rctx *c, int line) {
    return rt_err(c, line, "integer overflow (Python's unbounded integers are not supported)");
}

static val *num_binop(rctx *c, int op, const val *a, const val *b, int line) {
    if (a->kind != VK_FLOAT && b->kind != VK_FLOAT) {
        int64_t x = as_int(a), y = as_int(b), r;
        switch (op) {
        case OP_ADD: if (__builtin_add_overflow(x, y, &r)) return overflow(c, line); return v_int(c, r);
        case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) return overflow(c, line); return v_int(c, r);
        case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) return overflow(c, line); return v_int(c, r);
        case OP_DIV:
            if (y == 0) return rt_err(c, line, "division by zero");
            return v_float(c, (double)x / (double)y);
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0) return rt_err(c, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) return overflow(c, line);
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q -= 1;
                m += y;
            }
            return v_int(c, op == OP_MOD ? m : q);
        }
        case OP_POW: {
            if (y < 0) {
                if (x == 0) return rt_err(c, line, "0.0 cannot be raised to a negative power");
                return v_float(c, pow((double)x, (double)y));
            }
            int64_t acc = 1, base = x;
            while (y > 0) {
                if (y & 1)
                    if (__builtin_mul_overflow(acc, base, &acc)) return overflow(c, line);
                y >>= 1;
                if (y && __builtin_mul_overflow(base, base, &base)) return overflow(c, line);
            }
            return v_int(c, acc);
        }
        default: break;
        }
    }
    double x = as_double(a), y = as_double(b);
    switch (op) {
    case OP_ADD: return v_float(c, x + y);
    case OP_SUB: return v_float(c, x - y);
    case OP_MUL: return v_float(c, x * y);
    case OP_DIV:
        if (y == 0.0) return rt_err(c, line, "float division by zero");
        return v_float(c, x / y);
    case OP_FLOORDIV:
    case OP_MOD: {
        if (y == 0.0) return rt_err(c, line, "float floor division by zero");
        double d, m;
        float_divmod(x, y, &d, &m);
        return v_float(c, op == OP_MOD ? m : d);
    }
    case OP_POW:
        if (x == 0.0 && y < 0) return rt_err(c, line, "0.0 cannot be raised to a negative power");
        if (x < 0 && y != floor(y)) return rt_err(c, line, "complex results are not supported");
        return v_float(c, pow(x, y));
    default: return rt_err(c, line, "bad operator");
    }
}

static val *repeat(rctx *c, const val *seq, int64_t times, int line) {
    if (times < 0) times = 0;
    if (seq->kind == VK_STR) {
        size_t len = seq->u.s.len;
        if (len && (uint64_t)times > c->max_memory / len)
            return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        size_t total = len * (size_t)times;
        if (!rt_step(c, line, total / 64 + 1)) return NULL;
        sbuf b;
        rt_sbuf(c, &b);
        if (total && sb_reserve(&b, total)) {
            /* one copy, then doubling: copies of the buffer's own prefix */
            sb_put_tstr(&b, seq->u.s);
            while (b.len < total && !b.oom) {
                size_t chunk = b.len < total - b.len ? b.len : total - b.len;
                size_t base = b.len, nsp = b.nsp;
                memcpy(b.p + base, b.p, chunk);
                b.len += chunk;
                b.p[b.len] = '\0';
                for (size_t i = 0; i < nsp && b.sp[i].off < chunk; i++) {
                    size_t end = b.sp[i].off + b.sp[i].len;
                    sb_mark(&b, base + b.sp[i].off, (end < chunk ? end : chunk) - b.sp[i].off);
                }
            }
        }
        tstr out;
        if (!sb_finish(&b, c->ar, &out)) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        return v_str(c, out);
    }
    size_t n = seq->u.l.n;
    if (n && (uint64_t)times > c->max_memory / (n * sizeof(val *)))
        return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    size_t total = n * (size_t)times;
    if (!rt_step(c, line, total)) return NULL;
    val **items = total ? ar_alloc(c->ar, total * sizeof *items) : NULL;
    if (total && !items) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    for (size_t i = 0; i < total; i++) items[i] = seq->u.l.v[i % n];
    return v_seq(c, items, total, seq->seq);
}

static val *binop(rctx *c, int op, val *a, val *b, int line) {
    if (a->kind == VK_UNDEF) return undefined_error(c, a, line);
    if (b->kind == VK_UNDEF) return undefined_error(c, b, line);
    if (is_num(a) && is_num(b)) return num_binop(c, op, a, b, line);
    if (op == OP_ADD) {
        if (a->kind == VK_STR && b->kind == VK_STR) {
            sbuf s;
            rt_sbuf(c, &s);
            sb_put_tstr(&s, a->u.s);
            sb_put_tstr(&s, b->u.s);
            tstr out;
            if (!sb_finish(&s, c->ar, &out)) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
            return v_str(c, out);
        }
        if (a->kind == VK_LIST && b->kind == VK_LIST && a->seq == b->seq && a->seq <= SEQ_TUPLE) {
            size_t n = a->u.l.n + b->u.l.n;
            if (!rt_step(c, line, n)) return NULL;
            val **items = n ? ar_alloc(c->ar, n * sizeof *items) : NULL;
            if (n && !items) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
            if (a->u.l.n) memcpy(items, a->u.l.v, a->u.l.n * sizeof *items);
            if (b->u.l.n) memcpy(items + a->u.l.n, b->u.l.v, b->u.l.n * sizeof *items);
            return v_seq(c, items, n, a->seq);
        }
        if (a->kind == VK_STR) return rt_err(c, line, "can only concatenate str (not \"%s\") to str", v_type_name(b));
        if (a->kind == VK_LIST && a->seq <= SEQ_TUPLE)
            return rt_err(c, line, "can only concatenate %s (not \"%s\") to %s", v_type_name(a), v_type_name(b),
                          v_type_name(a));
    }
    if (op == OP_MUL) {
        bool sa = a->kind == VK_STR || (a->kind == VK_LIST && a->seq <= SEQ_TUPLE);
        bool sb = b->kind == VK_STR || (b->kind == VK_LIST && b->seq <= SEQ_TUPLE);
        if (sa && (b->kind == VK_INT || b->kind == VK_BOOL)) return repeat(c, a, as_int(b), line);
        if (sb && (a->kind == VK_INT || a->kind == VK_BOOL)) return repeat(c, b, as_int(a), line);
    }
    if (op == OP_MOD && a->kind == VK_STR)
        return rt_err(c, line, "printf-style string formatting ('...' %% value) is not supported");
    return rt_err(c, line, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op), v_type_name(a),
                  v_type_name(b));
}

/* `item in container`: 1 / 0, -1 on error. */
static int contains(rctx *c, val *container, val *item, int line) {
    switch ((vkind)container->kind) {
    case VK_UNDEF: return 0;
    case VK_STR: {
        if (item->kind != VK_STR) {
            rt_err(c, line, "'in <string>' requires string as left operand, not %s", v_type_name(item));
            return -1;
        }
        if (item->u.s.len == 0) return 1;
        if (item->u.s.len > container->u.s.len) return 0;
        if (!rt_step(c, line, container->u.s.len / 64)) return -1;
        return memmem(container->u.s.p, container->u.s.len, item->u.s.p, item->u.s.len) != NULL;
    }
    case VK_LIST: {
        val **items;
        size_t n;
        if (!v_iter(c, container, &items, &n, line) || !rt_step(c, line, n)) return -1;
        for (size_t i = 0; i < n; i++)
            if (v_eq(items[i], item)) return 1;
        return 0;
    }
    case VK_DICT:
        if (!v_hashable(item)) {
            rt_err(c, line, "unhashable type: '%s'", v_type_name(item));
            return -1;
        }
        return vd_get(container->u.d, item) != NULL;
    default:
        rt_err(c, line, "argument of type '%s' is not iterable", v_type_name(container));
        return -1;
    }
}

static val *eval_cmp(rctx *c, const expr *e) {
    val *left = eval(c, e->u.cmp.first);
    if (!left) return NULL;
    for (size_t i = 0; i < e->u.cmp.n; i++) {
        val *right = eval(c, e->u.cmp.rest[i]);
        if (!right) return NULL;
        bool r;
        int op = e->u.cmp.ops[i];
        if (left->kind == VK_STR && right->kind == VK_STR && !rt_step(c, e->line, left->u.s.len / 64)) return NULL;
        switch (op) {
        case CMP_EQ: r = v_eq(left, right); break;
        case CMP_NE: r = !v_eq(left, right); break;
        case CMP_IN:
        case CMP_NOTIN: {
            int k = contains(c, right, left, e->line);
            if (k < 0) return NULL;
            r = op == CMP_IN ? k == 1 : k == 0;
            break;
        }
        default: {
            int k = v_cmp(c, left, right, e->line);
            if (k == -2) return NULL;
            if (k == 3) r = false;
            else if (op == CMP_LT) r = k < 0;
            else if (op == CMP_LE) r = k <= 0;
            else if (op == CMP_GT) r = k > 0;
            else r = k >= 0;
        }
        }
        if (!r) return v_bool(false);
        left = right;
    }
    return v_bool(true);
}

/* Python slice bounds (PySlice_AdjustIndices). */
static bool slice_bound(rctx *c, const val *v, int64_t *out, bool *given, int line) {
    *given = false;
    if (!v || v->kind == VK_NONE) return true;
    if (v->kind != VK_INT && v->kind != VK_BOOL) {
        rt_err(c, line, "slice indices must be integers or None");
        return false;
    }
    *out = as_int(v);
    *given = true;
    return true;
}

/* A literal jinja2 folds at compile time (its optimizer evaluates constant subtrees, and a
 * failing constant subscript folds to undefined instead of raising). */
static bool is_const_expr(const expr *e, int depth) {
    if (!e) return true;
    if (depth > 50) return false;
    switch (e->k) {
    case E_CONST: return true;
    case E_LIST:
    case E_TUPLE:
        for (size_t i = 0; i < e->u.list.n; i++)
            if (!is_const_expr(e->u.list.v[i], depth + 1)) return false;
        return true;
    case E_DICT:
        for (size_t i = 0; i < e->u.dict.n; i++)
            if (!is_const_expr(e->u.dict.keys[i], depth + 1) || !is_const_expr(e->u.dict.vals[i], depth + 1))
                return false;
        return true;
    default: return false;
    }
}

static val *eval_slice(rctx *c, const expr *e) {
    val *obj = eval(c, e->u.slice.obj);
    if (!obj) return NULL;
    val *sv[3] = {NULL, NULL, NULL};
    const expr *parts[3] = {e->u.slice.start, e->u.slice.stop, e->u.slice.step};
    for (int i = 0; i < 3; i++)
        if (parts[i] && !(sv[i] = eval(c, parts[i]))) return NULL;
    if (obj->kind == VK_UNDEF) return undefined_error(c, obj, e->line);
    if ((obj->kind != VK_LIST && obj->kind != VK_STR) || (obj->kind == VK_LIST && obj->seq > SEQ_RANGE) ||
        (obj->kind == VK_LIST && obj->seq == SEQ_GEN)) {
        /* jinja2 slices with Python's own [] (no sandbox fallback), except in folded literals */
        if (is_const_expr(e->u.slice.obj, 0) && is_const_expr(e->u.slice.start, 0) &&
            is_const_expr(e->u.slice.stop, 0) && is_const_expr(e->u.slice.step, 0))
            return v_undef(c, "this value cannot be sliced");
        if (obj->kind == VK_DICT) return rt_err(c, e->line, "unhashable type: 'slice'");
        return rt_err(c, e->line, "'%s' object is not subscriptable", v_type_name(obj));
    }
    int64_t start = 0, stop = 0, step = 1;
    bool gs, ge, gt;
    if (!slice_bound(c, sv[0], &start, &gs, e->line) || !slice_bound(c, sv[1], &stop, &ge, e->line) ||
        !slice_bound(c, sv[2], &step, &gt, e->line))
        return NULL;
    if (step == 0) return rt_err(c, e->line, "slice step cannot be zero");
    /* code points of a string, items of a list */
    if (obj->kind == VK_STR && !rt_step(c, e->line, obj->u.s.len / 64)) return NULL;
    size_t n = obj->kind == VK_STR ? tstr_cplen(obj->u.s) : obj->u.l.n;
    int64_t len = (int64_t)n;
    int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? len : len - 1;
    if (!gs) start = step > 0 ? lower : upper;
    else {
        if (start < 0) start += len;
        if (start < lower) start = lower;
        else if (start > upper) start = upper;
    }
    if (!ge) stop = step > 0 ? upper : lower;
    else {
        if (stop < 0) stop += len;
        if (stop < lower) stop = lower;
        else if (stop > upper) stop = upper;
    }
    int64_t count = 0;
    if (step > 0 && stop > start) count = (stop - start - 1) / step + 1;
    if (step < 0 && start > stop) count = (start - stop - 1) / (-step) + 1;
    if (!rt_step(c, e->line, (uint64_t)count)) return NULL;
    if (obj->kind == VK_LIST) {
        val **items = count ? ar_alloc(c->ar, (size_t)count * sizeof *items) : NULL;
        if (count && !items) return rt_err(c, e->line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        for (int64_t i = 0; i < count; i++) items[i] = obj->u.l.v[start + i * step];
        return v_seq(c, items, (size_t)count, obj->seq);
    }
    /* string: byte offsets of every code point */
    size_t *offs = malloc((n + 1) * sizeof *offs);
    if (!offs) return rt_err(c, e->line, "out of memory");
    const char *p = obj->u.s.p, *end = p + obj->u.s.len;
    for (size_t i = 0; i <= n; i++) {
        offs[i] = (size_t)(p - obj->u.s.p);
        if (p < end) {
            int k;
            utf8_decode(p, end, &k);
            p += k;
        }
    }
    tstr out;
    if (step == 1) {
        bool ok = count == 0 ? tstr_sub(c->ar, obj->u.s, 0, 0, &out)
                             : tstr_sub(c->ar, obj->u.s, offs[start], offs[start + count], &out);
        free(offs);
        if (!ok) return rt_err(c, e->line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        return v_str(c, out);
    }
    sbuf b;
    rt_sbuf(c, &b);
    for (int64_t i = 0; i < count; i++) {
        size_t k = (size_t)(start + i * step);
        sb_put(&b, obj->u.s.p + offs[k], offs[k + 1] - offs[k], tstr_caller_at(obj->u.s, offs[k]));
    }
    free(offs);
    if (!sb_finish(&b, c->ar, &out)) return rt_err(c, e->line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    return v_str(c, out);
}

static val *eval_call(rctx *c, const expr *e) {
    val *fn = eval(c, e->u.call.fn);
    if (!fn) return NULL;
    vargs a;
    if (!eval_args(c, &e->u.call.a, &a)) return NULL;
    switch ((vkind)fn->kind) {
    case VK_FUNC: return tpl_call_func(c, fn->u.fn, &a, e->line);
    case VK_METHOD: return tpl_call_method(c, fn, &a, e->line);
    case VK_MACRO: return rt_call_macro(c, fn, &a, e->line);
    case VK_UNDEF: return undefined_error(c, fn, e->line);
    default: return rt_err(c, e->line, "'%s' object is not callable", v_type_name(fn));
    }
}

static val *eval_concat(rctx *c, const expr *e) {
    sbuf b;
    rt_sbuf(c, &b);
    for (size_t i = 0; i < e->u.list.n; i++) {
        val *v = eval(c, e->u.list.v[i]);
        tstr s;
        if (!v || !v_to_str(c, v, &s, e->line)) {
            sb_free(&b);
            return NULL;
        }
        sb_put_tstr(&b, s);
    }
    tstr out;
    if (!sb_finish(&b, c->ar, &out)) return rt_err(c, e->line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
    return v_str(c, out);
}

static val *eval_node(rctx *c, const expr *e);

/* Recursion through eval and exec is bounded as a whole (c->rdepth), so neither a long
 * left-nested expression (1+1+1+...) nor macros calling macros can exhaust the stack. */
static bool enter(rctx *c, int line) {
    if (++c->rdepth > MAX_RDEPTH) {
        c->rdepth--;
        rt_err(c, line, "template nested too deeply (more than %d levels of expressions and blocks)", MAX_RDEPTH);
        return false;
    }
    return true;
}

static val *eval(rctx *c, const expr *e) {
    if (!rt_step(c, e->line, 1) || !enter(c, e->line)) return NULL;
    val *v = eval_node(c, e);
    c->rdepth--;
    return v;
}

static val *eval_node(rctx *c, const expr *e) {
    switch (e->k) {
    case E_CONST: return e->u.c;
    case E_NAME: return lookup(c, e->u.name, e->line);
    case E_ATTR: {
        val *o = eval(c, e->u.attr.obj);
        return o ? v_getattr(c, o, e->u.attr.name, e->line) : NULL;
    }
    case E_ITEM: {
        val *o = eval(c, e->u.item.obj);
        val *k = o ? eval(c, e->u.item.idx) : NULL;
        return k ? v_getitem(c, o, k, e->line) : NULL;
    }
    case E_SLICE: return eval_slice(c, e);
    case E_CALL: return eval_call(c, e);
    case E_FILTER: {
        val *v = e->u.filter.obj ? eval(c, e->u.filter.obj) : NULL;
        vargs a;
        if (!v || !eval_args(c, &e->u.filter.a, &a)) return NULL;
        return tpl_apply_filter(c, e->u.filter.id, e->u.filter.name, v, &a, e->line);
    }
    case E_TEST: {
        val *v = eval(c, e->u.filter.obj);
        vargs a;
        if (!v || !eval_args(c, &e->u.filter.a, &a)) return NULL;
        int r = tpl_apply_test(c, e->u.filter.id, e->u.filter.name, v, &a, e->line);
        return r < 0 ? NULL : v_bool(r == 1);
    }
    case E_NEG:
    case E_POS: {
        val *v = eval(c, e->u.un);
        if (!v) return NULL;
        if (v->kind == VK_UNDEF) return undefined_error(c, v, e->line);
        if (!is_num(v))
            return rt_err(c, e->line, "bad operand type for unary %s: '%s'", e->k == E_NEG ? "-" : "+", v_type_name(v));
        if (e->k == E_POS) return v->kind == VK_BOOL ? v_int(c, as_int(v)) : v;
        if (v->kind == VK_FLOAT) return v_float(c, -v->u.f);
        if (as_int(v) == INT64_MIN) return overflow(c, e->line);
        return v_int(c, -as_int(v));
    }
    case E_NOT: {
        val *v = eval(c, e->u.un);
        return v ? v_bool(!v_truthy(v)) : NULL;
    }
    case E_BIN: {
        val *l = eval(c, e->u.bin.l);
        val *r = l ? eval(c, e->u.bin.r) : NULL;
        return r ? binop(c, e->u.bin.op, l, r, e->line) : NULL;
    }
    case E_AND:
    case E_OR: {
        val *l = eval(c, e->u.bin.l);
        if (!l) return NULL;
        if (v_truthy(l) == (e->k == E_OR)) return l;
        return eval(c, e->u.bin.r);
    }
    case E_CMP: return eval_cmp(c, e);
    case E_COND: {
        val *t = eval(c, e->u.cond.test);
        if (!t) return NULL;
        if (v_truthy(t)) return eval(c, e->u.cond.then);
        if (e->u.cond.els) return eval(c, e->u.cond.els);
        return v_undef(c, "the inline if-expression evaluated to false and no else section was defined.");
    }
    case E_CONCAT: return eval_concat(c, e);
    case E_LIST:
    case E_TUPLE: {
        size_t n = e->u.list.n;
        val **items;
        if (!eval_exprs(c, e->u.list.v, n, &items)) return NULL;
        return v_seq(c, items, n, e->k == E_TUPLE ? SEQ_TUPLE : SEQ_LIST);
    }
    case E_DICT: {
        vdict *d = vd_new(c);
        if (!d) return NULL;
        for (size_t i = 0; i < e->u.dict.n; i++) {
            val *k = eval(c, e->u.dict.keys[i]);
            val *v = k ? eval(c, e->u.dict.vals[i]) : NULL;
            if (!v) return NULL;
            if (!v_hashable(k))
                return rt_err(c, e->line, "unhashable type: '%s'", v_type_name(k));
            if (!vd_set(c, d, k, v)) return NULL;
        }
        return v_dict(c, d);
    }
    }
    return rt_err(c, e->line, "bad expression");
}

/* ---- statements ------------------------------------------------------------------------------ */

static bool exec_body(rctx *c, const body *b);

static bool out_ok(rctx *c, int line) {
    if (c->out->oom) {
        rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        return false;
    }
    return true;
}

static bool assign(rctx *c, const target *tg, val *v, int line) {
    switch (tg->kind) {
    case TG_NAME: return scope_set(c, c->sc, tg->name, v);
    case TG_NSATTR: {
        val *ns = lookup(c, tg->name, line);
        if (!ns) return false;
        if (ns->kind != VK_NS) return rt_err(c, line, "cannot assign attribute on non-namespace object"), false;
        val *k = v_lit(c, tg->attr);
        return k && vd_set(c, ns->u.d, k, v);
    }
    default: {
        val **items;
        size_t n;
        if (!v_iter(c, v, &items, &n, line)) return false;
        if (n > tg->n) return rt_err(c, line, "too many values to unpack (expected %zu)", tg->n), false;
        if (n < tg->n) return rt_err(c, line, "not enough values to unpack (expected %zu, got %zu)", tg->n, n), false;
        for (size_t i = 0; i < n; i++)
            if (!assign(c, tg->items[i], items[i], line)) return false;
        return true;
    }
    }
}

/* Runs a body into a fresh buffer and returns what it wrote. */
static bool capture(rctx *c, const body *b, tstr *out, int line) {
    if (++c->depth > c->max_depth) {
        c->depth--;
        return rt_err(c, line, "template nested too deeply (more than %d levels of macro calls and captured blocks)", c->max_depth), false;
    }
    sbuf buf;
    rt_sbuf(c, &buf);
    sbuf *saved = c->out;
    c->out = &buf;
    bool ok = exec_body(c, b);
    c->out = saved;
    c->depth--;
    if (!ok) {
        sb_free(&buf);
        return false;
    }
    if (buf.oom) {
        sb_free(&buf);
        return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory), false;
    }
    if (!sb_finish(&buf, c->ar, out)) return rt_err(c, line, "template exceeded its memory limit (%zu bytes)", c->max_memory), false;
    return true;
}

static val *apply_filters(rctx *c, val *v, const filtercall *fs, size_t nf) {
    for (size_t i = 0; i < nf && v; i++) {
        vargs a;
        if (!eval_args(c, &fs[i].a, &a)) return NULL;
        v = tpl_apply_filter(c, fs[i].id, fs[i].name, v, &a, fs[i].line);
    }
    return v;
}

static bool exec_for(rctx *c, const stmt *s) {
    val *it = eval(c, s->u.loop.iter);
    if (!it) return false;
    val **items;
    size_t n;
    if (!v_iter(c, it, &items, &n, s->line)) return false;
    if (s->u.loop.filter) {
        val **kept = n ? ar_alloc(c->ar, n * sizeof *kept) : NULL;
        if (n && !kept) return rt_err(c, s->line, "template exceeded its memory limit (%zu bytes)", c->max_memory), false;
        size_t k = 0;
        scope *saved = c->sc, *iter_sc = NULL;
        for (size_t i = 0; i < n; i++) {
            if (!rt_step(c, s->line, 1) || !(iter_sc = scope_reuse(c, iter_sc)) || !assign(c, s->u.loop.tg, items[i], s->line)) {
                c->sc = saved;
                return false;
            }
            val *t = eval(c, s->u.loop.filter);
            c->sc = saved;
            if (!t) return false;
            if (v_truthy(t)) kept[k++] = items[i];
        }
        items = kept;
        n = k;
    }
    if (n == 0) return exec_body(c, &s->u.loop.els);
    loopobj *lo = ar_alloc(c->ar, sizeof *lo);
    val *lv = v_new(c, VK_LOOP);
    if (!lo || !lv) return rt_err(c, s->line, "template exceeded its memory limit (%zu bytes)", c->max_memory), false;
    lo->items = items;
    lo->n = n;
    lo->depth = 1;
    lv->u.loop = lo;
    scope *saved = c->sc, *iter_sc = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!rt_step(c, s->line, 1)) return false;
        lo->i = i;
        bool ok = (iter_sc = scope_reuse(c, iter_sc)) != NULL && scope_set(c, c->sc, "loop", lv) &&
                  assign(c, s->u.loop.tg, items[i], s->line) && exec_body(c, &s->u.loop.b);
        c->sc = saved;
        if (!ok) return false;
        if (c->brk == BRK_BREAK) {
            c->brk = 0;
            break;
        }
        c->brk = 0;
    }
    return true;
}

static bool exec_stmt(rctx *c, const stmt *s) {
    if (!rt_step(c, s->line, 1)) return false;
    switch (s->k) {
    case S_TEXT:
        sb_put(c->out, s->u.text.p, s->u.text.len, false);
        return out_ok(c, s->line);
    case S_PRINT: {
        val *v = eval(c, s->u.print);
        tstr t;
        if (!v || !v_to_str(c, v, &t, s->line)) return false;
        sb_put_tstr(c->out, t);
        return out_ok(c, s->line);
    }
    case S_IF:
        for (size_t i = 0; i < s->u.ifs.n; i++) {
            val *v = eval(c, s->u.ifs.conds[i]);
            if (!v) return false;
            if (v_truthy(v)) return exec_body(c, &s->u.ifs.bodies[i]);
        }
        return exec_body(c, &s->u.ifs.els);
    case S_FOR: return exec_for(c, s);
    case S_SET: {
        val *v = eval(c, s->u.set.value);
        return v && assign(c, s->u.set.tg, v, s->line);
    }
    case S_SETBLOCK: {
        tstr t;
        if (!capture(c, &s->u.setblock.b, &t, s->line)) return false;
        val *v = v_str(c, t);
        v = v ? apply_filters(c, v, s->u.setblock.filters, s->u.setblock.nf) : NULL;
        return v && assign(c, s->u.setblock.tg, v, s->line);
    }
    case S_MACRO: {
        val *v = v_new(c, VK_MACRO);
        if (!v) return false;
        v->u.mac.m = &s->u.mac;
        v->u.mac.sc = c->sc;
        c->sc->captured = true;
        return scope_set(c, c->sc, s->u.mac.name, v);
    }
    case S_BREAK: c->brk = BRK_BREAK; return true;
    case S_CONTINUE: c->brk = BRK_CONTINUE; return true;
    case S_WITH: {
        val **vals;
        if (!eval_exprs(c, s->u.with.vals, s->u.with.n, &vals)) return false;
        scope *saved = c->sc;
        bool ok = scope_push(c) != NULL;
        for (size_t i = 0; ok && i < s->u.with.n; i++) ok = assign(c, s->u.with.tgs[i], vals[i], s->line);
        ok = ok && exec_body(c, &s->u.with.b);
        c->sc = saved;
        return ok;
    }
    case S_FILTERBLOCK: {
        tstr t;
        if (!capture(c, &s->u.filt.b, &t, s->line)) return false;
        val *v = v_str(c, t);
        v = v ? apply_filters(c, v, s->u.filt.filters, s->u.filt.nf) : NULL;
        if (!v || !v_to_str(c, v, &t, s->line)) return false;
        sb_put_tstr(c->out, t);
        return out_ok(c, s->line);
    }
    case S_BLOCK: return exec_body(c, &s->u.block);
    }
    return rt_err(c, s->line, "bad statement"), false;
}

static bool exec_body(rctx *c, const body *b) {
    if (!enter(c, b->n ? b->v[0]->line : 0)) return false;
    bool ok = true;
    for (size_t i = 0; i < b->n && ok; i++) {
        ok = exec_stmt(c, b->v[i]);
        if (c->brk) break;
    }
    c->rdepth--;
    return ok;
}

val *rt_call_macro(rctx *c, val *m, vargs *a, int line) {
    const macro *mac = m->u.mac.m;
    if (a->npos > mac->nparams)
        return rt_err(c, line, "macro '%s' takes not more than %zu argument(s)", mac->name, mac->nparams);
    scope *saved = c->sc;
    c->sc = m->u.mac.sc;
    if (!scope_push(c)) {
        c->sc = saved;
        return NULL;
    }
    bool ok = true;
    bool *given = mac->nparams ? calloc(mac->nparams, sizeof *given) : NULL;
    if (mac->nparams && !given) ok = rt_err(c, line, "out of memory") != NULL;
    for (size_t i = 0; ok && i < a->npos; i++) {
        ok = scope_set(c, c->sc, mac->params[i], a->pos[i]);
        given[i] = true;
    }
    for (size_t k = 0; ok && k < a->nkw; k++) {
        size_t i = 0;
        while (i < mac->nparams && strcmp(mac->params[i], a->kwn[k]) != 0) i++;
        if (i == mac->nparams) {
            rt_err(c, line, "macro '%s' takes no keyword argument '%s'", mac->name, a->kwn[k]);
            ok = false;
        } else if (given[i]) {
            rt_err(c, line, "macro '%s' got multiple values for argument '%s'", mac->name, a->kwn[k]);
            ok = false;
        } else {
            ok = scope_set(c, c->sc, mac->params[i], a->kwv[k]);
            given[i] = true;
        }
    }
    for (size_t i = 0; ok && i < mac->nparams; i++) {
        if (given[i]) continue;
        val *v;
        if (mac->defaults[i]) {
            v = eval(c, mac->defaults[i]);
        } else {
            char hint[200];
            snprintf(hint, sizeof hint, "parameter '%.100s' was not provided", mac->params[i]);
            char *h = ar_strndup(c->ar, hint, strlen(hint));
            v = h ? v_undef(c, h) : NULL;
        }
        ok = v && scope_set(c, c->sc, mac->params[i], v);
    }
    free(given);
    tstr out;
    ok = ok && capture(c, &mac->b, &out, line);
    c->sc = saved;
    c->brk = 0;
    return ok ? v_str(c, out) : NULL;
}

/* ---- JSON context ---------------------------------------------------------------------------- */

static val *from_json(rctx *c, const json_t *j, bool caller, int depth) {
    if (depth > 2100) return rt_err(c, 0, "context nested too deeply (more than 2100 levels)");
    val *v = NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        vdict *d = vd_new(c);
        if (!d) return NULL;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x) {
            val *kv = v_text(c, k, strlen(k), caller);
            val *vv = kv ? from_json(c, x, caller, depth + 1) : NULL;
            if (!vv || !vd_set(c, d, kv, vv)) return NULL;
        }
        return v_dict(c, d);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        val **items = n ? ar_alloc(c->ar, n * sizeof *items) : NULL;
        if (n && !items) return rt_err(c, 0, "template exceeded its memory limit (%zu bytes)", c->max_memory);
        for (size_t i = 0; i < n; i++)
            if (!(items[i] = from_json(c, json_array_get(j, i), caller, depth + 1))) return NULL;
        return v_seq(c, items, n, SEQ_LIST);
    }
    case JSON_STRING: return v_text(c, json_string_value(j), json_string_length(j), caller);
    case JSON_INTEGER: v = v_int(c, (int64_t)json_integer_value(j)); break;
    case JSON_REAL: v = v_float(c, json_real_value(j)); break;
    case JSON_TRUE:
    case JSON_FALSE:
        if (!caller) return v_bool(json_is_true(j));
        v = v_new(c, VK_BOOL);
        if (v) v->u.b = json_is_true(j);
        break;
    case JSON_NULL:
        if (!caller) return v_none();
        v = v_new(c, VK_NONE);
        break;
    }
    if (v) v->caller = caller;
    return v;
}

/* ---- public API ------------------------------------------------------------------------------ */

int tpl_compile(const char *source, size_t len, tpl_template **out, ds_err *err) {
    *out = NULL;
    if (!source) return ds_errf(err, "template: no source");
    tpl_template *t = calloc(1, sizeof *t);
    if (!t) return ds_errf(err, "template: out of memory");
    t->arena.limit = 0;
    token *toks;
    size_t n;
    if (tpl_lex(&t->arena, source, len, &toks, &n, err) != 0 || tpl_parse(&t->arena, toks, n, &t->root, err) != 0) {
        tpl_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tpl_free(tpl_template *t) {
    if (!t) return;
    ar_free(&t->arena);
    free(t);
}

void tpl_output_free(tpl_output *o) {
    if (!o) return;
    free(o->text);
    free(o->segs);
    memset(o, 0, sizeof *o);
}

int tpl_render(const tpl_template *t, const json_t *context, tpl_output *out, ds_err *err) {
    return tpl_render_ex(t, context, NULL, out, err);
}

static bool is_caller_key(const tpl_render_opts *o, const char *k) {
    static const char *const defaults[] = {"messages", "tools", "documents", NULL};
    const char *const *keys = o && o->caller_keys ? o->caller_keys : defaults;
    for (size_t i = 0; keys[i]; i++)
        if (!strcmp(keys[i], k)) return true;
    return false;
}

int tpl_render_ex(const tpl_template *t, const json_t *context, const tpl_render_opts *opts, tpl_output *out,
                  ds_err *err) {
    memset(out, 0, sizeof *out);
    if (!t) return ds_errf(err, "template: not compiled");
    if (context && !json_is_object(context)) return ds_errf(err, "template: the context must be a JSON object");
    tpl_arena ar = {0};
    rctx c = {.ar = &ar, .err = err};
    c.max_steps = opts && opts->max_steps ? opts->max_steps : 10000000;
    c.max_memory = opts && opts->max_memory ? opts->max_memory : (size_t)256 << 20;
    c.max_depth = opts && opts->max_depth ? opts->max_depth : 64;
    c.now = opts && opts->now ? opts->now : time(NULL);
    ar.limit = c.max_memory;
    sbuf main_out;
    rt_sbuf(&c, &main_out);
    c.out = &main_out;
    bool ok = (c.globals = vd_new(&c)) != NULL && scope_push(&c) != NULL;
    if (ok && context) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)context, k, x) {
            val *kv = v_lit(&c, k);
            val *vv = kv ? from_json(&c, x, is_caller_key(opts, k), 0) : NULL;
            if (!vv || !vd_set(&c, c.globals, kv, vv)) {
                ok = false;
                break;
            }
        }
    }
    ok = ok && exec_body(&c, &t->root);
    if (ok && main_out.oom) ok = rt_err(&c, 0, "template exceeded its memory limit (%zu bytes)", c.max_memory) != NULL;
    if (ok) {
        size_t nseg = 2 * main_out.nsp + 1;
        out->segs = malloc(nseg * sizeof *out->segs);
        out->text = main_out.p ? main_out.p : malloc(1);
        if (!out->segs || !out->text) {
            ok = false;
            ds_errf(err, "template: out of memory");
        } else {
            if (!main_out.p) out->text[0] = '\0';
            main_out.p = NULL;
            out->len = main_out.len;
            size_t pos = 0, ns = 0;
            for (size_t i = 0; i < main_out.nsp; i++) {
                const tpl_span *sp = &main_out.sp[i];
                if (sp->off > pos) out->segs[ns++] = (tpl_segment){out->text + pos, sp->off - pos, TPL_TEMPLATE};
                out->segs[ns++] = (tpl_segment){out->text + sp->off, sp->len, TPL_CONTENT};
                pos = sp->off + sp->len;
            }
            if (out->len > pos) out->segs[ns++] = (tpl_segment){out->text + pos, out->len - pos, TPL_TEMPLATE};
            out->n_segs = ns;
        }
    }
    sb_free(&main_out);
    ar_free(&ar);
    if (!ok) {
        tpl_output_free(out);
        return -1;
    }
    return 0;
}
