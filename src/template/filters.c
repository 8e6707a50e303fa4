/* Builtins of the template language: jinja2's filters and tests that chat templates use,
 * transformers' tojson, the Python str / dict / list methods reachable from a template, and
 * the globals (range, namespace, dict, raise_exception, strftime_now).
 *
 * String results keep provenance: substrings (strip, split, slicing) and rearrangements
 * (replace, join, indent) keep exact caller spans; case mapping and tojson mark their whole
 * result as caller content when any input byte was. jinja2 builtins left out are reported as
 * unsupported (compile time for filters and tests, call time for Python methods). */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "template/tpl_internal.h"

#define MEM_ERR(c, line) rt_err((c), (line), "template exceeded its memory limit (%zu bytes)", (c)->max_memory)

/* ---- ids ------------------------------------------------------------------------------------- */

enum {
    F_ABS, F_ATTR, F_CAPITALIZE, F_COUNT, F_DEFAULT, F_DICTSORT, F_FIRST, F_FLOAT, F_INDENT, F_INT,
    F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR,
    F_REPLACE, F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE,
    F_TOJSON, F_TRIM, F_UNIQUE, F_UPPER, F_WORDCOUNT,
};

static const struct {
    const char *name;
    int id;
} FILTERS[] = {
    {"abs", F_ABS}, {"attr", F_ATTR}, {"capitalize", F_CAPITALIZE}, {"count", F_COUNT},
    {"d", F_DEFAULT}, {"default", F_DEFAULT}, {"dictsort", F_DICTSORT}, {"first", F_FIRST},
    {"float", F_FLOAT}, {"indent", F_INDENT}, {"int", F_INT}, {"items", F_ITEMS}, {"join", F_JOIN},
    {"last", F_LAST}, {"length", F_LENGTH}, {"list", F_LIST}, {"lower", F_LOWER}, {"map", F_MAP},
    {"max", F_MAX}, {"min", F_MIN}, {"reject", F_REJECT}, {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE}, {"reverse", F_REVERSE}, {"round", F_ROUND}, {"safe", F_SAFE},
    {"select", F_SELECT}, {"selectattr", F_SELECTATTR}, {"sort", F_SORT}, {"string", F_STRING},
    {"sum", F_SUM}, {"title", F_TITLE}, {"tojson", F_TOJSON}, {"trim", F_TRIM}, {"unique", F_UNIQUE},
    {"upper", F_UPPER}, {"wordcount", F_WORDCOUNT},
};

/* jinja2 builtin filters this interpreter does not implement. */
static const char *const FILTERS_UNSUPPORTED[] = {
    "batch", "center", "e", "escape", "filesizeformat", "forceescape", "format", "groupby",
    "pprint", "random", "slice", "striptags", "truncate", "urlencode", "urlize", "wordwrap",
    "xmlattr", NULL,
};

enum {
    TS_BOOLEAN, TS_CALLABLE, TS_DEFINED, TS_DIVISIBLEBY, TS_EQ, TS_EVEN, TS_FALSE, TS_FLOAT, TS_GE, TS_GT,
    TS_IN, TS_INTEGER, TS_ITERABLE, TS_LE, TS_LOWER, TS_LT, TS_MAPPING, TS_NE, TS_NONE, TS_NUMBER, TS_ODD,
    TS_SAMEAS, TS_SEQUENCE, TS_STRING, TS_TRUE, TS_UNDEFINED, TS_UPPER,
};

static const struct {
    const char *name;
    int id;
} TESTS[] = {
    {"boolean", TS_BOOLEAN}, {"callable", TS_CALLABLE}, {"defined", TS_DEFINED},
    {"divisibleby", TS_DIVISIBLEBY}, {"eq", TS_EQ}, {"equalto", TS_EQ}, {"==", TS_EQ}, {"even", TS_EVEN},
    {"false", TS_FALSE}, {"float", TS_FLOAT}, {"ge", TS_GE}, {">=", TS_GE}, {"gt", TS_GT}, {">", TS_GT},
    {"greaterthan", TS_GT}, {"in", TS_IN}, {"integer", TS_INTEGER}, {"iterable", TS_ITERABLE},
    {"le", TS_LE}, {"<=", TS_LE}, {"lower", TS_LOWER}, {"lt", TS_LT}, {"<", TS_LT}, {"lessthan", TS_LT},
    {"mapping", TS_MAPPING}, {"ne", TS_NE}, {"!=", TS_NE}, {"none", TS_NONE}, {"number", TS_NUMBER},
    {"odd", TS_ODD}, {"sameas", TS_SAMEAS}, {"sequence", TS_SEQUENCE}, {"string", TS_STRING},
    {"true", TS_TRUE}, {"undefined", TS_UNDEFINED}, {"upper", TS_UPPER},
};

static const char *const TESTS_UNSUPPORTED[] = {"escaped", "filter", "test", NULL};

int tpl_filter_id(const char *name) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name)) return FILTERS[i].id;
    for (size_t i = 0; FILTERS_UNSUPPORTED[i]; i++)
        if (!strcmp(FILTERS_UNSUPPORTED[i], name)) return -2;
    return -1;
}

int tpl_test_id(const char *name) {
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++)
        if (!strcmp(TESTS[i].name, name)) return TESTS[i].id;
    for (size_t i = 0; TESTS_UNSUPPORTED[i]; i++)
        if (!strcmp(TESTS_UNSUPPORTED[i], name)) return -2;
    return -1;
}

enum { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME, G_LIPSUM, G_CYCLER, G_JOINER };

int tpl_global_id(const char *name) {
    static const char *const names[] = {"range", "namespace", "dict", "raise_exception", "strftime_now",
                                        "lipsum", "cycler", "joiner", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* Methods: ids below M_UNSUPPORTED are implemented. */
enum {
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_STARTSWITH, M_ENDSWITH, M_UPPER,
    M_LOWER, M_TITLE, M_CAPITALIZE, M_SWAPCASE, M_REPLACE, M_FIND, M_RFIND, M_INDEX, M_RINDEX,
    M_COUNT, M_JOIN, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISLOWER, M_ISUPPER,
    M_REMOVEPREFIX, M_REMOVESUFFIX,
    M_DGET, M_DITEMS, M_DKEYS, M_DVALUES,
    M_LCOUNT, M_LINDEX,
    M_CYCLE,
    M_UNSUPPORTED, /* Python methods without an implementation: calling one is an error */
    M_UNSAFE,      /* mutating methods the immutable sandbox refuses */
};

typedef struct mname {
    const char *name;
    int id;
} mname;

static const mname STR_METHODS[] = {
    {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT},
    {"rsplit", M_RSPLIT}, {"splitlines", M_SPLITLINES}, {"startswith", M_STARTSWITH},
    {"endswith", M_ENDSWITH}, {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE},
    {"capitalize", M_CAPITALIZE}, {"swapcase", M_SWAPCASE}, {"replace", M_REPLACE}, {"find", M_FIND},
    {"rfind", M_RFIND}, {"index", M_INDEX}, {"rindex", M_RINDEX}, {"count", M_COUNT}, {"join", M_JOIN},
    {"isdigit", M_ISDIGIT}, {"isalpha", M_ISALPHA}, {"isalnum", M_ISALNUM}, {"isspace", M_ISSPACE},
    {"islower", M_ISLOWER}, {"isupper", M_ISUPPER}, {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX},
    {"casefold", M_UNSUPPORTED}, {"center", M_UNSUPPORTED}, {"encode", M_UNSUPPORTED},
    {"expandtabs", M_UNSUPPORTED}, {"format", M_UNSUPPORTED}, {"format_map", M_UNSUPPORTED},
    {"isascii", M_UNSUPPORTED}, {"isdecimal", M_UNSUPPORTED}, {"isidentifier", M_UNSUPPORTED},
    {"isnumeric", M_UNSUPPORTED}, {"isprintable", M_UNSUPPORTED}, {"istitle", M_UNSUPPORTED},
    {"ljust", M_UNSUPPORTED}, {"maketrans", M_UNSUPPORTED}, {"partition", M_UNSUPPORTED},
    {"rjust", M_UNSUPPORTED}, {"rpartition", M_UNSUPPORTED}, {"translate", M_UNSUPPORTED},
    {"zfill", M_UNSUPPORTED}, {NULL, 0},
};

static const mname DICT_METHODS[] = {
    {"get", M_DGET}, {"items", M_DITEMS}, {"keys", M_DKEYS}, {"values", M_DVALUES},
    {"copy", M_UNSUPPORTED}, {"fromkeys", M_UNSUPPORTED}, {"clear", M_UNSAFE}, {"pop", M_UNSAFE},
    {"popitem", M_UNSAFE}, {"setdefault", M_UNSAFE}, {"update", M_UNSAFE}, {NULL, 0},
};

static const mname LIST_METHODS[] = {
    {"count", M_LCOUNT}, {"index", M_LINDEX}, {"copy", M_UNSUPPORTED}, {"append", M_UNSAFE},
    {"clear", M_UNSAFE}, {"extend", M_UNSAFE}, {"insert", M_UNSAFE}, {"pop", M_UNSAFE},
    {"remove", M_UNSAFE}, {"reverse", M_UNSAFE}, {"sort", M_UNSAFE}, {NULL, 0},
};

static const mname LOOP_METHODS[] = {{"cycle", M_CYCLE}, {"changed", M_UNSUPPORTED}, {NULL, 0}};

val *tpl_method_lookup(rctx *c, val *self, const char *name, int line) {
    const mname *table = NULL;
    switch ((vkind)self->kind) {
    case VK_STR: table = STR_METHODS; break;
    case VK_DICT: table = DICT_METHODS; break;
    case VK_LIST: table = self->seq == SEQ_LIST ? LIST_METHODS : NULL; break;
    case VK_LOOP: table = LOOP_METHODS; break;
    default: break;
    }
    if (self->kind == VK_LIST && (self->seq == SEQ_TUPLE || self->seq == SEQ_RANGE)) {
        if (!strcmp(name, "count")) table = LIST_METHODS;
        else if (!strcmp(name, "index")) table = LIST_METHODS;
    }
    if (!table) return NULL;
    for (size_t i = 0; table[i].name; i++) {
        if (strcmp(table[i].name, name) != 0) continue;
        val *m = v_new(c, VK_METHOD);
        if (!m) return NULL;
        m->u.m.self = self;
        m->u.m.id = table[i].id;
        return m;
    }
    return NULL;
}

/* ---- argument binding ------------------------------------------------------------------------ */

/* Binds positional and keyword arguments to `names` (in order); unset ones stay NULL. */
static bool bind(rctx *c, vargs *a, const char *what, int line, const char *const *names, int n, val **out) {
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (a->npos > (size_t)n)
        return rt_err(c, line, "%s takes at most %d argument(s) (%zu given)", what, n, a->npos), false;
    for (size_t i = 0; i < a->npos; i++) out[i] = a->pos[i];
    for (size_t k = 0; k < a->nkw; k++) {
        int i = 0;
        while (i < n && strcmp(names[i], a->kwn[k]) != 0) i++;
        if (i == n) return rt_err(c, line, "%s got an unexpected keyword argument '%s'", what, a->kwn[k]), false;
        if (out[i]) return rt_err(c, line, "%s got multiple values for argument '%s'", what, a->kwn[k]), false;
        out[i] = a->kwv[k];
    }
    return true;
}

static bool is_int(const val *v) { return v->kind == VK_INT || v->kind == VK_BOOL; }
static int64_t as_int(const val *v) { return v->kind == VK_BOOL ? (int64_t)v->u.b : v->u.i; }
static bool is_num(const val *v) { return v->kind == VK_BOOL || v->kind == VK_INT || v->kind == VK_FLOAT; }
static double as_double(const val *v) { return v->kind == VK_FLOAT ? v->u.f : (double)as_int(v); }

static bool need_str(rctx *c, const val *v, const char *what, int line) {
    if (v && v->kind == VK_STR) return true;
    rt_err(c, line, "%s: expected a string, got %s", what, v ? v_type_name(v) : "nothing");
    return false;
}

static val *mk_list(rctx *c, val **items, size_t n, int seq, int line) {
    val *v = v_list(c, items, n, seq);
    if (!v && !c->failed) MEM_ERR(c, line);
    return v;
}

static val *str_val(rctx *c, sbuf *b, int line) {
    tstr out;
    if (!sb_finish(b, c->ar, &out)) return MEM_ERR(c, line);
    return v_str(c, out);
}

static val *substr(rctx *c, tstr s, size_t a, size_t b, int line) {
    tstr out;
    if (!tstr_sub(c->ar, s, a, b, &out)) return MEM_ERR(c, line);
    return v_str(c, out);
}

/* str(v) for filters that work on text (jinja2's soft_str). */
static bool soft_str(rctx *c, const val *v, tstr *out, int line) { return v_to_str(c, v, out, line); }

/* ---- text helpers ---------------------------------------------------------------------------- */

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE_WORDS, CASE_CAPITALIZE, CASE_SWAP } casemode;

static bool is_cased(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static val *case_map(rctx *c, tstr s, casemode mode, int line) {
    sbuf b;
    rt_sbuf(c, &b);
    const char *p = s.p, *end = s.p + s.len;
    bool prev_cased = false, first = true;
    while (p < end) {
        int n;
        uint32_t cp = utf8_decode(p, end, &n);
        uint32_t out = cp;
        if (n == 1 && cp >= 0x80) { /* invalid byte: copied */
            sb_put(&b, p, 1, false);
            p++;
            continue;
        }
        utf8proc_int32_t x = (utf8proc_int32_t)cp;
        switch (mode) {
        case CASE_UPPER: out = (uint32_t)utf8proc_toupper(x); break;
        case CASE_LOWER: out = (uint32_t)utf8proc_tolower(x); break;
        case CASE_TITLE_WORDS: out = (uint32_t)(prev_cased ? utf8proc_tolower(x) : utf8proc_totitle(x)); break;
        case CASE_CAPITALIZE: out = (uint32_t)(first ? utf8proc_totitle(x) : utf8proc_tolower(x)); break;
        case CASE_SWAP: {
            utf8proc_category_t k = utf8proc_category(x);
            out = (uint32_t)(k == UTF8PROC_CATEGORY_LU ? utf8proc_tolower(x)
                             : k == UTF8PROC_CATEGORY_LL ? utf8proc_toupper(x) : x);
            break;
        }
        }
        prev_cased = is_cased(cp);
        first = false;
        char tmp[4];
        sb_put(&b, tmp, (size_t)utf8_encode(out, tmp), false);
        p += n;
    }
    if (s.nsp && b.len) sb_mark(&b, 0, b.len);
    return str_val(c, &b, line);
}

/* Is cp in the strip set (NULL set = Python whitespace)? */
static bool in_set(uint32_t cp, const tstr *set) {
    if (!set) return py_isspace(cp);
    const char *p = set->p, *end = set->p + set->len;
    while (p < end) {
        int n;
        if (utf8_decode(p, end, &n) == cp) return true;
        p += n;
    }
    return false;
}

static size_t prev_cp(const char *s, size_t pos, uint32_t *cp) {
    size_t k = pos - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80 && pos - k < 4) k--;
    int n;
    uint32_t x = utf8_decode(s + k, s + pos, &n);
    if ((size_t)n != pos - k) {
        k = pos - 1;
        x = (unsigned char)s[k];
    }
    *cp = x;
    return k;
}

static val *do_strip(rctx *c, tstr s, const val *chars, bool left, bool right, int line) {
    tstr set;
    const tstr *sp = NULL;
    if (chars && chars->kind != VK_NONE) {
        if (chars->kind != VK_STR) return rt_err(c, line, "strip arg must be None or str");
        set = chars->u.s;
        sp = &set;
    }
    size_t a = 0, b = s.len;
    while (left && a < b) {
        int n;
        uint32_t cp = utf8_decode(s.p + a, s.p + b, &n);
        if (!in_set(cp, sp)) break;
        a += (size_t)n;
    }
    while (right && b > a) {
        uint32_t cp;
        size_t k = prev_cp(s.p, b, &cp);
        if (k < a || !in_set(cp, sp)) break;
        b = k;
    }
    return substr(c, s, a, b, line);
}

/* Python's split / rsplit. */
static val *do_split(rctx *c, tstr s, const val *sepv, const val *maxv, bool from_right, int line) {
    int64_t maxsplit = -1;
    if (maxv) {
        if (!is_int(maxv)) return rt_err(c, line, "maxsplit must be an integer");
        maxsplit = as_int(maxv);
    }
    size_t cap = 8, n = 0;
    val **items = malloc(cap * sizeof *items);
    if (!items) return MEM_ERR(c, line);
    bool ok = true;
#define PUSH(a, b)                                                                                  \
    do {                                                                                            \
        if (n == cap) {                                                                             \
            val **ni = realloc(items, (cap *= 2) * sizeof *items);                                  \
            if (!ni) { ok = false; break; }                                                         \
            items = ni;                                                                             \
        }                                                                                           \
        val *piece = substr(c, s, (a), (b), line);                                                  \
        if (!piece || !rt_step(c, line, 1)) { ok = false; break; }                                  \
        items[n++] = piece;                                                                         \
    } while (0)
    if (!sepv || sepv->kind == VK_NONE) {
        if (!from_right) {
            size_t i = 0;
            for (;;) {
                int k;
                while (i < s.len && py_isspace(utf8_decode(s.p + i, s.p + s.len, &k))) i += (size_t)k;
                if (i >= s.len) break;
                if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
                    /* the rest, with its trailing whitespace kept */
                    PUSH(i, s.len);
                    break;
                }
                size_t j = i;
                while (j < s.len && !py_isspace(utf8_decode(s.p + j, s.p + s.len, &k))) j += (size_t)k;
                PUSH(i, j);
                if (!ok) break;
                i = j;
            }
        } else {
            size_t i = s.len;
            for (;;) {
                uint32_t cp;
                while (i > 0) {
                    size_t k = prev_cp(s.p, i, &cp);
                    if (!py_isspace(cp)) break;
                    i = k;
                }
                if (i == 0) break;
                if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
                    PUSH(0, i);
                    break;
                }
                size_t j = i;
                while (j > 0) {
                    size_t k = prev_cp(s.p, j, &cp);
                    if (py_isspace(cp)) break;
                    j = k;
                }
                PUSH(j, i);
                if (!ok) break;
                i = j;
            }
        }
    } else {
        if (sepv->kind != VK_STR) {
            free(items);
            return rt_err(c, line, "must be str or None, not %s", v_type_name(sepv));
        }
        tstr sep = sepv->u.s;
        if (sep.len == 0) {
            free(items);
            return rt_err(c, line, "empty separator");
        }
        if (!from_right) {
            size_t i = 0;
            for (;;) {
                const char *hit = NULL;
                if (maxsplit < 0 || (int64_t)n < maxsplit) hit = memmem(s.p + i, s.len - i, sep.p, sep.len);
                if (!hit) {
                    PUSH(i, s.len);
                    break;
                }
                size_t j = (size_t)(hit - s.p);
                PUSH(i, j);
                if (!ok) break;
                i = j + sep.len;
            }
        } else {
            size_t i = s.len;
            for (;;) {
                size_t j = SIZE_MAX;
                if (maxsplit < 0 || (int64_t)n < maxsplit)
                    for (size_t k = i; k >= sep.len; k--)
                        if (memcmp(s.p + k - sep.len, sep.p, sep.len) == 0) {
                            j = k - sep.len;
                            break;
                        }
                if (j == SIZE_MAX) {
                    PUSH(0, i);
                    break;
                }
                PUSH(j + sep.len, i);
                if (!ok) break;
                i = j;
            }
        }
    }
#undef PUSH
    if (ok && from_right) /* collected right to left */
        for (size_t i = 0; i < n / 2; i++) {
            val *t = items[i];
            items[i] = items[n - 1 - i];
            items[n - 1 - i] = t;
        }
    val *r = ok ? mk_list(c, items, n, SEQ_LIST, line) : NULL;
    free(items);
    if (!ok && !c->failed) MEM_ERR(c, line);
    return r;
}

static bool is_linebreak(uint32_t cp) {
    return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
           cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

/* Python's splitlines(keepends). */
static val *do_splitlines(rctx *c, tstr s, bool keepends, int line) {
    size_t cap = 8, n = 0, i = 0;
    val **items = malloc(cap * sizeof *items);
    if (!items) return MEM_ERR(c, line);
    bool ok = true;
    while (i < s.len && ok) {
        size_t j = i;
        int k = 1;
        uint32_t cp = 0;
        while (j < s.len && !is_linebreak(cp = utf8_decode(s.p + j, s.p + s.len, &k))) j += (size_t)k;
        size_t eol = j;
        if (j < s.len) {
            eol = j + (size_t)k;
            if (cp == '\r' && eol < s.len && s.p[eol] == '\n') eol++;
        }
        if (n == cap) {
            val **ni = realloc(items, (cap *= 2) * sizeof *items);
            if (!ni) {
                ok = false;
                break;
            }
            items = ni;
        }
        val *piece = substr(c, s, i, keepends ? eol : j, line);
        if (!piece || !rt_step(c, line, 1)) ok = false;
        else items[n++] = piece;
        i = eol;
    }
    val *r = ok ? mk_list(c, items, n, SEQ_LIST, line) : NULL;
    free(items);
    if (!ok && !c->failed) MEM_ERR(c, line);
    return r;
}

/* Python's str.replace(old, new, count) with provenance kept. */
static val *do_replace(rctx *c, tstr s, const val *oldv, const val *newv, const val *countv, int line) {
    if (!oldv || !newv || oldv->kind != VK_STR || newv->kind != VK_STR)
        return rt_err(c, line, "replace() arguments must be strings");
    int64_t count = -1;
    if (countv && countv->kind != VK_NONE) {
        if (!is_int(countv)) return rt_err(c, line, "replace() count must be an integer");
        count = as_int(countv);
    }
    tstr old = oldv->u.s, rep = newv->u.s;
    sbuf b;
    rt_sbuf(c, &b);
    size_t i = 0;
    int64_t done = 0;
    if (old.len == 0) { /* insert rep before every character and at the end */
        while (i <= s.len) {
            if (count >= 0 && done >= count) break;
            sb_put_tstr(&b, rep);
            done++;
            if (i == s.len) {
                i++;
                break;
            }
            int k;
            utf8_decode(s.p + i, s.p + s.len, &k);
            tstr ch;
            if (!tstr_sub(c->ar, s, i, i + (size_t)k, &ch)) {
                sb_free(&b);
                return MEM_ERR(c, line);
            }
            sb_put_tstr(&b, ch);
            i += (size_t)k;
            if (!rt_step(c, line, 1)) {
                sb_free(&b);
                return NULL;
            }
        }
        if (i <= s.len) {
            tstr rest;
            if (!tstr_sub(c->ar, s, i, s.len, &rest)) {
                sb_free(&b);
                return MEM_ERR(c, line);
            }
            sb_put_tstr(&b, rest);
        }
        return str_val(c, &b, line);
    }
    for (;;) {
        const char *hit = (count < 0 || done < count) ? memmem(s.p + i, s.len - i, old.p, old.len) : NULL;
        size_t j = hit ? (size_t)(hit - s.p) : s.len;
        tstr piece;
        if (!tstr_sub(c->ar, s, i, j, &piece)) {
            sb_free(&b);
            return MEM_ERR(c, line);
        }
        sb_put_tstr(&b, piece);
        if (!hit) break;
        sb_put_tstr(&b, rep);
        done++;
        i = j + old.len;
        if (!rt_step(c, line, 1)) {
            sb_free(&b);
            return NULL;
        }
    }
    return str_val(c, &b, line);
}

static size_t cp_count(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) k++;
    return k;
}

/* ---- sorting (stable merge sort with a fallible comparison) ---------------------------------- */

typedef struct sortctx {
    rctx *c;
    int line;
    bool failed;
} sortctx;

/* Key used for ordering: attribute lookup and case folding already applied. */
static int key_cmp(sortctx *s, val *a, val *b) {
    if (s->failed) return 0;
    int r = v_cmp(s->c, a, b, s->line);
    if (r == -2) {
        s->failed = true;
        return 0;
    }
    return r == 3 ? 0 : r;
}

static void msort(sortctx *s, val **keys, size_t *idx, size_t *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    msort(s, keys, idx, tmp, h);
    msort(s, keys, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (key_cmp(s, keys[idx[j]], keys[idx[i]]) < 0) tmp[k++] = idx[j++];
        else tmp[k++] = idx[i++];
    }
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* jinja2's make_attrgetter: "a.b.0" looked up with getitem semantics. */
static val *attr_get(rctx *c, val *item, const val *attr, int line) {
    if (!attr || attr->kind == VK_NONE) return item;
    if (is_int(attr)) return v_getitem(c, item, (val *)attr, line);
    if (attr->kind != VK_STR) return rt_err(c, line, "attribute must be a string or an integer");
    const char *p = attr->u.s.p, *end = p + attr->u.s.len;
    val *cur = item;
    while (cur) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *pe = dot ? dot : end;
        bool digits = pe > p;
        for (const char *q = p; q < pe; q++)
            if (!isdigit((unsigned char)*q)) digits = false;
        val *key;
        if (digits) {
            int64_t k = 0;
            for (const char *q = p; q < pe && k < INT64_MAX / 10 - 10; q++) k = k * 10 + (*q - '0');
            key = v_int(c, k);
        } else {
            key = v_text(c, p, (size_t)(pe - p), false);
        }
        if (!key) return NULL;
        cur = v_getitem(c, cur, key, line);
        if (!dot) break;
        p = dot + 1;
    }
    return cur;
}

static val *fold_case(rctx *c, val *v, bool case_sensitive, int line) {
    if (case_sensitive || v->kind != VK_STR) return v;
    return case_map(c, v->u.s, CASE_LOWER, line);
}

/* Sorts items by (attribute, case folding); writes the order into *order (malloc'd). */
static bool sort_order(rctx *c, val **items, size_t n, const val *attr, bool case_sensitive, int line,
                       size_t **order) {
    *order = NULL;
    val **keys = n ? ar_alloc(c->ar, n * sizeof *keys) : NULL;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx), *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if ((n && !keys) || !idx || !tmp) {
        free(idx);
        free(tmp);
        MEM_ERR(c, line);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        val *k = attr_get(c, items[i], attr, line);
        if (k) k = fold_case(c, k, case_sensitive, line);
        if (!k) {
            free(idx);
            free(tmp);
            return false;
        }
        keys[i] = k;
    }
    if (!rt_step(c, line, n * 4)) {
        free(idx);
        free(tmp);
        return false;
    }
    sortctx s = {c, line, false};
    msort(&s, keys, idx, tmp, n);
    free(tmp);
    if (s.failed) {
        free(idx);
        return false;
    }
    *order = idx;
    return true;
}

/* ---- numbers from text (Python's int() / float()) -------------------------------------------- */

/* Copies s without whitespace around it and with '_' between digits removed; false if an
 * underscore is misplaced. */
static bool py_num_text(tstr s, char *buf, size_t cap) {
    size_t a = 0, b = s.len;
    int k;
    while (a < b && py_isspace(utf8_decode(s.p + a, s.p + b, &k))) a += (size_t)k;
    while (b > a) {
        uint32_t cp;
        size_t q = prev_cp(s.p, b, &cp);
        if (!py_isspace(cp)) break;
        b = q;
    }
    if (b - a + 1 > cap) return false;
    size_t o = 0;
    for (size_t i = a; i < b; i++) {
        if (s.p[i] == '_') {
            if (i == a || i + 1 >= b || !isxdigit((unsigned char)s.p[i - 1]) || !isxdigit((unsigned char)s.p[i + 1]))
                return false;
            continue;
        }
        buf[o++] = s.p[i];
    }
    buf[o] = '\0';
    return o > 0;
}

static bool parse_py_int(tstr s, int base, int64_t *out) {
    char buf[128];
    if (!py_num_text(s, buf, sizeof buf)) return false;
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (p[0] == '0' && p[1]) {
            char x = (char)tolower((unsigned char)p[1]);
            int b = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
            if (b && (base == 0 || base == b)) {
                base = b;
                p += 2;
            }
        }
        if (base == 0) base = 10;
    }
    if (base < 2 || base > 36 || !*p) return false;
    uint64_t acc = 0;
    for (; *p; p++) {
        int d = isdigit((unsigned char)*p) ? *p - '0' : isalpha((unsigned char)*p) ? tolower((unsigned char)*p) - 'a' + 10 : 99;
        if (d >= base) return false;
        if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        acc = acc * (uint64_t)base + (uint64_t)d;
    }
    if (acc > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) return false;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

static bool parse_py_float(tstr s, double *out) {
    char buf[400];
    if (!py_num_text(s, buf, sizeof buf)) return false;
    const char *p = buf;
    if (*p == '+' || *p == '-') p++;
    char low[16];
    size_t l = strlen(p);
    if (l < sizeof low) {
        for (size_t i = 0; i <= l; i++) low[i] = (char)tolower((unsigned char)p[i]);
        if (!strcmp(low, "inf") || !strcmp(low, "infinity")) {
            *out = buf[0] == '-' ? -INFINITY : INFINITY;
            return true;
        }
        if (!strcmp(low, "nan")) {
            *out = NAN;
            return true;
        }
    }
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q) && *q != '.' && *q != 'e' && *q != 'E' && *q != '+' && *q != '-') return false;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (*end || end == buf) return false;
    *out = d;
    return true;
}

/* ---- filters --------------------------------------------------------------------------------- */

static val *iter_list(rctx *c, val *v, int line, val ***items, size_t *n) {
    if (!v_iter(c, v, items, n, line)) return NULL;
    return v;
}

static int64_t len_of(rctx *c, const val *v, int line, bool *ok) {
    *ok = true;
    switch ((vkind)v->kind) {
    case VK_UNDEF: return 0;
    case VK_STR: return rt_step(c, line, v->u.s.len / 64) ? (int64_t)tstr_cplen(v->u.s) : (*ok = false, 0);
    case VK_LIST:
        if (v->seq != SEQ_GEN) return (int64_t)v->u.l.n;
        break;
    case VK_DICT: return (int64_t)v->u.d->n;
    case VK_LOOP: return (int64_t)v->u.loop->n;
    default: break;
    }
    *ok = false;
    rt_err(c, line, "object of type '%s' has no len()", v_type_name(v));
    return 0;
}

static int run_test(rctx *c, int id, const char *name, val *v, vargs *a, int line);

/* select / reject / selectattr / rejectattr */
static val *filter_select(rctx *c, val *v, vargs *a, bool by_attr, bool want, int line) {
    val **items;
    size_t n;
    if (!iter_list(c, v, line, &items, &n)) return NULL;
    size_t first = 0;
    val *attr = NULL;
    if (by_attr) {
        if (a->npos < 1) return rt_err(c, line, "selectattr/rejectattr need an attribute name");
        attr = a->pos[0];
        first = 1;
    }
    int test = -1;
    const char *tname = NULL;
    if (a->npos > first) {
        if (a->pos[first]->kind != VK_STR) return rt_err(c, line, "the test name must be a string");
        char *tn = ar_strndup(c->ar, a->pos[first]->u.s.p, a->pos[first]->u.s.len);
        if (!tn) return MEM_ERR(c, line);
        test = tpl_test_id(tn);
        if (test == -1) return rt_err(c, line, "No test named '%s'.", tn);
        if (test == -2) return rt_err(c, line, "test '%s' is not supported by this interpreter", tn);
        tname = tn;
        first++;
    }
    if (a->nkw) return rt_err(c, line, "keyword arguments to select/reject tests are not supported");
    vargs targs = {a->npos > first ? a->pos + first : NULL, a->npos - first, NULL, NULL, 0};
    val **kept = n ? ar_alloc(c->ar, n * sizeof *kept) : NULL;
    if (n && !kept) return MEM_ERR(c, line);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rt_step(c, line, 1)) return NULL;
        val *x = by_attr ? attr_get(c, items[i], attr, line) : items[i];
        if (!x) return NULL;
        int r;
        if (test < 0) r = v_truthy(x);
        else if ((r = run_test(c, test, tname, x, &targs, line)) < 0) return NULL;
        if ((r == 1) == want) kept[k++] = items[i];
    }
    return mk_list(c, kept, k, SEQ_GEN, line);
}

static val *filter_map(rctx *c, val *v, vargs *a, int line) {
    val **items;
    size_t n;
    if (!iter_list(c, v, line, &items, &n)) return NULL;
    val *attr = NULL, *deflt = NULL;
    for (size_t k = 0; k < a->nkw; k++) {
        if (!strcmp(a->kwn[k], "attribute")) attr = a->kwv[k];
        else if (!strcmp(a->kwn[k], "default")) deflt = a->kwv[k];
        else if (a->npos == 0) return rt_err(c, line, "map got an unexpected keyword argument '%s'", a->kwn[k]);
    }
    val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
    if (n && !out) return MEM_ERR(c, line);
    if (attr) {
        if (a->npos) return rt_err(c, line, "map takes either an attribute or a filter name");
        for (size_t i = 0; i < n; i++) {
            if (!rt_step(c, line, 1)) return NULL;
            val *x = attr_get(c, items[i], attr, line);
            if (!x) return NULL;
            out[i] = (x->kind == VK_UNDEF && deflt) ? deflt : x;
        }
        return mk_list(c, out, n, SEQ_GEN, line);
    }
    if (a->npos < 1 || a->pos[0]->kind != VK_STR) return rt_err(c, line, "map needs a filter name or attribute=");
    char *fname = ar_strndup(c->ar, a->pos[0]->u.s.p, a->pos[0]->u.s.len);
    if (!fname) return MEM_ERR(c, line);
    int id = tpl_filter_id(fname);
    if (id == -1) return rt_err(c, line, "No filter named '%s'.", fname);
    if (id == -2) return rt_err(c, line, "filter '%s' is not supported by this interpreter", fname);
    vargs fa = {a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw};
    for (size_t i = 0; i < n; i++) {
        if (!rt_step(c, line, 1)) return NULL;
        if (!(out[i] = tpl_apply_filter(c, id, fname, items[i], &fa, line))) return NULL;
    }
    return mk_list(c, out, n, SEQ_GEN, line);
}

static val *filter_tojson(rctx *c, val *v, vargs *a, int line) {
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    val *p[4];
    if (!bind(c, a, "tojson", line, names, 4, p)) return NULL;
    bool ensure_ascii = p[0] && v_truthy(p[0]);
    bool sort_keys = p[3] && v_truthy(p[3]);
    int indent_n = -1;
    const char *indent_s = NULL;
    if (p[1] && p[1]->kind != VK_NONE) {
        if (is_int(p[1])) {
            int64_t k = as_int(p[1]);
            indent_n = k < 0 ? 0 : k > 64 ? 64 : (int)k;
        } else if (p[1]->kind == VK_STR) {
            if (!(indent_s = ar_strndup(c->ar, p[1]->u.s.p, p[1]->u.s.len))) return MEM_ERR(c, line);
        } else {
            return rt_err(c, line, "tojson: indent must be an integer or a string");
        }
    }
    bool pretty = indent_n >= 0 || indent_s;
    const char *item_sep = pretty ? "," : ", ", *key_sep = ": ";
    if (p[2] && p[2]->kind != VK_NONE) {
        if (p[2]->kind != VK_LIST || p[2]->u.l.n != 2 || p[2]->u.l.v[0]->kind != VK_STR ||
            p[2]->u.l.v[1]->kind != VK_STR)
            return rt_err(c, line, "tojson: separators must be a pair of strings");
        item_sep = ar_strndup(c->ar, p[2]->u.l.v[0]->u.s.p, p[2]->u.l.v[0]->u.s.len);
        key_sep = ar_strndup(c->ar, p[2]->u.l.v[1]->u.s.p, p[2]->u.l.v[1]->u.s.len);
        if (!item_sep || !key_sep) return MEM_ERR(c, line);
    }
    sbuf b;
    rt_sbuf(c, &b);
    if (!v_tojson(c, v, &b, indent_n, indent_s, item_sep, key_sep, sort_keys, ensure_ascii, 0, line)) {
        sb_free(&b);
        return NULL;
    }
    if (b.len && v_has_caller(v, 0)) sb_mark(&b, 0, b.len);
    return str_val(c, &b, line);
}

static val *filter_join(rctx *c, val *v, vargs *a, int line) {
    static const char *const names[] = {"d", "attribute"};
    val *p[2];
    if (!bind(c, a, "join", line, names, 2, p)) return NULL;
    tstr sep = {"", 0, NULL, 0};
    if (p[0] && !soft_str(c, p[0], &sep, line)) return NULL;
    val **items;
    size_t n;
    if (!iter_list(c, v, line, &items, &n)) return NULL;
    sbuf b;
    rt_sbuf(c, &b);
    for (size_t i = 0; i < n; i++) {
        val *x = attr_get(c, items[i], p[1], line);
        tstr s;
        if (!x || !rt_step(c, line, 1) || !soft_str(c, x, &s, line)) {
            sb_free(&b);
            return NULL;
        }
        if (i) sb_put_tstr(&b, sep);
        sb_put_tstr(&b, s);
    }
    return str_val(c, &b, line);
}

/* jinja2's title filter: words start after [-\s({\[<]. */
static val *filter_title(rctx *c, tstr s, int line) {
    sbuf b;
    rt_sbuf(c, &b);
    const char *p = s.p, *end = s.p + s.len;
    bool word_start = true;
    while (p < end) {
        int n;
        uint32_t cp = utf8_decode(p, end, &n);
        bool sep = py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        uint32_t out = cp;
        if (!(n == 1 && cp >= 0x80)) {
            if (sep) out = cp;
            else if (word_start) out = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
            else out = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
            char tmp[4];
            sb_put(&b, tmp, (size_t)utf8_encode(out, tmp), false);
        } else {
            sb_put(&b, p, 1, false);
        }
        word_start = sep;
        p += n;
    }
    if (s.nsp && b.len) sb_mark(&b, 0, b.len);
    return str_val(c, &b, line);
}

static val *filter_indent(rctx *c, tstr s, vargs *a, int line) {
    static const char *const names[] = {"width", "first", "blank"};
    val *p[3];
    if (!bind(c, a, "indent", line, names, 3, p)) return NULL;
    tstr ind = {"    ", 4, NULL, 0};
    if (p[0]) {
        if (p[0]->kind == VK_STR) ind = p[0]->u.s;
        else if (is_int(p[0])) {
            int64_t w = as_int(p[0]);
            if (w < 0) w = 0;
            if (w > 1024) return rt_err(c, line, "indent: width too large");
            char *sp = ar_alloc(c->ar, (size_t)w + 1);
            if (!sp) return MEM_ERR(c, line);
            memset(sp, ' ', (size_t)w);
            ind.p = sp;
            ind.len = (size_t)w;
        } else {
            return rt_err(c, line, "indent: width must be an integer or a string");
        }
    }
    bool first = p[1] && v_truthy(p[1]), blank = p[2] && v_truthy(p[2]);
    /* s += "\n"; lines = s.splitlines() */
    sbuf tmpb;
    rt_sbuf(c, &tmpb);
    sb_put_tstr(&tmpb, s);
    sb_putc(&tmpb, '\n');
    tstr s2;
    if (!sb_finish(&tmpb, c->ar, &s2)) return MEM_ERR(c, line);
    val *lines = do_splitlines(c, s2, false, line);
    if (!lines) return NULL;
    sbuf b;
    rt_sbuf(c, &b);
    if (first) sb_put_tstr(&b, ind);
    for (size_t i = 0; i < lines->u.l.n; i++) {
        tstr l = lines->u.l.v[i]->u.s;
        if (i) {
            sb_putc(&b, '\n');
            if (blank || l.len) sb_put_tstr(&b, ind);
        }
        sb_put_tstr(&b, l);
    }
    return str_val(c, &b, line);
}

static val *filter_round(rctx *c, val *v, vargs *a, int line) {
    static const char *const names[] = {"precision", "method"};
    val *p[2];
    if (!bind(c, a, "round", line, names, 2, p)) return NULL;
    int64_t prec = p[0] ? (is_int(p[0]) ? as_int(p[0]) : -1000) : 0;
    if (prec == -1000) return rt_err(c, line, "round: precision must be an integer");
    const char *method = "common";
    if (p[1]) {
        if (p[1]->kind != VK_STR) return rt_err(c, line, "round: method must be a string");
        if (tstr_eq(p[1]->u.s, "common")) method = "common";
        else if (tstr_eq(p[1]->u.s, "ceil")) method = "ceil";
        else if (tstr_eq(p[1]->u.s, "floor")) method = "floor";
        else return rt_err(c, line, "method must be common, ceil or floor");
    }
    if (!is_num(v)) return rt_err(c, line, "round: expected a number, got %s", v_type_name(v));
    if (prec < -300 || prec > 300) return rt_err(c, line, "round: precision out of range");
    if (!strcmp(method, "common")) {
        if (v->kind != VK_FLOAT) return prec >= 0 ? (v->kind == VK_BOOL ? v_int(c, as_int(v)) : v)
                                                  : rt_err(c, line, "round: negative precision on integers is not supported");
        double x = v->u.f;
        if (!isfinite(x)) return v;
        if (prec == 0) return v_float(c, nearbyint(x)); /* ties to even, as Python */
        if (prec > 0) {
            char buf[512];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            return v_float(c, strtod(buf, NULL));
        }
        double m = pow(10.0, (double)-prec);
        return v_float(c, nearbyint(x / m) * m);
    }
    double m = pow(10.0, (double)prec), x = as_double(v) * m;
    return v_float(c, (method[0] == 'c' ? ceil(x) : floor(x)) / m);
}

static val *filter_minmax(rctx *c, val *v, vargs *a, bool want_max, int line) {
    static const char *const names[] = {"case_sensitive", "attribute"};
    val *p[2];
    if (!bind(c, a, want_max ? "max" : "min", line, names, 2, p)) return NULL;
    val **items;
    size_t n;
    if (!iter_list(c, v, line, &items, &n)) return NULL;
    if (n == 0) return v_undef(c, "No aggregated item, sequence was empty.");
    bool cs = p[0] && v_truthy(p[0]);
    val *best = NULL, *bestk = NULL;
    for (size_t i = 0; i < n; i++) {
        val *k = attr_get(c, items[i], p[1], line);
        if (k) k = fold_case(c, k, cs, line);
        if (!k || !rt_step(c, line, 1)) return NULL;
        if (!best) {
            best = items[i];
            bestk = k;
            continue;
        }
        int r = v_cmp(c, k, bestk, line);
        if (r == -2) return NULL;
        if (r != 3 && (want_max ? r > 0 : r < 0)) {
            best = items[i];
            bestk = k;
        }
    }
    return best;
}

val *tpl_apply_filter(rctx *c, int id, const char *name, val *v, vargs *a, int line) {
    tstr s;
    val *p[4];
    switch (id) {
    case F_ABS:
        if (!bind(c, a, "abs", line, NULL, 0, p)) return NULL;
        if (v->kind == VK_FLOAT) return v_float(c, fabs(v->u.f));
        if (is_int(v)) {
            if (as_int(v) == INT64_MIN) return rt_err(c, line, "integer overflow");
            return v_int(c, llabs(as_int(v)));
        }
        return rt_err(c, line, "bad operand type for abs(): '%s'", v_type_name(v));
    case F_ATTR: {
        static const char *const names[] = {"name"};
        if (!bind(c, a, "attr", line, names, 1, p)) return NULL;
        if (!need_str(c, p[0], "attr", line)) return NULL;
        char *an = ar_strndup(c->ar, p[0]->u.s.p, p[0]->u.s.len);
        if (!an) return MEM_ERR(c, line);
        if (v->kind == VK_DICT) { /* attributes only, no item fallback */
            val *m = tpl_method_lookup(c, v, an, line);
            return m ? m : c->failed ? NULL : v_undef(c, "no such attribute");
        }
        return v_getattr(c, v, an, line);
    }
    case F_CAPITALIZE:
    case F_LOWER:
    case F_UPPER:
        if (!bind(c, a, name, line, NULL, 0, p) || !soft_str(c, v, &s, line)) return NULL;
        return case_map(c, s, id == F_LOWER ? CASE_LOWER : id == F_UPPER ? CASE_UPPER : CASE_CAPITALIZE, line);
    case F_TITLE:
        if (!bind(c, a, name, line, NULL, 0, p) || !soft_str(c, v, &s, line)) return NULL;
        return filter_title(c, s, line);
    case F_COUNT:
    case F_LENGTH: {
        if (!bind(c, a, name, line, NULL, 0, p)) return NULL;
        bool ok;
        int64_t n = len_of(c, v, line, &ok);
        return ok ? v_int(c, n) : NULL;
    }
    case F_DEFAULT: {
        static const char *const names[] = {"default_value", "boolean"};
        if (!bind(c, a, "default", line, names, 2, p)) return NULL;
        bool boolean = p[1] && v_truthy(p[1]);
        if (v->kind == VK_UNDEF || (boolean && !v_truthy(v))) return p[0] ? p[0] : v_lit(c, "");
        return v;
    }
    case F_DICTSORT: {
        static const char *const names[] = {"case_sensitive", "by", "reverse"};
        if (!bind(c, a, "dictsort", line, names, 3, p)) return NULL;
        if (v->kind != VK_DICT) return rt_err(c, line, "dictsort: expected a mapping, got %s", v_type_name(v));
        bool by_value = false;
        if (p[1]) {
            if (p[1]->kind == VK_STR && tstr_eq(p[1]->u.s, "value")) by_value = true;
            else if (!(p[1]->kind == VK_STR && tstr_eq(p[1]->u.s, "key")))
                return rt_err(c, line, "You can only sort by either \"key\" or \"value\"");
        }
        size_t n = v->u.d->n;
        val **pairs = n ? ar_alloc(c->ar, n * sizeof *pairs) : NULL;
        val **keys = n ? ar_alloc(c->ar, n * sizeof *keys) : NULL;
        if (n && (!pairs || !keys)) return MEM_ERR(c, line);
        for (size_t i = 0; i < n; i++) {
            val *kv[2] = {v->u.d->keys[i], v->u.d->vals[i]};
            if (!(pairs[i] = mk_list(c, kv, 2, SEQ_TUPLE, line))) return NULL;
            keys[i] = kv[by_value ? 1 : 0];
        }
        size_t *order;
        if (!sort_order(c, keys, n, NULL, p[0] && v_truthy(p[0]), line, &order)) return NULL;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        if (n && !out) {
            free(order);
            return MEM_ERR(c, line);
        }
        bool rev = p[2] && v_truthy(p[2]);
        for (size_t i = 0; i < n; i++) out[i] = pairs[order[rev ? n - 1 - i : i]];
        free(order);
        return mk_list(c, out, n, SEQ_LIST, line);
    }
    case F_FIRST:
    case F_LAST: {
        if (!bind(c, a, name, line, NULL, 0, p)) return NULL;
        if (id == F_LAST && v->kind == VK_LIST && v->seq == SEQ_GEN)
            return rt_err(c, line, "'generator' object is not reversible");
        val **items;
        size_t n;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        if (n == 0) return v_undef(c, id == F_FIRST ? "No first item, sequence was empty." : "No last item, sequence was empty.");
        return items[id == F_FIRST ? 0 : n - 1];
    }
    case F_FLOAT: {
        static const char *const names[] = {"default"};
        if (!bind(c, a, "float", line, names, 1, p)) return NULL;
        double d;
        if (v->kind == VK_FLOAT) return v;
        if (is_int(v)) return v_float(c, (double)as_int(v));
        if (v->kind == VK_STR && parse_py_float(v->u.s, &d)) return v_float(c, d);
        return p[0] ? p[0] : v_float(c, 0.0);
    }
    case F_INT: {
        static const char *const names[] = {"default", "base"};
        if (!bind(c, a, "int", line, names, 2, p)) return NULL;
        int base = 10;
        if (p[1]) {
            if (!is_int(p[1])) return rt_err(c, line, "int: base must be an integer");
            base = (int)as_int(p[1]);
        }
        int64_t i;
        double d;
        if (is_int(v)) return v_int(c, as_int(v));
        if (v->kind == VK_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) return v_int(c, (int64_t)v->u.f);
        if (v->kind == VK_STR) {
            if (parse_py_int(v->u.s, base, &i)) return v_int(c, i);
            if (parse_py_float(v->u.s, &d) && isfinite(d) && fabs(d) < 9.2e18) return v_int(c, (int64_t)d);
        }
        return p[0] ? p[0] : v_int(c, 0);
    }
    case F_INDENT:
        if (!soft_str(c, v, &s, line)) return NULL;
        return filter_indent(c, s, a, line);
    case F_ITEMS: {
        if (!bind(c, a, "items", line, NULL, 0, p)) return NULL;
        if (v->kind == VK_UNDEF) return mk_list(c, NULL, 0, SEQ_GEN, line);
        if (v->kind != VK_DICT) return rt_err(c, line, "Can only get item pairs from a mapping.");
        size_t n = v->u.d->n;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        if (n && !out) return MEM_ERR(c, line);
        for (size_t i = 0; i < n; i++) {
            val *kv[2] = {v->u.d->keys[i], v->u.d->vals[i]};
            if (!(out[i] = mk_list(c, kv, 2, SEQ_TUPLE, line))) return NULL;
        }
        return mk_list(c, out, n, SEQ_GEN, line);
    }
    case F_JOIN: return filter_join(c, v, a, line);
    case F_LIST: {
        if (!bind(c, a, "list", line, NULL, 0, p)) return NULL;
        val **items;
        size_t n;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        return mk_list(c, items, n, SEQ_LIST, line);
    }
    case F_MAP: return filter_map(c, v, a, line);
    case F_MAX:
    case F_MIN: return filter_minmax(c, v, a, id == F_MAX, line);
    case F_REJECT: return filter_select(c, v, a, false, false, line);
    case F_REJECTATTR: return filter_select(c, v, a, true, false, line);
    case F_SELECT: return filter_select(c, v, a, false, true, line);
    case F_SELECTATTR: return filter_select(c, v, a, true, true, line);
    case F_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};
        if (!bind(c, a, "replace", line, names, 3, p) || !soft_str(c, v, &s, line)) return NULL;
        return do_replace(c, s, p[0], p[1], p[2], line);
    }
    case F_REVERSE: {
        if (!bind(c, a, "reverse", line, NULL, 0, p)) return NULL;
        if (v->kind == VK_STR) {
            sbuf b;
            rt_sbuf(c, &b);
            size_t i = v->u.s.len;
            while (i > 0) {
                uint32_t cp;
                size_t k = prev_cp(v->u.s.p, i, &cp);
                sb_put(&b, v->u.s.p + k, i - k, tstr_caller_at(v->u.s, k));
                i = k;
            }
            return str_val(c, &b, line);
        }
        /* reversed(x) is an iterator; a generator is not reversible, so jinja2 lists it */
        bool from_gen = v->kind == VK_LIST && v->seq == SEQ_GEN;
        val **items;
        size_t n;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        if (n && !out) return MEM_ERR(c, line);
        for (size_t i = 0; i < n; i++) out[i] = items[n - 1 - i];
        return mk_list(c, out, n, from_gen ? SEQ_LIST : SEQ_GEN, line);
    }
    case F_ROUND: return filter_round(c, v, a, line);
    case F_SAFE:
        if (!bind(c, a, "safe", line, NULL, 0, p)) return NULL;
        return v;
    case F_SORT: {
        static const char *const names[] = {"reverse", "case_sensitive", "attribute"};
        if (!bind(c, a, "sort", line, names, 3, p)) return NULL;
        val **items;
        size_t n, *order;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        if (!sort_order(c, items, n, p[2], p[1] && v_truthy(p[1]), line, &order)) return NULL;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        if (n && !out) {
            free(order);
            return MEM_ERR(c, line);
        }
        bool rev = p[0] && v_truthy(p[0]);
        /* Python's reverse=True keeps equal items in their original order */
        if (rev) {
            size_t o = 0, i = n;
            while (i > 0) {
                size_t j = i - 1;
                val *kj = attr_get(c, items[order[j]], p[2], line);
                while (j > 0) {
                    val *kp = attr_get(c, items[order[j - 1]], p[2], line);
                    if (!kj || !kp) {
                        free(order);
                        return NULL;
                    }
                    kj = fold_case(c, kj, p[1] && v_truthy(p[1]), line);
                    kp = fold_case(c, kp, p[1] && v_truthy(p[1]), line);
                    if (!kj || !kp || !v_eq(kj, kp)) break;
                    j--;
                }
                for (size_t k = j; k < i; k++) out[o++] = items[order[k]];
                i = j;
            }
        } else {
            for (size_t i = 0; i < n; i++) out[i] = items[order[i]];
        }
        free(order);
        return mk_list(c, out, n, SEQ_LIST, line);
    }
    case F_STRING:
        if (!bind(c, a, "string", line, NULL, 0, p) || !soft_str(c, v, &s, line)) return NULL;
        return v_str(c, s);
    case F_SUM: {
        static const char *const names[] = {"attribute", "start"};
        if (!bind(c, a, "sum", line, names, 2, p)) return NULL;
        val **items;
        size_t n;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        val *acc = p[1] ? p[1] : v_int(c, 0);
        for (size_t i = 0; acc && i < n; i++) {
            val *x = attr_get(c, items[i], p[0], line);
            if (!x) return NULL;
            if (!is_num(acc) || !is_num(x))
                return rt_err(c, line, "unsupported operand type(s) for +: '%s' and '%s'", v_type_name(acc), v_type_name(x));
            if (acc->kind == VK_FLOAT || x->kind == VK_FLOAT) acc = v_float(c, as_double(acc) + as_double(x));
            else {
                int64_t r;
                if (__builtin_add_overflow(as_int(acc), as_int(x), &r)) return rt_err(c, line, "integer overflow");
                acc = v_int(c, r);
            }
        }
        return acc;
    }
    case F_TOJSON: return filter_tojson(c, v, a, line);
    case F_TRIM: {
        static const char *const names[] = {"chars"};
        if (!bind(c, a, "trim", line, names, 1, p) || !soft_str(c, v, &s, line)) return NULL;
        return do_strip(c, s, p[0], true, true, line);
    }
    case F_UNIQUE: {
        static const char *const names[] = {"case_sensitive", "attribute"};
        if (!bind(c, a, "unique", line, names, 2, p)) return NULL;
        val **items;
        size_t n;
        if (!iter_list(c, v, line, &items, &n)) return NULL;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        val **seen = n ? ar_alloc(c->ar, n * sizeof *seen) : NULL;
        if (n && (!out || !seen)) return MEM_ERR(c, line);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            val *key = attr_get(c, items[i], p[1], line);
            if (key) key = fold_case(c, key, p[0] && v_truthy(p[0]), line);
            if (!key || !rt_step(c, line, k)) return NULL;
            bool dup = false;
            for (size_t j = 0; j < k && !dup; j++) dup = v_eq(seen[j], key);
            if (!dup) {
                seen[k] = key;
                out[k++] = items[i];
            }
        }
        return mk_list(c, out, k, SEQ_GEN, line);
    }
    case F_WORDCOUNT: {
        if (!bind(c, a, "wordcount", line, NULL, 0, p) || !soft_str(c, v, &s, line)) return NULL;
        int64_t words = 0;
        bool in_word = false;
        const char *q = s.p, *end = s.p + s.len;
        while (q < end) {
            int n;
            uint32_t cp = utf8_decode(q, end, &n);
            utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
            bool w = cp == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
                     (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
            if (w && !in_word) words++;
            in_word = w;
            q += n;
        }
        return v_int(c, words);
    }
    }
    return rt_err(c, line, "filter '%s' is not supported by this interpreter", name);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static int run_test(rctx *c, int id, const char *name, val *v, vargs *a, int line) {
    val *p[1];
    static const char *const one[] = {"other"};
    bool needs_arg = id == TS_DIVISIBLEBY || id == TS_EQ || id == TS_NE || id == TS_GE || id == TS_GT ||
                     id == TS_LE || id == TS_LT || id == TS_IN || id == TS_SAMEAS;
    if (!bind(c, a, name, line, one, needs_arg ? 1 : 0, p)) return -1;
    if (needs_arg && !p[0]) {
        rt_err(c, line, "test '%s' needs an argument", name);
        return -1;
    }
    switch (id) {
    case TS_BOOLEAN: return v->kind == VK_BOOL;
    case TS_CALLABLE: return v->kind == VK_FUNC || v->kind == VK_METHOD || v->kind == VK_MACRO;
    case TS_DEFINED: return v->kind != VK_UNDEF;
    case TS_UNDEFINED: return v->kind == VK_UNDEF;
    case TS_NONE: return v->kind == VK_NONE;
    case TS_TRUE: return v->kind == VK_BOOL && v->u.b;
    case TS_FALSE: return v->kind == VK_BOOL && !v->u.b;
    case TS_INTEGER: return v->kind == VK_INT;
    case TS_FLOAT: return v->kind == VK_FLOAT;
    case TS_NUMBER: return is_num(v);
    case TS_STRING: return v->kind == VK_STR;
    case TS_MAPPING: return v->kind == VK_DICT;
    case TS_ITERABLE:
        return v->kind == VK_STR || v->kind == VK_LIST || v->kind == VK_DICT || v->kind == VK_UNDEF || v->kind == VK_LOOP;
    case TS_SEQUENCE:
        return v->kind == VK_STR || v->kind == VK_DICT || v->kind == VK_UNDEF ||
               (v->kind == VK_LIST && (v->seq <= SEQ_TUPLE || v->seq == SEQ_RANGE));
    case TS_LOWER:
    case TS_UPPER: {
        tstr s;
        if (!soft_str(c, v, &s, line)) return -1;
        bool any = false;
        const char *q = s.p, *end = s.p + s.len;
        while (q < end) {
            int n;
            uint32_t cp = utf8_decode(q, end, &n);
            utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
            if (k == UTF8PROC_CATEGORY_LL) {
                if (id == TS_UPPER) return 0;
                any = true;
            } else if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT) {
                if (id == TS_LOWER) return 0;
                any = true;
            }
            q += n;
        }
        return any;
    }
    case TS_ODD:
    case TS_EVEN:
    case TS_DIVISIBLEBY: {
        if (!is_num(v) || (id == TS_DIVISIBLEBY && !is_num(p[0]))) {
            rt_err(c, line, "test '%s' needs numbers", name);
            return -1;
        }
        if (id != TS_DIVISIBLEBY) {
            if (v->kind == VK_FLOAT) return fmod(v->u.f, 2.0) != 0.0 ? id == TS_ODD : id == TS_EVEN;
            return (as_int(v) % 2 != 0) == (id == TS_ODD);
        }
        if (v->kind == VK_FLOAT || p[0]->kind == VK_FLOAT) {
            double d = as_double(p[0]);
            if (d == 0.0) return rt_err(c, line, "float modulo"), -1;
            return fmod(as_double(v), d) == 0.0;
        }
        if (as_int(p[0]) == 0) return rt_err(c, line, "integer division or modulo by zero"), -1;
        if (as_int(p[0]) == -1) return 1;
        return as_int(v) % as_int(p[0]) == 0;
    }
    case TS_EQ: return v_eq(v, p[0]);
    case TS_NE: return !v_eq(v, p[0]);
    case TS_GE:
    case TS_GT:
    case TS_LE:
    case TS_LT: {
        int r = v_cmp(c, v, p[0], line);
        if (r == -2) return -1;
        if (r == 3) return 0;
        return id == TS_GE ? r >= 0 : id == TS_GT ? r > 0 : id == TS_LE ? r <= 0 : r < 0;
    }
    case TS_IN: {
        val **items;
        size_t n;
        if (p[0]->kind == VK_STR) {
            if (v->kind != VK_STR) return rt_err(c, line, "'in <string>' requires string as left operand"), -1;
            return v->u.s.len == 0 || memmem(p[0]->u.s.p, p[0]->u.s.len, v->u.s.p, v->u.s.len) != NULL;
        }
        if (p[0]->kind == VK_DICT) return vd_get(p[0]->u.d, v) != NULL;
        if (!v_iter(c, p[0], &items, &n, line)) return -1;
        for (size_t i = 0; i < n; i++)
            if (v_eq(items[i], v)) return 1;
        return 0;
    }
    case TS_SAMEAS: {
        const val *o = p[0];
        if (v->kind != o->kind) return 0;
        if (v->kind == VK_NONE || v->kind == VK_UNDEF) return v->kind == VK_NONE ? 1 : v == o;
        if (v->kind == VK_BOOL) return v->u.b == o->u.b;
        if (v->kind == VK_INT) return v->u.i == o->u.i && v->u.i >= -5 && v->u.i <= 256;
        /* equal template literals are one (interned) Python object */
        if (v->kind == VK_STR && !v->u.s.nsp && !o->u.s.nsp && v_eq(v, o)) return 1;
        return v == o;
    }
    }
    rt_err(c, line, "test '%s' is not supported by this interpreter", name);
    return -1;
}

int tpl_apply_test(rctx *c, int id, const char *name, val *v, vargs *a, int line) {
    return run_test(c, id, name, v, a, line);
}

/* ---- methods --------------------------------------------------------------------------------- */

static const char *method_name(int id) {
    const mname *tables[] = {STR_METHODS, DICT_METHODS, LIST_METHODS, LOOP_METHODS};
    for (size_t t = 0; t < 4; t++)
        for (size_t i = 0; tables[t][i].name; i++)
            if (tables[t][i].id == id) return tables[t][i].name;
    return "?";
}

/* str.find / rfind / index / rindex / count with Python's code-point positions. */
static val *str_search(rctx *c, tstr s, int id, vargs *a, int line) {
    static const char *const names[] = {"sub", "start", "end"};
    val *p[3];
    if (!bind(c, a, method_name(id), line, names, 3, p)) return NULL;
    if (!need_str(c, p[0], method_name(id), line)) return NULL;
    if ((p[1] && p[1]->kind != VK_NONE) || (p[2] && p[2]->kind != VK_NONE))
        return rt_err(c, line, "str.%s: start/end arguments are not supported", method_name(id));
    tstr sub = p[0]->u.s;
    if (!rt_step(c, line, s.len / 64)) return NULL;
    if (id == M_COUNT) {
        if (sub.len == 0) return v_int(c, (int64_t)tstr_cplen(s) + 1);
        int64_t n = 0;
        size_t i = 0;
        const char *hit;
        while (i <= s.len && (hit = memmem(s.p + i, s.len - i, sub.p, sub.len)) != NULL) {
            n++;
            i = (size_t)(hit - s.p) + sub.len;
        }
        return v_int(c, n);
    }
    long pos = -1;
    if (id == M_FIND || id == M_INDEX) {
        const char *hit = sub.len == 0 ? s.p : memmem(s.p, s.len, sub.p, sub.len);
        if (hit) pos = (long)(hit - s.p);
    } else {
        if (sub.len <= s.len)
            for (size_t k = s.len - sub.len + 1; k-- > 0;)
                if (memcmp(s.p + k, sub.p, sub.len) == 0) {
                    pos = (long)k;
                    break;
                }
    }
    if (pos < 0) {
        if (id == M_INDEX || id == M_RINDEX) return rt_err(c, line, "substring not found");
        return v_int(c, -1);
    }
    return v_int(c, (int64_t)cp_count(s.p, (size_t)pos));
}

static int str_class_test(tstr s, int id) {
    if (s.len == 0) return 0;
    bool any_cased = false;
    const char *q = s.p, *end = s.p + s.len;
    while (q < end) {
        int n;
        uint32_t cp = utf8_decode(q, end, &n);
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
        bool alpha = k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
        bool digit = k == UTF8PROC_CATEGORY_ND;
        bool numeric = k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
        switch (id) {
        case M_ISDIGIT: if (!digit) return 0; break;
        case M_ISALPHA: if (!alpha) return 0; break;
        case M_ISALNUM: if (!alpha && !numeric) return 0; break;
        case M_ISSPACE: if (!py_isspace(cp)) return 0; break;
        case M_ISLOWER:
            if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT) return 0;
            if (k == UTF8PROC_CATEGORY_LL) any_cased = true;
            break;
        case M_ISUPPER:
            if (k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 0;
            if (k == UTF8PROC_CATEGORY_LU) any_cased = true;
            break;
        }
        q += n;
    }
    if (id == M_ISLOWER || id == M_ISUPPER) return any_cased;
    return 1;
}

/* startswith / endswith with a string or a tuple of strings. */
static val *str_affix(rctx *c, tstr s, vargs *a, bool ends, int line) {
    static const char *const names[] = {"prefix", "start", "end"};
    val *p[3];
    if (!bind(c, a, ends ? "endswith" : "startswith", line, names, 3, p)) return NULL;
    if (!p[0]) return rt_err(c, line, "%s takes at least 1 argument", ends ? "endswith" : "startswith");
    if ((p[1] && p[1]->kind != VK_NONE) || (p[2] && p[2]->kind != VK_NONE))
        return rt_err(c, line, "%s: start/end arguments are not supported", ends ? "endswith" : "startswith");
    val *const *cands = &p[0];
    size_t n = 1;
    if (p[0]->kind == VK_LIST && p[0]->seq == SEQ_TUPLE) {
        cands = p[0]->u.l.v;
        n = p[0]->u.l.n;
    }
    for (size_t i = 0; i < n; i++) {
        const val *x = cands[i];
        if (x->kind != VK_STR)
            return rt_err(c, line, "%s first arg must be str or a tuple of str, not %s",
                          ends ? "endswith" : "startswith", v_type_name(x));
        size_t l = x->u.s.len;
        if (l <= s.len && memcmp(ends ? s.p + s.len - l : s.p, x->u.s.p, l) == 0) return v_bool(true);
    }
    return v_bool(false);
}

static val *str_method(rctx *c, tstr s, int id, vargs *a, int line) {
    val *p[2];
    static const char *const chars[] = {"chars"};
    static const char *const split_names[] = {"sep", "maxsplit"};
    switch (id) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        if (!bind(c, a, method_name(id), line, chars, 1, p)) return NULL;
        return do_strip(c, s, p[0], id != M_RSTRIP, id != M_LSTRIP, line);
    case M_SPLIT:
    case M_RSPLIT:
        if (!bind(c, a, method_name(id), line, split_names, 2, p)) return NULL;
        return do_split(c, s, p[0], p[1], id == M_RSPLIT, line);
    case M_SPLITLINES: {
        static const char *const names[] = {"keepends"};
        if (!bind(c, a, "splitlines", line, names, 1, p)) return NULL;
        return do_splitlines(c, s, p[0] && v_truthy(p[0]), line);
    }
    case M_STARTSWITH: return str_affix(c, s, a, false, line);
    case M_ENDSWITH: return str_affix(c, s, a, true, line);
    case M_UPPER:
    case M_LOWER:
    case M_TITLE:
    case M_CAPITALIZE:
    case M_SWAPCASE:
        if (!bind(c, a, method_name(id), line, NULL, 0, p)) return NULL;
        return case_map(c, s,
                        id == M_UPPER ? CASE_UPPER : id == M_LOWER ? CASE_LOWER : id == M_TITLE ? CASE_TITLE_WORDS
                        : id == M_CAPITALIZE ? CASE_CAPITALIZE : CASE_SWAP,
                        line);
    case M_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};
        val *q[3];
        if (!bind(c, a, "replace", line, names, 3, q)) return NULL;
        return do_replace(c, s, q[0], q[1], q[2], line);
    }
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
    case M_COUNT: return str_search(c, s, id, a, line);
    case M_JOIN: {
        static const char *const names[] = {"iterable"};
        if (!bind(c, a, "join", line, names, 1, p)) return NULL;
        if (!p[0]) return rt_err(c, line, "join() takes exactly one argument");
        val **items;
        size_t n;
        if (!v_iter(c, p[0], &items, &n, line)) return NULL;
        sbuf b;
        rt_sbuf(c, &b);
        for (size_t i = 0; i < n; i++) {
            if (items[i]->kind != VK_STR) {
                sb_free(&b);
                return rt_err(c, line, "sequence item %zu: expected str instance, %s found", i, v_type_name(items[i]));
            }
            if (i) sb_put_tstr(&b, s);
            sb_put_tstr(&b, items[i]->u.s);
        }
        return str_val(c, &b, line);
    }
    case M_ISDIGIT:
    case M_ISALPHA:
    case M_ISALNUM:
    case M_ISSPACE:
    case M_ISLOWER:
    case M_ISUPPER:
        if (!bind(c, a, method_name(id), line, NULL, 0, p)) return NULL;
        return v_bool(str_class_test(s, id) == 1);
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        static const char *const names[] = {"affix"};
        if (!bind(c, a, method_name(id), line, names, 1, p)) return NULL;
        if (!need_str(c, p[0], method_name(id), line)) return NULL;
        size_t l = p[0]->u.s.len;
        if (l > s.len) return substr(c, s, 0, s.len, line);
        if (id == M_REMOVEPREFIX)
            return memcmp(s.p, p[0]->u.s.p, l) == 0 ? substr(c, s, l, s.len, line) : substr(c, s, 0, s.len, line);
        return memcmp(s.p + s.len - l, p[0]->u.s.p, l) == 0 ? substr(c, s, 0, s.len - l, line)
                                                             : substr(c, s, 0, s.len, line);
    }
    }
    return rt_err(c, line, "string method '%s' is not supported", method_name(id));
}

val *tpl_call_method(rctx *c, val *m, vargs *a, int line) {
    val *self = m->u.m.self;
    int id = m->u.m.id;
    val *p[2];
    if (id == M_UNSAFE)
        return rt_err(c, line, "access to a mutating method of a '%s' object is unsafe (the sandbox is immutable)",
                      v_type_name(self));
    if (id == M_UNSUPPORTED) return rt_err(c, line, "this %s method is not supported", v_type_name(self));
    if (self->kind == VK_STR) return str_method(c, self->u.s, id, a, line);
    switch (id) {
    case M_DGET: {
        static const char *const names[] = {"key", "default"};
        if (!bind(c, a, "get", line, names, 2, p)) return NULL;
        if (!p[0]) return rt_err(c, line, "get expected at least 1 argument, got 0");
        if (!v_hashable(p[0]))
            return rt_err(c, line, "unhashable type: '%s'", v_type_name(p[0]));
        val *v = vd_get(self->u.d, p[0]);
        return v ? v : p[1] ? p[1] : v_none();
    }
    case M_DITEMS:
    case M_DKEYS:
    case M_DVALUES: {
        if (!bind(c, a, method_name(id), line, NULL, 0, p)) return NULL;
        size_t n = self->u.d->n;
        val **out = n ? ar_alloc(c->ar, n * sizeof *out) : NULL;
        if (n && !out) return MEM_ERR(c, line);
        for (size_t i = 0; i < n; i++) {
            if (id == M_DKEYS) out[i] = self->u.d->keys[i];
            else if (id == M_DVALUES) out[i] = self->u.d->vals[i];
            else {
                val *kv[2] = {self->u.d->keys[i], self->u.d->vals[i]};
                if (!(out[i] = mk_list(c, kv, 2, SEQ_TUPLE, line))) return NULL;
            }
        }
        return mk_list(c, out, n, id == M_DKEYS ? SEQ_KEYS : id == M_DVALUES ? SEQ_VALUES : SEQ_ITEMS, line);
    }
    case M_LCOUNT:
    case M_LINDEX: {
        static const char *const names[] = {"value"};
        if (!bind(c, a, method_name(id), line, names, 1, p)) return NULL;
        if (!p[0]) return rt_err(c, line, "%s() takes exactly one argument", method_name(id));
        int64_t n = 0;
        for (size_t i = 0; i < self->u.l.n; i++)
            if (v_eq(self->u.l.v[i], p[0])) {
                if (id == M_LINDEX) return v_int(c, (int64_t)i);
                n++;
            }
        if (id == M_LINDEX) return rt_err(c, line, "value is not in list");
        return v_int(c, n);
    }
    case M_CYCLE:
        if (a->nkw) return rt_err(c, line, "cycle() takes no keyword arguments");
        if (a->npos == 0) return rt_err(c, line, "no items for cycling given");
        return a->pos[self->u.loop->i % a->npos];
    }
    return rt_err(c, line, "method not supported");
}

/* ---- globals --------------------------------------------------------------------------------- */

static val *g_range(rctx *c, vargs *a, int line) {
    if (a->nkw) return rt_err(c, line, "range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3) return rt_err(c, line, "range expected 1 to 3 arguments, got %zu", a->npos);
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < a->npos; i++) {
        if (!is_int(a->pos[i]))
            return rt_err(c, line, "'%s' object cannot be interpreted as an integer", v_type_name(a->pos[i]));
        v[i] = as_int(a->pos[i]);
    }
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) stop = v[0];
    else {
        start = v[0];
        stop = v[1];
        if (a->npos == 3) step = v[2];
    }
    if (step == 0) return rt_err(c, line, "range() arg 3 must not be zero");
    uint64_t n = 0;
    if (step > 0 && stop > start) n = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
    if (step < 0 && start > stop) n = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)0 - (uint64_t)step) + 1;
    if (n > 100000)
        return rt_err(c, line, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    if (!rt_step(c, line, n)) return NULL;
    val **items = n ? ar_alloc(c->ar, (size_t)n * sizeof *items) : NULL;
    if (n && !items) return MEM_ERR(c, line);
    for (uint64_t i = 0; i < n; i++)
        if (!(items[i] = v_int(c, (int64_t)((uint64_t)start + i * (uint64_t)step)))) return NULL;
    return mk_list(c, items, (size_t)n, SEQ_RANGE, line);
}

/* namespace(...) and dict(...): an optional mapping, then keyword arguments. */
static val *g_mapping(rctx *c, vargs *a, bool ns, int line) {
    if (a->npos > 1) return rt_err(c, line, "%s expected at most 1 positional argument", ns ? "namespace" : "dict");
    vdict *d = vd_new(c);
    if (!d) return NULL;
    if (a->npos == 1) {
        val *src = a->pos[0];
        if (src->kind == VK_DICT || src->kind == VK_NS) {
            for (size_t i = 0; i < src->u.d->n; i++)
                if (!vd_set(c, d, src->u.d->keys[i], src->u.d->vals[i])) return NULL;
        } else if (src->kind == VK_LIST) {
            for (size_t i = 0; i < src->u.l.n; i++) {
                val *pr = src->u.l.v[i];
                if (pr->kind != VK_LIST || pr->u.l.n != 2)
                    return rt_err(c, line, "dictionary update sequence element #%zu has the wrong length", i);
                if (!vd_set(c, d, pr->u.l.v[0], pr->u.l.v[1])) return NULL;
            }
        } else if (src->kind != VK_UNDEF) {
            return rt_err(c, line, "'%s' object is not iterable", v_type_name(src));
        }
    }
    for (size_t k = 0; k < a->nkw; k++) {
        val *key = v_lit(c, a->kwn[k]);
        if (!key || !vd_set(c, d, key, a->kwv[k])) return NULL;
    }
    val *v = v_new(c, ns ? VK_NS : VK_DICT);
    if (v) v->u.d = d;
    return v;
}

static val *g_strftime(rctx *c, vargs *a, int line) {
    static const char *const names[] = {"format"};
    val *p[1];
    if (!bind(c, a, "strftime_now", line, names, 1, p)) return NULL;
    if (!need_str(c, p[0], "strftime_now", line)) return NULL;
    char *fmt = ar_strndup(c->ar, p[0]->u.s.p, p[0]->u.s.len);
    if (!fmt) return MEM_ERR(c, line);
    if (strlen(fmt) != p[0]->u.s.len) return rt_err(c, line, "strftime_now: embedded null character");
    struct tm tm;
    time_t now = c->now;
    if (!localtime_r(&now, &tm)) return rt_err(c, line, "strftime_now: cannot read the clock");
    if (fmt[0] == '\0') return v_lit(c, "");
    for (size_t cap = 256; cap <= 65536; cap *= 4) {
        char *buf = malloc(cap);
        if (!buf) return MEM_ERR(c, line);
        size_t n = strftime(buf, cap, fmt, &tm);
        if (n > 0) {
            val *r = v_text(c, buf, n, false);
            free(buf);
            return r;
        }
        free(buf);
    }
    return v_lit(c, "");
}

val *tpl_call_func(rctx *c, int fn, vargs *a, int line) {
    switch (fn) {
    case G_RANGE: return g_range(c, a, line);
    case G_NAMESPACE: return g_mapping(c, a, true, line);
    case G_DICT: return g_mapping(c, a, false, line);
    case G_RAISE: {
        tstr s = {"", 0, NULL, 0};
        if (a->npos >= 1 && !v_to_str(c, a->pos[0], &s, line)) return NULL;
        if (!c->failed) {
            c->failed = true;
            ds_errf(c->err, "%.*s", (int)(s.len > 1000 ? 1000 : s.len), s.p);
        }
        return NULL;
    }
    case G_STRFTIME: return g_strftime(c, a, line);
    default: return rt_err(c, line, "the global function %s is not supported by this interpreter",
                           fn == G_LIPSUM ? "lipsum" : fn == G_CYCLER ? "cycler" : "joiner");
    }
}
