/* Template parser: tokens -> syntax tree, following jinja2's parser (3.1) rule by rule so that
 * precedence and the odd corners match: filters and tests bind tighter than arithmetic
 * (`messages|length - 1`), `not` binds looser than comparisons (`not x is defined`), `**` is
 * left-associative, a test takes one bare argument (`x is sameas false`), adjacent string
 * literals concatenate, and `a if b` without else yields undefined.
 *
 * Unknown tags, filters and tests are compile errors, as in jinja2; so are the jinja2 features
 * this interpreter leaves out (include, extends, block, call, import, recursive loops, *args),
 * each named in the message. Nesting is bounded so hostile input cannot exhaust the stack. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl_internal.h"

enum { MAX_NEST = 200 };

typedef struct parser {
    tpl_arena *a;
    const token *t;
    size_t n, i;
    ds_err *err;
    bool failed;
    int depth;   /* current nesting of expressions and blocks */
    int in_loop; /* for bodies we are inside (reset in macros) */
} parser;

/* ---- growable pointer arrays ----------------------------------------------------------------- */

typedef struct pvec {
    void **v;
    size_t n, cap;
} pvec;

static bool pv_push(pvec *p, void *x) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        void **v = realloc(p->v, cap * sizeof *v);
        if (!v) return false;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = x;
    return true;
}

/* Moves the array into the arena (NULL when empty); frees the vector. */
static void **pv_finish(parser *P, pvec *p, bool *ok) {
    void **out = NULL;
    if (p->n) {
        out = ar_alloc(P->a, p->n * sizeof *out);
        if (out) memcpy(out, p->v, p->n * sizeof *out);
        else *ok = false;
    }
    free(p->v);
    p->v = NULL;
    p->cap = 0;
    return out;
}

/* ---- tokens and errors ----------------------------------------------------------------------- */

static const token *cur(parser *P) { return &P->t[P->i]; }
static const token *look(parser *P) { return &P->t[P->i + 1 < P->n ? P->i + 1 : P->n - 1]; }
static void adv(parser *P) {
    if (P->i + 1 < P->n) P->i++;
}

static bool is_name(const token *t, const char *s) { return t->t == T_NAME && strcmp(t->s, s) == 0; }
static bool is_op(const token *t, int op) { return t->t == T_OP && t->op == op; }

static const char *op_text(int op) {
    static const char *const names[OP__COUNT] = {
        "+", "-", "/", "//", "*", "%", "**", "~", "[", "]", "(", ")", "{", "}",
        "==", "!=", ">", ">=", "<", "<=", "=", ".", ":", "|", ",", ";",
    };
    return op >= 0 && op < OP__COUNT ? names[op] : "?";
}

static void describe(const token *t, char *buf, size_t cap) {
    switch (t->t) {
    case T_DATA: snprintf(buf, cap, "template data"); break;
    case T_VAR_BEGIN: snprintf(buf, cap, "begin of print statement"); break;
    case T_VAR_END: snprintf(buf, cap, "end of print statement"); break;
    case T_BLOCK_BEGIN: snprintf(buf, cap, "begin of statement block"); break;
    case T_BLOCK_END: snprintf(buf, cap, "end of statement block"); break;
    case T_NAME: snprintf(buf, cap, "%.60s", t->s); break;
    case T_STRING: snprintf(buf, cap, "string"); break;
    case T_INT: snprintf(buf, cap, "integer"); break;
    case T_FLOAT: snprintf(buf, cap, "float"); break;
    case T_OP: snprintf(buf, cap, "%s", op_text(t->op)); break;
    case T_EOF: snprintf(buf, cap, "end of template"); break;
    }
}

static void *failf(parser *P, const token *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void *failf(parser *P, const token *t, const char *fmt, ...) {
    if (P->failed) return NULL;
    P->failed = true;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ds_errf(P->err, "template syntax error at line %d, column %d: %s", t->line, t->col, msg);
    return NULL;
}

static void *oom(parser *P) { return failf(P, cur(P), "out of memory"); }

static bool expect_op(parser *P, int op) {
    if (!is_op(cur(P), op)) {
        char d[80];
        describe(cur(P), d, sizeof d);
        failf(P, cur(P), "expected token '%s', got '%s'", op_text(op), d);
        return false;
    }
    adv(P);
    return true;
}

static bool expect_type(parser *P, ttype t, const char *what) {
    if (cur(P)->t != t) {
        char d[80];
        describe(cur(P), d, sizeof d);
        failf(P, cur(P), "expected token '%s', got '%s'", what, d);
        return false;
    }
    adv(P);
    return true;
}

static bool expect_block_end(parser *P) { return expect_type(P, T_BLOCK_END, "end of statement block"); }

static const char *expect_name(parser *P) {
    if (cur(P)->t != T_NAME) {
        char d[80];
        describe(cur(P), d, sizeof d);
        failf(P, cur(P), "expected token 'name', got '%s'", d);
        return NULL;
    }
    const char *s = cur(P)->s;
    adv(P);
    return s;
}

static bool enter(parser *P) {
    if (++P->depth > MAX_NEST) {
        failf(P, cur(P), "template nested too deeply (more than %d levels)", MAX_NEST);
        return false;
    }
    return true;
}

/* ---- node constructors ----------------------------------------------------------------------- */

static expr *mk(parser *P, ekind k, const token *at) {
    expr *e = ar_alloc(P->a, sizeof *e);
    if (!e) return oom(P);
    e->k = k;
    e->line = at->line;
    return e;
}

static val *mk_val(parser *P, vkind k) {
    val *v = ar_alloc(P->a, sizeof *v);
    if (!v) oom(P);
    else v->kind = (uint8_t)k;
    return v;
}

/* ---- expressions ----------------------------------------------------------------------------- */

static expr *parse_expression(parser *P, bool with_condexpr);
static expr *parse_tuple(parser *P, bool with_condexpr, const char *extra_end, bool explicit_parens);
static expr *parse_unary(parser *P, bool with_filter);
static expr *parse_primary(parser *P);
static expr *parse_postfix(parser *P, expr *node);
static expr *parse_filter_expr(parser *P, expr *node);

static bool parse_call_args(parser *P, args *out) {
    memset(out, 0, sizeof *out);
    if (!expect_op(P, OP_LPAREN)) return false;
    pvec pos = {0}, kwn = {0}, kwv = {0};
    bool ok = true;
    while (ok && !is_op(cur(P), OP_RPAREN)) {
        if (pos.n + kwn.n > 0 && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        if (is_op(cur(P), OP_RPAREN)) break; /* trailing comma */
        if (is_op(cur(P), OP_MUL) || is_op(cur(P), OP_POW)) {
            failf(P, cur(P), "*args and **kwargs in calls are not supported");
            ok = false;
            break;
        }
        if (cur(P)->t == T_NAME && is_op(look(P), OP_ASSIGN)) {
            const char *k = cur(P)->s;
            adv(P);
            adv(P);
            expr *v = parse_expression(P, true);
            if (!v || !pv_push(&kwn, (void *)k) || !pv_push(&kwv, v)) ok = false;
        } else {
            if (kwn.n) {
                failf(P, cur(P), "positional argument follows keyword argument");
                ok = false;
                break;
            }
            expr *v = parse_expression(P, true);
            if (!v || !pv_push(&pos, v)) ok = false;
        }
    }
    if (ok) ok = expect_op(P, OP_RPAREN);
    out->npos = pos.n;
    out->nkw = kwn.n;
    out->pos = (expr **)pv_finish(P, &pos, &ok);
    out->kwn = (const char **)pv_finish(P, &kwn, &ok);
    out->kwv = (expr **)pv_finish(P, &kwv, &ok);
    if (!ok && !P->failed) oom(P);
    return ok;
}

/* A filter name (dotted names allowed, as jinja2 does) and its arguments. */
static bool parse_filter_call(parser *P, filtercall *f) {
    const token *at = cur(P);
    const char *name = expect_name(P);
    if (!name) return false;
    char full[256];
    snprintf(full, sizeof full, "%s", name);
    while (is_op(cur(P), OP_DOT)) {
        adv(P);
        const char *more = expect_name(P);
        if (!more) return false;
        size_t l = strlen(full);
        snprintf(full + l, sizeof full - l, ".%s", more);
    }
    f->name = ar_strndup(P->a, full, strlen(full));
    f->line = at->line;
    if (!f->name) return oom(P), false;
    f->id = tpl_filter_id(full);
    if (f->id == -1) return failf(P, at, "No filter named '%s'.", full), false;
    if (f->id == -2) return failf(P, at, "filter '%s' is not supported by this interpreter", full), false;
    memset(&f->a, 0, sizeof f->a);
    if (is_op(cur(P), OP_LPAREN)) return parse_call_args(P, &f->a);
    return true;
}

static expr *parse_filter(parser *P, expr *node) {
    adv(P); /* | */
    const token *at = cur(P);
    expr *e = mk(P, E_FILTER, at);
    if (!e) return NULL;
    filtercall f;
    if (!parse_filter_call(P, &f)) return NULL;
    e->u.filter.obj = node;
    e->u.filter.id = f.id;
    e->u.filter.name = f.name;
    e->u.filter.a = f.a;
    return e;
}

static expr *parse_test(parser *P, expr *node) {
    const token *is_tok = cur(P);
    adv(P); /* is */
    bool negated = false;
    if (is_name(cur(P), "not")) {
        adv(P);
        negated = true;
    }
    const token *at = cur(P);
    const char *name = expect_name(P);
    if (!name) return NULL;
    char full[256];
    snprintf(full, sizeof full, "%s", name);
    while (is_op(cur(P), OP_DOT)) {
        adv(P);
        const char *more = expect_name(P);
        if (!more) return NULL;
        size_t l = strlen(full);
        snprintf(full + l, sizeof full - l, ".%s", more);
    }
    expr *e = mk(P, E_TEST, is_tok);
    if (!e) return NULL;
    e->u.filter.obj = node;
    e->u.filter.name = ar_strndup(P->a, full, strlen(full));
    if (!e->u.filter.name) return oom(P);
    e->u.filter.id = tpl_test_id(full);
    if (e->u.filter.id == -1) return failf(P, at, "No test named '%s'.", full);
    if (e->u.filter.id == -2) return failf(P, at, "test '%s' is not supported by this interpreter", full);
    const token *c = cur(P);
    if (is_op(c, OP_LPAREN)) {
        if (!parse_call_args(P, &e->u.filter.a)) return NULL;
    } else if ((c->t == T_NAME || c->t == T_STRING || c->t == T_INT || c->t == T_FLOAT ||
                is_op(c, OP_LBRACKET) || is_op(c, OP_LBRACE)) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return failf(P, c, "You cannot chain multiple tests with is");
        expr *arg = parse_primary(P);
        if (arg) arg = parse_postfix(P, arg);
        if (!arg) return NULL;
        expr **pos = ar_alloc(P->a, sizeof *pos);
        if (!pos) return oom(P);
        pos[0] = arg;
        e->u.filter.a.pos = pos;
        e->u.filter.a.npos = 1;
    }
    if (negated) {
        expr *n = mk(P, E_NOT, is_tok);
        if (!n) return NULL;
        n->u.un = e;
        return n;
    }
    return e;
}

/* One subscript: an expression or a slice a:b:c with any part missing. */
static expr *parse_subscribed(parser *P, expr *obj) {
    const token *at = cur(P);
    expr *parts[3] = {NULL, NULL, NULL};
    if (is_op(cur(P), OP_COLON)) {
        adv(P);
    } else {
        expr *e = parse_expression(P, true);
        if (!e) return NULL;
        if (!is_op(cur(P), OP_COLON)) {
            expr *it = mk(P, E_ITEM, at);
            if (!it) return NULL;
            it->u.item.obj = obj;
            it->u.item.idx = e;
            return it;
        }
        adv(P);
        parts[0] = e;
    }
    if (!is_op(cur(P), OP_COLON) && !is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA)) {
        if (!(parts[1] = parse_expression(P, true))) return NULL;
    }
    if (is_op(cur(P), OP_COLON)) {
        adv(P);
        if (!is_op(cur(P), OP_RBRACKET) && !is_op(cur(P), OP_COMMA)) {
            if (!(parts[2] = parse_expression(P, true))) return NULL;
        }
    }
    expr *s = mk(P, E_SLICE, at);
    if (!s) return NULL;
    s->u.slice.obj = obj;
    s->u.slice.start = parts[0];
    s->u.slice.stop = parts[1];
    s->u.slice.step = parts[2];
    return s;
}

static expr *parse_subscript(parser *P, expr *node) {
    const token *at = cur(P);
    if (is_op(at, OP_DOT)) {
        adv(P);
        const token *t = cur(P);
        if (t->t == T_NAME) {
            adv(P);
            expr *e = mk(P, E_ATTR, at);
            if (!e) return NULL;
            e->u.attr.obj = node;
            e->u.attr.name = t->s;
            return e;
        }
        if (t->t != T_INT) return failf(P, t, "expected name or number");
        adv(P);
        expr *e = mk(P, E_ITEM, at);
        expr *k = mk(P, E_CONST, t);
        val *v = mk_val(P, VK_INT);
        if (!e || !k || !v) return NULL;
        v->u.i = t->i;
        k->u.c = v;
        e->u.item.obj = node;
        e->u.item.idx = k;
        return e;
    }
    adv(P); /* [ */
    expr *result = NULL;
    size_t count = 0;
    while (!is_op(cur(P), OP_RBRACKET)) {
        if (count && !expect_op(P, OP_COMMA)) return NULL;
        if (count == 1) return failf(P, cur(P), "subscripts with several indices are not supported");
        result = parse_subscribed(P, node);
        if (!result) return NULL;
        count++;
    }
    if (!expect_op(P, OP_RBRACKET)) return NULL;
    if (!result) return failf(P, at, "expected an index");
    return result;
}

static expr *parse_call(parser *P, expr *fn) {
    expr *c = mk(P, E_CALL, cur(P));
    if (!c) return NULL;
    c->u.call.fn = fn;
    return parse_call_args(P, &c->u.call.a) ? c : NULL;
}

static expr *parse_postfix(parser *P, expr *node) {
    while (node) {
        const token *t = cur(P);
        if (is_op(t, OP_DOT) || is_op(t, OP_LBRACKET)) {
            node = parse_subscript(P, node);
        } else if (is_op(t, OP_LPAREN)) {
            node = parse_call(P, node);
        } else {
            break;
        }
    }
    return node;
}

static expr *parse_filter_expr(parser *P, expr *node) {
    while (node) {
        const token *t = cur(P);
        if (is_op(t, OP_PIPE)) {
            node = parse_filter(P, node);
        } else if (is_name(t, "is")) {
            node = parse_test(P, node);
        } else if (is_op(t, OP_LPAREN)) {
            node = parse_call(P, node);
        } else {
            break;
        }
    }
    return node;
}

static expr *parse_list_literal(parser *P) {
    const token *at = cur(P);
    adv(P); /* [ */
    pvec items = {0};
    bool ok = true;
    while (!is_op(cur(P), OP_RBRACKET)) {
        if (items.n && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        if (is_op(cur(P), OP_RBRACKET)) break;
        expr *e = parse_expression(P, true);
        if (!e || !pv_push(&items, e)) {
            ok = false;
            break;
        }
    }
    if (ok) ok = expect_op(P, OP_RBRACKET);
    expr *l = ok ? mk(P, E_LIST, at) : NULL;
    size_t n = items.n;
    expr **v = (expr **)pv_finish(P, &items, &ok);
    if (!l || !ok) return P->failed ? NULL : oom(P);
    l->u.list.v = v;
    l->u.list.n = n;
    return l;
}

static expr *parse_dict_literal(parser *P) {
    const token *at = cur(P);
    adv(P); /* { */
    pvec keys = {0}, vals = {0};
    bool ok = true;
    while (!is_op(cur(P), OP_RBRACE)) {
        if (keys.n && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        if (is_op(cur(P), OP_RBRACE)) break;
        expr *k = parse_expression(P, true);
        if (!k || !expect_op(P, OP_COLON)) {
            ok = false;
            break;
        }
        expr *v = parse_expression(P, true);
        if (!v || !pv_push(&keys, k) || !pv_push(&vals, v)) {
            ok = false;
            break;
        }
    }
    if (ok) ok = expect_op(P, OP_RBRACE);
    expr *d = ok ? mk(P, E_DICT, at) : NULL;
    size_t n = keys.n;
    expr **kv = (expr **)pv_finish(P, &keys, &ok);
    expr **vv = (expr **)pv_finish(P, &vals, &ok);
    if (!d || !ok) return P->failed ? NULL : oom(P);
    d->u.dict.keys = kv;
    d->u.dict.vals = vv;
    d->u.dict.n = n;
    return d;
}

static expr *parse_primary(parser *P) {
    const token *t = cur(P);
    if (!enter(P)) return NULL;
    expr *e = NULL;
    if (t->t == T_NAME) {
        const char *s = t->s;
        vkind k = VK_UNDEF;
        bool b = false;
        if (!strcmp(s, "true") || !strcmp(s, "True")) k = VK_BOOL, b = true;
        else if (!strcmp(s, "false") || !strcmp(s, "False")) k = VK_BOOL;
        else if (!strcmp(s, "none") || !strcmp(s, "None")) k = VK_NONE;
        adv(P);
        if (k != VK_UNDEF) {
            e = mk(P, E_CONST, t);
            val *v = mk_val(P, k);
            if (e && v) {
                v->u.b = b;
                e->u.c = v;
            } else {
                e = NULL;
            }
        } else {
            e = mk(P, E_NAME, t);
            if (e) e->u.name = s;
        }
    } else if (t->t == T_STRING) {
        /* adjacent literals concatenate */
        size_t total = 0, j = P->i;
        while (j < P->n && P->t[j].t == T_STRING) total += P->t[j++].len;
        char *buf = ar_alloc(P->a, total + 1);
        e = mk(P, E_CONST, t);
        val *v = mk_val(P, VK_STR);
        if (buf && e && v) {
            size_t o = 0;
            while (cur(P)->t == T_STRING) {
                memcpy(buf + o, cur(P)->s, cur(P)->len);
                o += cur(P)->len;
                adv(P);
            }
            buf[o] = '\0';
            v->u.s.p = buf;
            v->u.s.len = o;
            e->u.c = v;
        } else {
            e = P->failed ? NULL : oom(P);
        }
    } else if (t->t == T_INT || t->t == T_FLOAT) {
        adv(P);
        e = mk(P, E_CONST, t);
        val *v = mk_val(P, t->t == T_INT ? VK_INT : VK_FLOAT);
        if (e && v) {
            if (t->t == T_INT) v->u.i = t->i;
            else v->u.f = t->f;
            e->u.c = v;
        } else {
            e = NULL;
        }
    } else if (is_op(t, OP_LPAREN)) {
        adv(P);
        e = parse_tuple(P, true, NULL, true);
        if (e && !expect_op(P, OP_RPAREN)) e = NULL;
    } else if (is_op(t, OP_LBRACKET)) {
        e = parse_list_literal(P);
    } else if (is_op(t, OP_LBRACE)) {
        e = parse_dict_literal(P);
    } else {
        char d[80];
        describe(t, d, sizeof d);
        e = failf(P, t, "unexpected '%s'", d);
    }
    P->depth--;
    return e;
}

static expr *parse_unary(parser *P, bool with_filter) {
    const token *t = cur(P);
    if (!enter(P)) return NULL;
    expr *node;
    if (is_op(t, OP_SUB) || is_op(t, OP_ADD)) {
        adv(P);
        expr *operand = parse_unary(P, false);
        node = operand ? mk(P, is_op(t, OP_SUB) ? E_NEG : E_POS, t) : NULL;
        if (node) node->u.un = operand;
    } else {
        node = parse_primary(P);
    }
    node = parse_postfix(P, node);
    if (with_filter) node = parse_filter_expr(P, node);
    P->depth--;
    return node;
}

static expr *mk_bin(parser *P, ekind k, int op, expr *l, expr *r, const token *at) {
    if (!l || !r) return NULL;
    expr *e = mk(P, k, at);
    if (!e) return NULL;
    e->u.bin.op = op;
    e->u.bin.l = l;
    e->u.bin.r = r;
    return e;
}

static expr *parse_pow(parser *P) {
    expr *left = parse_unary(P, true);
    while (left && is_op(cur(P), OP_POW)) {
        const token *t = cur(P);
        adv(P);
        left = mk_bin(P, E_BIN, OP_POW, left, parse_unary(P, true), t);
    }
    return left;
}

static expr *parse_math2(parser *P) {
    expr *left = parse_pow(P);
    while (left && (is_op(cur(P), OP_MUL) || is_op(cur(P), OP_DIV) || is_op(cur(P), OP_FLOORDIV) ||
                    is_op(cur(P), OP_MOD))) {
        const token *t = cur(P);
        adv(P);
        left = mk_bin(P, E_BIN, t->op, left, parse_pow(P), t);
    }
    return left;
}

static expr *parse_concat(parser *P) {
    const token *at = cur(P);
    expr *first = parse_math2(P);
    if (!first || !is_op(cur(P), OP_TILDE)) return first;
    pvec parts = {0};
    bool ok = pv_push(&parts, first);
    while (ok && is_op(cur(P), OP_TILDE)) {
        adv(P);
        expr *e = parse_math2(P);
        if (!e || !pv_push(&parts, e)) ok = false;
    }
    expr *c = ok ? mk(P, E_CONCAT, at) : NULL;
    size_t n = parts.n;
    expr **v = (expr **)pv_finish(P, &parts, &ok);
    if (!c || !ok) return P->failed ? NULL : oom(P);
    c->u.list.v = v;
    c->u.list.n = n;
    return c;
}

static expr *parse_math1(parser *P) {
    expr *left = parse_concat(P);
    while (left && (is_op(cur(P), OP_ADD) || is_op(cur(P), OP_SUB))) {
        const token *t = cur(P);
        adv(P);
        left = mk_bin(P, E_BIN, t->op, left, parse_concat(P), t);
    }
    return left;
}

static expr *parse_compare(parser *P) {
    const token *at = cur(P);
    expr *first = parse_math1(P);
    if (!first) return NULL;
    pvec ops = {0}, rest = {0};
    bool ok = true;
    for (;;) {
        const token *t = cur(P);
        int op = -1;
        if (t->t == T_OP) {
            switch (t->op) {
            case OP_EQ: op = CMP_EQ; break;
            case OP_NE: op = CMP_NE; break;
            case OP_LT: op = CMP_LT; break;
            case OP_LE: op = CMP_LE; break;
            case OP_GT: op = CMP_GT; break;
            case OP_GE: op = CMP_GE; break;
            default: break;
            }
            if (op >= 0) adv(P);
        } else if (is_name(t, "in")) {
            op = CMP_IN;
            adv(P);
        } else if (is_name(t, "not") && is_name(look(P), "in")) {
            op = CMP_NOTIN;
            adv(P);
            adv(P);
        }
        if (op < 0) break;
        expr *r = parse_math1(P);
        if (!r || !pv_push(&ops, (void *)(intptr_t)op) || !pv_push(&rest, r)) {
            ok = false;
            break;
        }
    }
    if (ops.n == 0 && ok) {
        free(ops.v);
        free(rest.v);
        return first;
    }
    expr *c = ok ? mk(P, E_CMP, at) : NULL;
    size_t n = rest.n;
    int *opv = c ? ar_alloc(P->a, (n ? n : 1) * sizeof *opv) : NULL;
    if (opv)
        for (size_t i = 0; i < n; i++) opv[i] = (int)(intptr_t)ops.v[i];
    free(ops.v);
    expr **rv = (expr **)pv_finish(P, &rest, &ok);
    if (!c || !opv || !ok) return P->failed ? NULL : oom(P);
    c->u.cmp.first = first;
    c->u.cmp.ops = opv;
    c->u.cmp.rest = rv;
    c->u.cmp.n = n;
    return c;
}

static expr *parse_not(parser *P) {
    const token *t = cur(P);
    if (is_name(t, "not")) {
        if (!enter(P)) return NULL;
        adv(P);
        expr *operand = parse_not(P);
        P->depth--;
        expr *e = operand ? mk(P, E_NOT, t) : NULL;
        if (e) e->u.un = operand;
        return e;
    }
    return parse_compare(P);
}

/* or -> and -> not: left-associative chains of one keyword. */
static expr *parse_logic(parser *P, bool is_or) {
    expr *left = is_or ? parse_logic(P, false) : parse_not(P);
    while (left && is_name(cur(P), is_or ? "or" : "and")) {
        const token *t = cur(P);
        adv(P);
        expr *right = is_or ? parse_logic(P, false) : parse_not(P);
        left = mk_bin(P, is_or ? E_OR : E_AND, 0, left, right, t);
    }
    return left;
}

static expr *parse_or(parser *P) { return parse_logic(P, true); }

static expr *parse_condexpr(parser *P) {
    expr *e1 = parse_or(P);
    while (e1 && is_name(cur(P), "if")) {
        const token *t = cur(P);
        if (!enter(P)) return NULL;
        adv(P);
        expr *test = parse_or(P);
        expr *els = NULL;
        if (test && is_name(cur(P), "else")) {
            adv(P);
            els = parse_condexpr(P);
            if (!els) test = NULL;
        }
        P->depth--;
        if (!test) return NULL;
        expr *c = mk(P, E_COND, t);
        if (!c) return NULL;
        c->u.cond.test = test;
        c->u.cond.then = e1;
        c->u.cond.els = els;
        e1 = c;
    }
    return e1;
}

static expr *parse_expression(parser *P, bool with_condexpr) {
    if (!enter(P)) return NULL;
    expr *e = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return e;
}

static bool is_tuple_end(parser *P, const char *extra_end) {
    const token *t = cur(P);
    if (t->t == T_VAR_END || t->t == T_BLOCK_END || is_op(t, OP_RPAREN) || t->t == T_EOF) return true;
    return extra_end && is_name(t, extra_end);
}

static expr *parse_tuple(parser *P, bool with_condexpr, const char *extra_end, bool explicit_parens) {
    const token *at = cur(P);
    pvec items = {0};
    bool is_tuple = false, ok = true;
    for (;;) {
        if (items.n && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        if (is_tuple_end(P, extra_end)) break;
        expr *e = parse_expression(P, with_condexpr);
        if (!e || !pv_push(&items, e)) {
            ok = false;
            break;
        }
        if (is_op(cur(P), OP_COMMA)) is_tuple = true;
        else break;
    }
    if (!ok) {
        free(items.v);
        return P->failed ? NULL : oom(P);
    }
    if (!is_tuple) {
        if (items.n) {
            expr *e = items.v[0];
            free(items.v);
            return e;
        }
        free(items.v);
        if (!explicit_parens) {
            char d[80];
            describe(cur(P), d, sizeof d);
            return failf(P, cur(P), "Expected an expression, got '%s'", d);
        }
    }
    expr *t = mk(P, E_TUPLE, at);
    size_t n = items.n;
    expr **v = (expr **)pv_finish(P, &items, &ok);
    if (!t || !ok) return P->failed ? NULL : oom(P);
    t->u.list.v = v;
    t->u.list.n = n;
    return t;
}

/* ---- assignment targets ---------------------------------------------------------------------- */

static target *parse_target_atom(parser *P) {
    const token *t = cur(P);
    if (t->t == T_NAME) {
        if (!strcmp(t->s, "true") || !strcmp(t->s, "false") || !strcmp(t->s, "none") ||
            !strcmp(t->s, "True") || !strcmp(t->s, "False") || !strcmp(t->s, "None"))
            return failf(P, t, "can't assign to '%s'", t->s);
        adv(P);
        target *tg = ar_alloc(P->a, sizeof *tg);
        if (!tg) return oom(P);
        tg->kind = TG_NAME;
        tg->name = t->s;
        return tg;
    }
    if (is_op(t, OP_LPAREN)) {
        adv(P);
        pvec items = {0};
        bool ok = true;
        while (!is_op(cur(P), OP_RPAREN)) {
            if (items.n && !expect_op(P, OP_COMMA)) {
                ok = false;
                break;
            }
            if (is_op(cur(P), OP_RPAREN)) break;
            target *x = parse_target_atom(P);
            if (!x || !pv_push(&items, x)) {
                ok = false;
                break;
            }
        }
        if (ok) ok = expect_op(P, OP_RPAREN);
        target *tg = ok ? ar_alloc(P->a, sizeof *tg) : NULL;
        size_t n = items.n;
        target **v = (target **)pv_finish(P, &items, &ok);
        if (!tg || !ok) return P->failed ? NULL : oom(P);
        if (n == 1 && !v) return oom(P);
        tg->kind = TG_TUPLE;
        tg->items = v;
        tg->n = n;
        return tg;
    }
    char d[80];
    describe(t, d, sizeof d);
    return failf(P, t, "can't assign to '%s'", d);
}

/* name | name.attr (with_namespace) | a, b, ... */
static target *parse_target(parser *P, bool with_namespace, const char *extra_end) {
    const token *t = cur(P);
    if (with_namespace && t->t == T_NAME && is_op(look(P), OP_DOT)) {
        adv(P);
        adv(P);
        const char *attr = expect_name(P);
        if (!attr) return NULL;
        target *tg = ar_alloc(P->a, sizeof *tg);
        if (!tg) return oom(P);
        tg->kind = TG_NSATTR;
        tg->name = t->s;
        tg->attr = attr;
        return tg;
    }
    target *first = parse_target_atom(P);
    if (!first || !is_op(cur(P), OP_COMMA)) return first;
    pvec items = {0};
    bool ok = pv_push(&items, first);
    while (ok && is_op(cur(P), OP_COMMA)) {
        adv(P);
        if (cur(P)->t == T_BLOCK_END || is_op(cur(P), OP_ASSIGN) || (extra_end && is_name(cur(P), extra_end)))
            break;
        target *x = parse_target_atom(P);
        if (!x || !pv_push(&items, x)) ok = false;
    }
    target *tg = ok ? ar_alloc(P->a, sizeof *tg) : NULL;
    size_t n = items.n;
    target **v = (target **)pv_finish(P, &items, &ok);
    if (!tg || !ok) return P->failed ? NULL : oom(P);
    tg->kind = TG_TUPLE;
    tg->items = v;
    tg->n = n;
    return tg;
}

/* ---- statements ------------------------------------------------------------------------------ */

static bool parse_body(parser *P, const char *const *ends, const token *opener, body *out,
                       const char **ended);

static stmt *mk_stmt(parser *P, skind k, const token *at) {
    stmt *s = ar_alloc(P->a, sizeof *s);
    if (!s) return oom(P);
    s->k = k;
    s->line = at->line;
    return s;
}

/* jinja2's parse_statements: optional ':', the end of the opening tag, then the body. */
static bool parse_statements(parser *P, const char *const *ends, const token *opener, body *out,
                             const char **ended) {
    if (is_op(cur(P), OP_COLON)) adv(P);
    if (!expect_block_end(P)) return false;
    return parse_body(P, ends, opener, out, ended);
}

static bool parse_filter_chain(parser *P, filtercall **out, size_t *n, bool start_inline) {
    pvec fs = {0};
    bool ok = true;
    while (ok && (start_inline || is_op(cur(P), OP_PIPE))) {
        if (!start_inline) adv(P);
        start_inline = false;
        filtercall *f = ar_alloc(P->a, sizeof *f);
        if (!f || !parse_filter_call(P, f) || !pv_push(&fs, f)) ok = false;
    }
    size_t cnt = fs.n;
    filtercall **v = (filtercall **)pv_finish(P, &fs, &ok);
    if (!ok) return P->failed ? false : (oom(P), false);
    *out = NULL;
    *n = cnt;
    if (cnt) {
        *out = ar_alloc(P->a, cnt * sizeof **out);
        if (!*out) return oom(P), false;
        for (size_t i = 0; i < cnt; i++) (*out)[i] = *v[i];
    }
    return true;
}

static stmt *parse_for(parser *P, const token *at) {
    stmt *s = mk_stmt(P, S_FOR, at);
    if (!s) return NULL;
    adv(P); /* for */
    s->u.loop.tg = parse_target(P, false, "in");
    if (!s->u.loop.tg) return NULL;
    if (!is_name(cur(P), "in")) {
        char d[80];
        describe(cur(P), d, sizeof d);
        return failf(P, cur(P), "expected token 'in', got '%s'", d);
    }
    adv(P);
    s->u.loop.iter = parse_tuple(P, false, "recursive", false);
    if (!s->u.loop.iter) return NULL;
    if (is_name(cur(P), "if")) {
        adv(P);
        if (!(s->u.loop.filter = parse_expression(P, true))) return NULL;
    }
    if (is_name(cur(P), "recursive")) return failf(P, cur(P), "recursive loops are not supported");
    static const char *const ends1[] = {"endfor", "else", NULL};
    static const char *const ends2[] = {"endfor", NULL};
    const char *ended = NULL;
    P->in_loop++;
    bool ok = parse_statements(P, ends1, at, &s->u.loop.b, &ended);
    P->in_loop--;
    if (!ok) return NULL;
    if (!strcmp(ended, "else")) {
        if (!parse_statements(P, ends2, at, &s->u.loop.els, &ended)) return NULL;
    }
    return s;
}

static stmt *parse_if(parser *P, const token *at) {
    stmt *s = mk_stmt(P, S_IF, at);
    if (!s) return NULL;
    adv(P); /* if */
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    pvec conds = {0}, bodies = {0};
    bool ok = true;
    for (;;) {
        expr *c = parse_tuple(P, false, NULL, false);
        body *b = ar_alloc(P->a, sizeof *b);
        const char *ended = NULL;
        if (!c || !b || !parse_statements(P, ends, at, b, &ended) || !pv_push(&conds, c) ||
            !pv_push(&bodies, b)) {
            ok = false;
            break;
        }
        if (!strcmp(ended, "elif")) continue;
        if (!strcmp(ended, "else")) {
            s->u.ifs.has_else = true;
            if (!parse_statements(P, ends_else, at, &s->u.ifs.els, &ended)) ok = false;
        }
        break;
    }
    size_t n = conds.n;
    expr **cv = (expr **)pv_finish(P, &conds, &ok);
    body **bv = (body **)pv_finish(P, &bodies, &ok);
    if (!ok) return P->failed ? NULL : oom(P);
    s->u.ifs.conds = cv;
    s->u.ifs.n = n;
    s->u.ifs.bodies = ar_alloc(P->a, n * sizeof *s->u.ifs.bodies);
    if (!s->u.ifs.bodies) return oom(P);
    for (size_t i = 0; i < n; i++) s->u.ifs.bodies[i] = *bv[i];
    return s;
}

static stmt *parse_set(parser *P, const token *at) {
    adv(P); /* set */
    target *tg = parse_target(P, true, NULL);
    if (!tg) return NULL;
    if (is_op(cur(P), OP_ASSIGN)) {
        adv(P);
        stmt *s = mk_stmt(P, S_SET, at);
        if (!s) return NULL;
        s->u.set.tg = tg;
        if (!(s->u.set.value = parse_tuple(P, true, NULL, false))) return NULL;
        return s;
    }
    stmt *s = mk_stmt(P, S_SETBLOCK, at);
    if (!s) return NULL;
    s->u.setblock.tg = tg;
    if (!parse_filter_chain(P, &s->u.setblock.filters, &s->u.setblock.nf, false)) return NULL;
    static const char *const ends[] = {"endset", NULL};
    const char *ended;
    if (!parse_statements(P, ends, at, &s->u.setblock.b, &ended)) return NULL;
    return s;
}

static stmt *parse_macro(parser *P, const token *at) {
    adv(P); /* macro */
    stmt *s = mk_stmt(P, S_MACRO, at);
    if (!s) return NULL;
    const char *name = expect_name(P);
    if (!name || !expect_op(P, OP_LPAREN)) return NULL;
    s->u.mac.name = name;
    pvec params = {0}, defs = {0};
    bool ok = true, any_default = false;
    while (!is_op(cur(P), OP_RPAREN)) {
        if (params.n && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        const char *pn = expect_name(P);
        expr *d = NULL;
        if (pn && is_op(cur(P), OP_ASSIGN)) {
            adv(P);
            d = parse_expression(P, true);
            if (!d) pn = NULL;
            any_default = true;
        } else if (pn && any_default) {
            failf(P, cur(P), "non-default argument follows default argument");
            pn = NULL;
        }
        if (!pn || !pv_push(&params, (void *)pn) || !pv_push(&defs, d)) {
            ok = false;
            break;
        }
    }
    if (ok) ok = expect_op(P, OP_RPAREN);
    s->u.mac.nparams = params.n;
    s->u.mac.params = (const char **)pv_finish(P, &params, &ok);
    s->u.mac.defaults = (expr **)pv_finish(P, &defs, &ok);
    if (!ok) return P->failed ? NULL : oom(P);
    static const char *const ends[] = {"endmacro", NULL};
    const char *ended;
    int saved = P->in_loop;
    P->in_loop = 0;
    ok = parse_statements(P, ends, at, &s->u.mac.b, &ended);
    P->in_loop = saved;
    return ok ? s : NULL;
}

static stmt *parse_with(parser *P, const token *at) {
    adv(P); /* with */
    stmt *s = mk_stmt(P, S_WITH, at);
    if (!s) return NULL;
    pvec tgs = {0}, vals = {0};
    bool ok = true;
    while (cur(P)->t != T_BLOCK_END) {
        if (tgs.n && !expect_op(P, OP_COMMA)) {
            ok = false;
            break;
        }
        target *tg = parse_target_atom(P);
        expr *v = NULL;
        if (tg && expect_op(P, OP_ASSIGN)) v = parse_expression(P, true);
        if (!v || !pv_push(&tgs, tg) || !pv_push(&vals, v)) {
            ok = false;
            break;
        }
    }
    s->u.with.n = tgs.n;
    s->u.with.tgs = (target **)pv_finish(P, &tgs, &ok);
    s->u.with.vals = (expr **)pv_finish(P, &vals, &ok);
    if (!ok) return P->failed ? NULL : oom(P);
    static const char *const ends[] = {"endwith", NULL};
    const char *ended;
    return parse_statements(P, ends, at, &s->u.with.b, &ended) ? s : NULL;
}

static stmt *parse_statement(parser *P) {
    const token *at = cur(P);
    if (at->t != T_NAME) return failf(P, at, "tag name expected");
    const char *n = at->s;
    if (!strcmp(n, "for")) return parse_for(P, at);
    if (!strcmp(n, "if")) return parse_if(P, at);
    if (!strcmp(n, "set")) return parse_set(P, at);
    if (!strcmp(n, "macro")) return parse_macro(P, at);
    if (!strcmp(n, "with")) return parse_with(P, at);
    if (!strcmp(n, "break") || !strcmp(n, "continue")) {
        if (!P->in_loop) return failf(P, at, "'%s' outside of a loop", n);
        adv(P);
        return mk_stmt(P, n[0] == 'b' ? S_BREAK : S_CONTINUE, at);
    }
    if (!strcmp(n, "filter")) {
        adv(P);
        stmt *s = mk_stmt(P, S_FILTERBLOCK, at);
        if (!s || !parse_filter_chain(P, &s->u.filt.filters, &s->u.filt.nf, true)) return NULL;
        static const char *const ends[] = {"endfilter", NULL};
        const char *ended;
        return parse_statements(P, ends, at, &s->u.filt.b, &ended) ? s : NULL;
    }
    if (!strcmp(n, "generation")) { /* transformers' AssistantTracker: renders its body */
        adv(P);
        stmt *s = mk_stmt(P, S_BLOCK, at);
        static const char *const ends[] = {"endgeneration", NULL};
        const char *ended;
        return s && parse_statements(P, ends, at, &s->u.block, &ended) ? s : NULL;
    }
    static const char *const unsupported[] = {"block", "extends", "include", "import", "from",
                                              "call", "autoescape", NULL};
    for (int i = 0; unsupported[i]; i++)
        if (!strcmp(n, unsupported[i]))
            return failf(P, at, "the '%s' tag is not supported by this interpreter", n);
    return failf(P, at, "Encountered unknown tag '%s'.", n);
}

static bool parse_body(parser *P, const char *const *ends, const token *opener, body *out,
                       const char **ended) {
    memset(out, 0, sizeof *out);
    if (!enter(P)) return false;
    pvec stmts = {0};
    bool ok = true;
    for (;;) {
        const token *t = cur(P);
        if (t->t == T_EOF) {
            if (ends) {
                char want[200] = "";
                for (int i = 0; ends[i]; i++) {
                    size_t l = strlen(want);
                    snprintf(want + l, sizeof want - l, "%s'%s'", i ? " or " : "", ends[i]);
                }
                failf(P, t, "unexpected end of template: expected %s to close the '%s' tag on line %d",
                      want, opener ? opener->s : "?", opener ? opener->line : 0);
                ok = false;
            }
            break;
        }
        stmt *s = NULL;
        if (t->t == T_DATA) {
            s = mk_stmt(P, S_TEXT, t);
            if (s) {
                s->u.text.p = t->s;
                s->u.text.len = t->len;
            }
            adv(P);
        } else if (t->t == T_VAR_BEGIN) {
            adv(P);
            s = mk_stmt(P, S_PRINT, t);
            if (s) s->u.print = parse_tuple(P, true, NULL, false);
            if (!s || !s->u.print || !expect_type(P, T_VAR_END, "end of print statement")) s = NULL;
        } else if (t->t == T_BLOCK_BEGIN) {
            adv(P);
            const token *nt = cur(P);
            if (ends && nt->t == T_NAME) {
                bool hit = false;
                for (int i = 0; ends[i]; i++)
                    if (!strcmp(nt->s, ends[i])) hit = true;
                if (hit) {
                    *ended = nt->s;
                    adv(P);
                    break;
                }
            }
            s = parse_statement(P);
            if (s && !expect_block_end(P)) s = NULL;
        } else {
            char d[80];
            describe(t, d, sizeof d);
            failf(P, t, "unexpected '%s'", d);
        }
        if (!s || !pv_push(&stmts, s)) {
            ok = false;
            break;
        }
    }
    P->depth--;
    out->n = stmts.n;
    out->v = (stmt **)pv_finish(P, &stmts, &ok);
    if (!ok && !P->failed) oom(P);
    return ok;
}

int tpl_parse(tpl_arena *a, const token *toks, size_t n, body *out, ds_err *err) {
    parser P = {.a = a, .t = toks, .n = n, .err = err};
    if (!parse_body(&P, NULL, NULL, out, NULL)) return -1;
    /* an end tag at top level (e.g. a stray endif) stops parse_body only when expected */
    return 0;
}
