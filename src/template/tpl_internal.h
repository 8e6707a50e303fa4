/* Shared internals of template/: the arena, strings with provenance, values, tokens and the
 * syntax tree. Only files under src/template/ include this. */
#ifndef DS_TEMPLATE_TPL_INTERNAL_H
#define DS_TEMPLATE_TPL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "template/template.h"

/* ---- arena: every value and node lives in one, freed all at once ----------------------------- */

typedef struct ar_chunk ar_chunk;
typedef struct tpl_arena {
    ar_chunk *head;
    size_t used;  /* bytes handed out, all chunks */
    size_t limit; /* 0 = unlimited; above it allocations fail */
} tpl_arena;

/* Zeroed, 16-byte aligned memory; NULL when the limit would be passed or malloc fails. */
void *ar_alloc(tpl_arena *a, size_t n);
/* A new array of `cap` elements holding the first `n` of `old` (arrays never shrink or free). */
void *ar_realloc(tpl_arena *a, const void *old, size_t n, size_t cap, size_t elem);
/* Copy of n bytes plus a NUL. */
char *ar_strndup(tpl_arena *a, const char *s, size_t n);
void ar_free(tpl_arena *a);

/* ---- strings: bytes plus the byte ranges that are caller content ----------------------------- */

typedef struct tpl_span {
    size_t off, len; /* a maximal run of caller-content bytes */
} tpl_span;

typedef struct tstr {
    const char *p;      /* len bytes (NUL after them when built here) */
    size_t len;
    const tpl_span *sp; /* sorted, disjoint, non-adjacent runs of caller content */
    size_t nsp;
} tstr;

/* A growable string with provenance (malloc'd; finished into the arena). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    tpl_span *sp;
    size_t nsp, spcap;
    tpl_arena *acct; /* when set, its bytes count against this arena's used/limit */
    bool oom;        /* an append failed (out of memory or over the limit) */
} sbuf;

void sb_put(sbuf *b, const char *s, size_t n, bool caller);
void sb_puts(sbuf *b, const char *s); /* template text */
void sb_put_tstr(sbuf *b, tstr s);
void sb_putc(sbuf *b, char c);
/* Makes room for n more bytes; false (and oom set) when it cannot. */
bool sb_reserve(sbuf *b, size_t n);
void sb_free(sbuf *b);
/* Marks bytes [off, off+n) — the last ones written — as caller content. */
void sb_mark(sbuf *b, size_t off, size_t n);
/* Moves the contents into the arena as a tstr; frees the buffer. Returns false on OOM. */
bool sb_finish(sbuf *b, tpl_arena *a, tstr *out);

/* Substring [a, b) of s (byte offsets), keeping provenance (clipped spans go in the arena);
 * false when the arena is full. */
bool tstr_sub(tpl_arena *ar, tstr s, size_t a, size_t b, tstr *out);
bool tstr_has_caller(tstr s);
/* Whether byte `off` of s is caller content. */
bool tstr_caller_at(tstr s, size_t off);
bool tstr_eq(tstr s, const char *lit);

/* ---- values ---------------------------------------------------------------------------------- */

typedef enum vkind {
    VK_UNDEF,
    VK_NONE,
    VK_BOOL,
    VK_INT,
    VK_FLOAT,
    VK_STR,
    VK_LIST, /* every sequence: list, tuple, generator, range, dict view (val.seq) */
    VK_DICT,
    VK_NS,   /* namespace(): a mutable dict with attribute access */
    VK_LOOP, /* the `loop` object of a for */
    VK_MACRO,
    VK_FUNC,   /* a global function: range, namespace, dict, raise_exception, strftime_now */
    VK_METHOD, /* a bound method of a str / dict / list / loop */
} vkind;

/* Python types behind VK_LIST. Generators (what select, map, items, unique and reverse return
 * in jinja2) are always true, have no len(), cannot be indexed or printed, and run once; dict
 * views and ranges have a length but print differently from lists. */
enum { SEQ_LIST, SEQ_TUPLE, SEQ_GEN, SEQ_RANGE, SEQ_ITEMS, SEQ_KEYS, SEQ_VALUES };

typedef struct val val;
typedef struct vdict vdict;
typedef struct loopobj loopobj;
typedef struct stmt stmt;
typedef struct macro macro;

struct vdict {
    val **keys;
    val **vals;
    size_t n, cap;
    int32_t *hash; /* open addressing over string keys (index+1, 0 = empty); NULL when small */
    size_t hcap;
};

struct val {
    uint8_t kind;   /* vkind */
    uint8_t caller; /* a non-string value taken from caller content */
    uint8_t seq;    /* VK_LIST: which Python sequence type (SEQ_*) */
    uint8_t used;   /* SEQ_GEN: iterated already (a generator runs once) */
    union {
        bool b;
        int64_t i;
        double f;
        tstr s;
        struct {
            val **v;
            size_t n;
        } l;
        vdict *d; /* VK_DICT, VK_NS */
        loopobj *loop;
        struct {
            const macro *m;
            struct scope *sc; /* the scope it was defined in */
        } mac;
        int fn;
        struct {
            val *self;
            int id;
        } m;
        const char *hint; /* VK_UNDEF: what to say when it is used */
    } u;
};

struct loopobj {
    val **items; /* the (filtered) items iterated */
    size_t n, i;
    int depth;
};

/* ---- tokens ---------------------------------------------------------------------------------- */

typedef enum ttype {
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
    T_EOF,
} ttype;

typedef enum opkind {
    OP_ADD, OP_SUB, OP_DIV, OP_FLOORDIV, OP_MUL, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_ASSIGN, OP_DOT, OP_COLON,
    OP_PIPE, OP_COMMA, OP_SEMICOLON,
    OP__COUNT
} opkind;

typedef struct token {
    ttype t;
    int op;         /* T_OP: opkind */
    const char *s;  /* T_DATA / T_NAME / T_STRING bytes (arena) */
    size_t len;
    int64_t i;      /* T_INT */
    double f;       /* T_FLOAT */
    int line, col;  /* 1-based; col counts code points */
} token;

/* Splits normalized source into tokens (arena-owned array ending in T_EOF). */
int tpl_lex(tpl_arena *a, const char *src, size_t n, token **out, size_t *n_out, ds_err *err);

/* Python's str.isspace for one code point. */
bool py_isspace(uint32_t cp);
/* Decodes one UTF-8 code point at p (< end); *n = bytes used (1 for an invalid byte, which
 * then decodes as itself). */
uint32_t utf8_decode(const char *p, const char *end, int *n);
/* Encodes cp; returns the number of bytes (1-4) written to out. */
int utf8_encode(uint32_t cp, char *out);

/* ---- syntax tree ----------------------------------------------------------------------------- */

typedef enum ekind {
    E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
    E_NEG, E_POS, E_NOT, E_BIN, E_AND, E_OR, E_CMP, E_COND, E_CONCAT,
    E_LIST, E_TUPLE, E_DICT,
} ekind;

typedef struct expr expr;

typedef struct args {
    expr **pos;
    size_t npos;
    const char **kwn; /* keyword names */
    expr **kwv;
    size_t nkw;
} args;

enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

struct expr {
    ekind k;
    int line;
    union {
        val *c;                                   /* E_CONST */
        const char *name;                         /* E_NAME */
        struct { expr *obj; const char *name; } attr;
        struct { expr *obj, *idx; } item;
        struct { expr *obj, *start, *stop, *step; } slice;
        struct { expr *fn; args a; } call;
        struct { expr *obj; int id; const char *name; args a; } filter; /* E_FILTER, E_TEST */
        expr *un;                                 /* E_NEG, E_POS, E_NOT */
        struct { int op; expr *l, *r; } bin;      /* E_BIN (opkind), E_AND, E_OR */
        struct { expr *first; int *ops; expr **rest; size_t n; } cmp;
        struct { expr *test, *then, *els; } cond;
        struct { expr **v; size_t n; } list;      /* E_LIST, E_TUPLE, E_CONCAT */
        struct { expr **keys, **vals; size_t n; } dict;
    } u;
};

typedef struct target {
    int kind; /* TG_NAME, TG_TUPLE, TG_NSATTR */
    const char *name;
    const char *attr;
    struct target **items;
    size_t n;
} target;
enum { TG_NAME, TG_TUPLE, TG_NSATTR };

typedef struct body {
    stmt **v;
    size_t n;
} body;

typedef enum skind {
    S_TEXT, S_PRINT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_BREAK, S_CONTINUE,
    S_WITH, S_FILTERBLOCK, S_BLOCK,
} skind;

/* A filter applied by a block (set-block / filter-block): name, id, arguments. */
typedef struct filtercall {
    int id;
    const char *name;
    args a;
    int line;
} filtercall;

struct macro {
    const char *name;
    const char **params;
    expr **defaults; /* NULL entries: required */
    size_t nparams;
    body b;
};

struct stmt {
    skind k;
    int line;
    union {
        struct { const char *p; size_t len; } text;
        expr *print;
        struct { expr **conds; body *bodies; size_t n; body els; bool has_else; } ifs;
        struct { target *tg; expr *iter, *filter; body b, els; } loop;
        struct { target *tg; expr *value; } set;
        struct { target *tg; filtercall *filters; size_t nf; body b; } setblock;
        macro mac;
        struct { target **tgs; expr **vals; size_t n; body b; } with;
        struct { filtercall *filters; size_t nf; body b; } filt;
        body block;
    } u;
};

struct tpl_template {
    tpl_arena arena;
    body root;
};

int tpl_parse(tpl_arena *a, const token *toks, size_t n, body *out, ds_err *err);

/* ---- builtins (filters.c) -------------------------------------------------------------------- */

/* Filter and test ids by name: >= 0 when implemented, -1 unknown, -2 a jinja2 builtin this
 * does not implement. */
int tpl_filter_id(const char *name);
int tpl_test_id(const char *name);

typedef struct rctx rctx;

/* Evaluated call arguments. */
typedef struct vargs {
    val **pos;
    size_t npos;
    const char **kwn;
    val **kwv;
    size_t nkw;
} vargs;

val *tpl_apply_filter(rctx *c, int id, const char *name, val *v, vargs *a, int line);
/* Returns 1 / 0, or -1 on error. */
int tpl_apply_test(rctx *c, int id, const char *name, val *v, vargs *a, int line);
/* Attribute lookup for methods of str / dict / list / loop: a VK_METHOD value, or NULL when the
 * type has no such method (NULL with c->failed set only when memory runs out). Python methods
 * without an implementation, and mutating ones the sandbox refuses, are found too: calling
 * them is the error. */
val *tpl_method_lookup(rctx *c, val *self, const char *name, int line);
val *tpl_call_method(rctx *c, val *m, vargs *a, int line);
val *tpl_call_func(rctx *c, int fn, vargs *a, int line);
/* Global functions by name (range, namespace, dict, raise_exception, strftime_now); -1 if
 * none. */
int tpl_global_id(const char *name);

/* ---- evaluator services used by filters.c (eval.c) ------------------------------------------ */

struct rctx {
    tpl_arena *ar;
    ds_err *err;
    bool failed;
    uint64_t steps, max_steps;
    int line; /* line of the statement or expression being evaluated */
    int depth, max_depth; /* macro calls + captured blocks */
    int rdepth;           /* C recursion through eval / exec */
    size_t max_memory;
    time_t now;
    struct scope *sc;
    vdict *globals;
    sbuf *out; /* current output sink */
    int brk;   /* pending loop control: 0, BRK_BREAK, BRK_CONTINUE */
};
enum { BRK_BREAK = 1, BRK_CONTINUE = 2 };

/* Records an error ("line N: ...") unless one is recorded already; returns NULL. */
val *rt_err(rctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Counts one step; false (with an error) when the budget is spent. */
bool rt_step(rctx *c, int line, uint64_t n);

val *v_new(rctx *c, vkind k);
val *v_undef(rctx *c, const char *hint);
val *v_none(void);
val *v_bool(bool b);
val *v_int(rctx *c, int64_t i);
val *v_float(rctx *c, double f);
val *v_str(rctx *c, tstr s);
val *v_lit(rctx *c, const char *s); /* template text (not copied) */
/* A copy of n bytes, wholly caller content when `caller`. */
val *v_text(rctx *c, const char *p, size_t n, bool caller);
val *v_list(rctx *c, val **items, size_t n, int seq); /* copies items */
val *v_seq(rctx *c, val **items, size_t n, int seq);  /* takes an arena array as is */
/* Python hashability (dict keys, `in` on a dict). */
bool v_hashable(const val *v);
vdict *vd_new(rctx *c);
bool vd_set(rctx *c, vdict *d, val *k, val *v);
val *vd_get(const vdict *d, const val *k);
val *vd_get_str(const vdict *d, const char *k, size_t klen);
val *v_dict(rctx *c, vdict *d);

bool v_truthy(const val *v);
bool v_eq(const val *a, const val *b);
/* Python ordering: -1/0/1; sets an error for unorderable types and returns -2. */
int v_cmp(rctx *c, const val *a, const val *b, int line);
/* str(v) with provenance; NULL on error. */
bool v_to_str(rctx *c, const val *v, tstr *out, int line);
/* repr(v) with provenance (whole result is caller content if any part is). */
bool v_repr(rctx *c, const val *v, sbuf *b, int line);
/* Python float repr ("1.0", "1e+20", "inf"). */
void fmt_float(double f, char *buf, size_t cap);
const char *v_type_name(const val *v);
/* Items of an iterable (list, tuple, dict keys, string characters, undefined = empty). */
bool v_iter(rctx *c, val *v, val ***items, size_t *n, int line);
/* Attribute / item lookup with jinja2's rules. */
val *v_getattr(rctx *c, val *obj, const char *name, int line);
val *v_getitem(rctx *c, val *obj, val *key, int line);
/* Code-point length of a string. */
size_t tstr_cplen(tstr s);
/* Whether any caller content or caller scalar is inside (for tojson / repr marking). */
bool v_has_caller(const val *v, int depth);
/* Python json.dumps(v, ensure_ascii, indent, separators, sort_keys). */
bool v_tojson(rctx *c, const val *v, sbuf *b, int indent_n, const char *indent_s, const char *item_sep,
              const char *key_sep, bool sort_keys, bool ensure_ascii, int level, int line);
/* New sbuf with the render's memory limit. */
void rt_sbuf(rctx *c, sbuf *b);
/* Calls a macro value with evaluated arguments; returns its output as a string. */
val *rt_call_macro(rctx *c, val *m, vargs *a, int line);

#endif
