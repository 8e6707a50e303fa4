/* Template lexer: source text -> tokens, reproducing jinja2's lexer (3.1) as transformers
 * configures it: trim_blocks (the first newline after a block or comment tag goes), lstrip_blocks
 * (whitespace from the start of a line up to a block or comment tag goes), `-` / `+` markers,
 * newline normalisation (\r\n and \r become \n; one trailing newline is dropped), raw blocks,
 * and the expression tokens inside tags with their escapes decoded as Python's unicode-escape.
 *
 * Data text is emitted as T_DATA tokens already trimmed; a tag becomes T_BLOCK_BEGIN /
 * T_VAR_BEGIN, its expression tokens, and T_BLOCK_END / T_VAR_END. Comments vanish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "template/tpl_internal.h"

typedef struct lexer {
    tpl_arena *a;
    const char *s; /* normalized source (arena) */
    size_t n;
    ds_err *err;
    token *toks; /* malloc'd while lexing */
    size_t nt, cap;
    size_t *lines; /* offsets where lines start (malloc'd) */
    size_t nlines;
    size_t cur_pos, cur_line, cur_col; /* pos_linecol's cursor (line 0-based, col 1-based) */
    bool failed;
} lexer;

/* ---- positions ------------------------------------------------------------------------------- */

static void pos_linecol(lexer *lx, size_t pos, int *line, int *col) {
    /* tokens come in source order: continue from the last position asked about */
    if (pos < lx->cur_pos) {
        size_t lo = 0, hi = lx->nlines; /* last line start <= pos */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (lx->lines[mid] <= pos) lo = mid;
            else hi = mid;
        }
        lx->cur_pos = lx->lines[lo];
        lx->cur_line = lo;
        lx->cur_col = 1;
    }
    for (size_t i = lx->cur_pos; i < pos && i < lx->n; i++) {
        if (lx->s[i] == '\n') {
            lx->cur_line++;
            lx->cur_col = 1;
        } else if (((unsigned char)lx->s[i] & 0xC0) != 0x80) {
            lx->cur_col++;
        }
    }
    if (pos > lx->cur_pos) lx->cur_pos = pos;
    *line = (int)(lx->cur_line + 1 > 0x7fffffff ? 0x7fffffff : lx->cur_line + 1);
    *col = lx->cur_col > 0x7fffffff ? 0x7fffffff : (int)lx->cur_col;
}

static int lx_fail(lexer *lx, size_t pos, const char *fmt, const char *arg) {
    if (lx->failed) return -1;
    lx->failed = true;
    int line, col;
    pos_linecol(lx, pos, &line, &col);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return ds_errf(lx->err, "template syntax error at line %d, column %d: %s", line, col, msg);
}

static token *push(lexer *lx, ttype t, size_t pos) {
    if (lx->nt == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        token *p = realloc(lx->toks, cap * sizeof *p);
        if (!p) {
            lx_fail(lx, pos, "%s", "out of memory");
            return NULL;
        }
        lx->toks = p;
        lx->cap = cap;
    }
    token *tk = &lx->toks[lx->nt++];
    memset(tk, 0, sizeof *tk);
    tk->t = t;
    pos_linecol(lx, pos, &tk->line, &tk->col);
    return tk;
}

/* ---- character classes ----------------------------------------------------------------------- */

/* Bytes of one Python-whitespace character at p, or 0. */
static int space_len(const char *p, const char *end) {
    if (p >= end) return 0;
    int n;
    uint32_t cp = utf8_decode(p, end, &n);
    return py_isspace(cp) ? n : 0;
}

static size_t skip_space(const char *s, size_t pos, size_t n) {
    int k;
    while ((k = space_len(s + pos, s + n)) > 0) pos += (size_t)k;
    return pos;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Bytes of one identifier character at p (Python's isidentifier, approximated with Unicode
 * categories: letters and letter numbers start a name; marks, digits and connector punctuation
 * may follow), or 0. */
static int name_char_len(const char *p, const char *end, bool start) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return 1;
        return !start && is_digit((char)c) ? 1 : 0;
    }
    int n;
    uint32_t cp = utf8_decode(p, end, &n);
    if (n == 1) return 0; /* invalid UTF-8 */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
        return n;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return start ? 0 : n;
    default:
        return 0;
    }
}

/* Python's rstrip(): length of s[0, n) without trailing whitespace. */
static size_t rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        /* step back one code point */
        size_t k = n - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80 && n - k < 4) k--;
        int len;
        uint32_t cp = utf8_decode(s + k, s + n, &len);
        if ((size_t)len != n - k) { /* not a whole character: treat the last byte alone */
            k = n - 1;
            cp = (unsigned char)s[k];
        }
        if (!py_isspace(cp)) break;
        n = k;
    }
    return n;
}

/* ---- numbers --------------------------------------------------------------------------------- */

/* (\d+_)*\d+ at pos; returns the end or pos when absent. */
static size_t digits_us(const char *s, size_t pos, size_t n) {
    size_t p = pos;
    if (p >= n || !is_digit(s[p])) return pos;
    for (;;) {
        while (p < n && is_digit(s[p])) p++;
        if (p + 1 < n && s[p] == '_' && is_digit(s[p + 1])) {
            p++;
            continue;
        }
        return p;
    }
}

/* jinja2's float_re at pos; returns the end or pos. */
static size_t match_float(const char *s, size_t pos, size_t n) {
    if (pos > 0 && s[pos - 1] == '.') return pos;
    size_t p = digits_us(s, pos, n);
    if (p == pos) return pos;
    /* alternative 1: (\.digits)? e[+-]?digits */
    size_t q = p;
    if (q < n && s[q] == '.') {
        size_t r = digits_us(s, q + 1, n);
        if (r > q + 1) q = r;
    }
    if (q < n && (s[q] == 'e' || s[q] == 'E')) {
        size_t r = q + 1;
        if (r < n && (s[r] == '+' || s[r] == '-')) r++;
        size_t e = digits_us(s, r, n);
        if (e > r) return e;
    }
    /* alternative 2: \.digits */
    if (p < n && s[p] == '.') {
        size_t r = digits_us(s, p + 1, n);
        if (r > p + 1) return r;
    }
    return pos;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* jinja2's integer_re at pos; returns the end or pos, value in *v (overflow -> *ovf). */
static size_t match_int(const char *s, size_t pos, size_t n, int64_t *v, bool *ovf) {
    *v = 0;
    *ovf = false;
    if (pos >= n || !is_digit(s[pos])) return pos;
    int base = 10;
    size_t p = pos;
    if (s[p] == '0' && p + 1 < n) {
        char c = s[p + 1];
        base = (c == 'b' || c == 'B') ? 2 : (c == 'o' || c == 'O') ? 8 : (c == 'x' || c == 'X') ? 16 : 10;
    }
    uint64_t acc = 0;
    if (base != 10) {
        /* 0b(_?[01])+ etc. */
        size_t q = p + 2, last = 0;
        for (;;) {
            size_t r = q;
            if (r < n && s[r] == '_') r++;
            int d = r < n ? hexval(s[r]) : -1;
            if (d < 0 || d >= base) break;
            if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) *ovf = true;
            acc = acc * (uint64_t)base + (uint64_t)d;
            q = r + 1;
            last = q;
        }
        if (last == 0) { /* no digits: falls back to decimal zero "0" */
            *v = 0;
            return p + 1;
        }
        if (acc > INT64_MAX) *ovf = true;
        *v = (int64_t)acc;
        return last;
    }
    if (s[p] == '0') { /* 0(_?0)* */
        size_t q = p + 1;
        for (;;) {
            size_t r = q;
            if (r < n && s[r] == '_') r++;
            if (r < n && s[r] == '0') q = r + 1;
            else break;
        }
        return q;
    }
    size_t q = p;
    for (;;) { /* [1-9](_?\d)* */
        int d = s[q] - '0';
        if (acc > (UINT64_MAX - (uint64_t)d) / 10) *ovf = true;
        acc = acc * 10 + (uint64_t)d;
        size_t r = q + 1;
        if (r < n && s[r] == '_') r++;
        if (r < n && is_digit(s[r])) q = r;
        else {
            q = q + 1;
            break;
        }
    }
    if (acc > INT64_MAX) *ovf = true;
    *v = (int64_t)acc;
    return q;
}

/* ---- strings --------------------------------------------------------------------------------- */

/* Python's backslashreplace name of a non-ASCII code point, without the backslash. */
static size_t bsr_name(uint32_t cp, char *out) {
    if (cp < 0x100) return (size_t)sprintf(out, "x%02x", cp);
    if (cp < 0x10000) return (size_t)sprintf(out, "u%04x", cp);
    return (size_t)sprintf(out, "U%08x", cp);
}

/* Decodes the body of a string literal [b, e) as
 * body.encode("ascii", "backslashreplace").decode("unicode-escape") does. */
static int decode_string(lexer *lx, size_t b, size_t e, token *tk) {
    const char *s = lx->s;
    char *out = ar_alloc(lx->a, (e - b) * 2 + 1); /* escapes never grow more than this */
    if (!out) return lx_fail(lx, b, "%s", "out of memory");
    size_t o = 0;
    for (size_t i = b; i < e;) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= e) return lx_fail(lx, i, "%s", "\\ at end of string");
        unsigned char d = (unsigned char)s[i + 1];
        i += 2;
        uint32_t cp;
        switch (d) {
        case '\n': continue;
        case '\\': out[o++] = '\\'; continue;
        case '\'': out[o++] = '\''; continue;
        case '"': out[o++] = '"'; continue;
        case 'a': out[o++] = '\a'; continue;
        case 'b': out[o++] = '\b'; continue;
        case 'f': out[o++] = '\f'; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'v': out[o++] = '\v'; continue;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
            cp = (uint32_t)(d - '0');
            for (int k = 0; k < 2 && i < e && s[i] >= '0' && s[i] <= '7'; k++, i++)
                cp = cp * 8 + (uint32_t)(s[i] - '0');
            o += (size_t)utf8_encode(cp, out + o);
            continue;
        }
        case 'x': case 'u': case 'U': {
            int want = d == 'x' ? 2 : d == 'u' ? 4 : 8;
            cp = 0;
            for (int k = 0; k < want; k++) {
                int h = i < e ? hexval(s[i]) : -1;
                if (h < 0) {
                    return lx_fail(lx, i, "%s",
                                   d == 'x'   ? "truncated \\xXX escape"
                                   : d == 'u' ? "truncated \\uXXXX escape"
                                              : "truncated \\UXXXXXXXX escape");
                }
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if (cp > 0x10FFFF) return lx_fail(lx, i, "%s", "illegal Unicode character");
            if (cp >= 0xD800 && cp <= 0xDFFF)
                return lx_fail(lx, i, "%s", "surrogate escapes are not supported");
            o += (size_t)utf8_encode(cp, out + o);
            continue;
        }
        case 'N':
            return lx_fail(lx, i, "%s", "\\N{...} escapes are not supported");
        default:
            if (d >= 0x80) { /* the character was backslashreplace'd: "\\" + its escape */
                int len;
                uint32_t u = utf8_decode(s + i - 1, s + e, &len);
                char name[16];
                size_t nl = bsr_name(u, name);
                out[o++] = '\\';
                memcpy(out + o, name, nl);
                o += nl;
                i = i - 1 + (size_t)len;
                continue;
            }
            out[o++] = '\\'; /* unknown escape: kept as written */
            out[o++] = (char)d;
            continue;
        }
    }
    out[o] = '\0';
    tk->s = out;
    tk->len = o;
    return 0;
}

/* ---- operators ------------------------------------------------------------------------------- */

static int match_op(const char *s, size_t pos, size_t n, size_t *len) {
    static const struct {
        const char *t;
        int op;
    } ops[] = {
        {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GE},
        {"<=", OP_LE}, {"+", OP_ADD}, {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL},
        {"%", OP_MOD}, {"~", OP_TILDE}, {"[", OP_LBRACKET}, {"]", OP_RBRACKET},
        {"(", OP_LPAREN}, {")", OP_RPAREN}, {"{", OP_LBRACE}, {"}", OP_RBRACE}, {">", OP_GT},
        {"<", OP_LT}, {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON}, {"|", OP_PIPE},
        {",", OP_COMMA}, {";", OP_SEMICOLON},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t l = strlen(ops[i].t);
        if (pos + l <= n && memcmp(s + pos, ops[i].t, l) == 0) {
            *len = l;
            return ops[i].op;
        }
    }
    return -1;
}

/* ---- tags ------------------------------------------------------------------------------------ */

/* Lexes the inside of a {% %} or {{ }} tag starting at pos. kind is '%' or '{'. Returns the
 * position after the end marker, setting *line_starting; (size_t)-1 on error. */
static size_t lex_tag(lexer *lx, size_t pos, char kind, size_t tag_pos, bool *line_starting) {
    const char *s = lx->s;
    size_t n = lx->n;
    char closers[256];
    int depth = 0;
    for (;;) {
        if (pos >= n) {
            /* jinja2's lexer stops here and its parser reports the unfinished tag */
            lx_fail(lx, tag_pos, "%s",
                    kind == '%' ? "unexpected end of template, expected 'end of statement block'"
                                : "unexpected end of template, expected 'end of print statement'");
            return (size_t)-1;
        }
        if (depth == 0) {
            if (kind == '%') {
                if (pos + 3 <= n && (s[pos] == '-' || s[pos] == '+') && s[pos + 1] == '%' &&
                    s[pos + 2] == '}') {
                    size_t e = pos + 3;
                    if (s[pos] == '-') e = skip_space(s, e, n);
                    if (!push(lx, T_BLOCK_END, pos)) return (size_t)-1;
                    *line_starting = e > 0 && s[e - 1] == '\n';
                    return e;
                }
                if (pos + 1 < n && s[pos] == '%' && s[pos + 1] == '}') {
                    size_t e = pos + 2;
                    if (e < n && s[e] == '\n') e++; /* trim_blocks */
                    if (!push(lx, T_BLOCK_END, pos)) return (size_t)-1;
                    *line_starting = s[e - 1] == '\n';
                    return e;
                }
            } else {
                if (pos + 2 < n && s[pos] == '-' && s[pos + 1] == '}' && s[pos + 2] == '}') {
                    size_t e = skip_space(s, pos + 3, n);
                    if (!push(lx, T_VAR_END, pos)) return (size_t)-1;
                    *line_starting = s[e - 1] == '\n';
                    return e;
                }
                if (pos + 1 < n && s[pos] == '}' && s[pos + 1] == '}') {
                    if (!push(lx, T_VAR_END, pos)) return (size_t)-1;
                    *line_starting = false;
                    return pos + 2;
                }
            }
        }
        int sl = space_len(s + pos, s + n);
        if (sl > 0) {
            pos += (size_t)sl;
            continue;
        }
        size_t e = match_float(s, pos, n);
        if (e > pos) {
            token *tk = push(lx, T_FLOAT, pos);
            if (!tk) return (size_t)-1;
            char buf[128];
            size_t k = 0;
            for (size_t i = pos; i < e && k + 1 < sizeof buf; i++)
                if (s[i] != '_') buf[k++] = s[i];
            buf[k] = '\0';
            tk->f = strtod(buf, NULL);
            pos = e;
            continue;
        }
        int64_t iv;
        bool ovf;
        e = match_int(s, pos, n, &iv, &ovf);
        if (e > pos) {
            if (ovf) return lx_fail(lx, pos, "%s", "integer literal too large (unsupported)"), (size_t)-1;
            token *tk = push(lx, T_INT, pos);
            if (!tk) return (size_t)-1;
            tk->i = iv;
            pos = e;
            continue;
        }
        if (name_char_len(s + pos, s + n, true) > 0) {
            e = pos;
            int k;
            while (e < n && (k = name_char_len(s + e, s + n, false)) > 0) e += (size_t)k;
            token *tk = push(lx, T_NAME, pos);
            if (!tk) return (size_t)-1;
            tk->s = ar_strndup(lx->a, s + pos, e - pos);
            tk->len = e - pos;
            if (!tk->s) return lx_fail(lx, pos, "%s", "out of memory"), (size_t)-1;
            pos = e;
            continue;
        }
        if (s[pos] == '\'' || s[pos] == '"') {
            char q = s[pos];
            size_t i = pos + 1;
            while (i < n && s[i] != q) i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
            if (i >= n) {
                char ch[2] = {q, 0};
                return lx_fail(lx, pos, "unexpected char '%s' (unterminated string)", ch), (size_t)-1;
            }
            token *tk = push(lx, T_STRING, pos);
            if (!tk || decode_string(lx, pos + 1, i, tk) != 0) return (size_t)-1;
            pos = i + 1;
            continue;
        }
        size_t ol;
        int op = match_op(s, pos, n, &ol);
        if (op >= 0) {
            if (op == OP_LBRACE || op == OP_LPAREN || op == OP_LBRACKET) {
                if (depth >= (int)sizeof closers)
                    return lx_fail(lx, pos, "%s", "brackets nested too deeply"), (size_t)-1;
                closers[depth++] = op == OP_LBRACE ? '}' : op == OP_LPAREN ? ')' : ']';
            } else if (op == OP_RBRACE || op == OP_RPAREN || op == OP_RBRACKET) {
                char ch[2] = {s[pos], 0};
                if (depth == 0) return lx_fail(lx, pos, "unexpected '%s'", ch), (size_t)-1;
                if (closers[depth - 1] != s[pos]) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", s[pos], closers[depth - 1]);
                    return lx_fail(lx, pos, "%s", msg), (size_t)-1;
                }
                depth--;
            }
            token *tk = push(lx, T_OP, pos);
            if (!tk) return (size_t)-1;
            tk->op = op;
            pos += ol;
            continue;
        }
        int cl;
        utf8_decode(s + pos, s + n, &cl);
        char ch[8] = {0};
        memcpy(ch, s + pos, (size_t)cl);
        return lx_fail(lx, pos, "unexpected char '%s'", ch), (size_t)-1;
    }
}

/* Applies the whitespace rules to the text [b, e) before a tag and emits it. */
static int emit_text(lexer *lx, size_t b, size_t e, char kind, char sign, bool line_starting) {
    const char *s = lx->s;
    if (sign == '-') {
        e = b + rstrip_len(s + b, e - b);
    } else if (sign != '+' && kind != '{') { /* lstrip_blocks: blocks and comments */
        size_t l = e;
        while (l > b && s[l - 1] != '\n') l--;
        if ((l > b || line_starting) && l < e) {
            size_t p = l;
            int k;
            while (p < e && (k = space_len(s + p, s + e)) > 0) p += (size_t)k;
            if (p == e) e = l;
        }
    }
    if (e > b) {
        token *tk = push(lx, T_DATA, b);
        if (!tk) return -1;
        tk->s = s + b;
        tk->len = e - b;
    }
    return 0;
}

/* Is "{%[sign] raw [-]%}" at pos? Returns the end of the tag (after any stripping) or 0. */
static size_t match_raw_begin(const char *s, size_t pos, size_t n) {
    size_t p = pos + 2;
    if (p < n && (s[p] == '-' || s[p] == '+')) p++;
    p = skip_space(s, p, n);
    if (p + 3 > n || memcmp(s + p, "raw", 3) != 0) return 0;
    p = skip_space(s, p + 3, n);
    if (p + 3 <= n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') return skip_space(s, p + 3, n);
    if (p + 2 <= n && s[p] == '%' && s[p + 1] == '}') return p + 2;
    return 0;
}

/* Finds "{%[sign] endraw [+-]%}" from pos; sets the tag start, its sign and its end. */
static bool find_endraw(const char *s, size_t pos, size_t n, size_t *tag, char *sign, size_t *end) {
    for (size_t q = pos; q + 1 < n; q++) {
        if (s[q] != '{' || s[q + 1] != '%') continue;
        size_t p = q + 2;
        char sg = 0;
        if (p < n && (s[p] == '-' || s[p] == '+')) sg = s[p++];
        p = skip_space(s, p, n);
        if (p + 6 > n || memcmp(s + p, "endraw", 6) != 0) continue;
        p = skip_space(s, p + 6, n);
        size_t e = 0;
        if (p + 3 <= n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') e = p + 3;
        else if (p + 3 <= n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') e = skip_space(s, p + 3, n);
        else if (p + 2 <= n && s[p] == '%' && s[p + 1] == '}') {
            e = p + 2;
            if (e < n && s[e] == '\n') e++;
        }
        if (!e) continue;
        *tag = q;
        *sign = sg;
        *end = e;
        return true;
    }
    return false;
}

int tpl_lex(tpl_arena *a, const char *src, size_t n, token **out, size_t *n_out, ds_err *err) {
    lexer lx = {.a = a, .err = err, .cur_col = 1};
    /* newline normalisation and the dropped trailing newline */
    char *s = ar_alloc(a, n + 1);
    if (!s) return ds_errf(err, "template: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[m++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[m++] = src[i];
        }
    }
    if (m > 0 && s[m - 1] == '\n') m--;
    s[m] = '\0';
    lx.s = s;
    lx.n = m;
    size_t nl = 1;
    for (size_t i = 0; i < m; i++) nl += s[i] == '\n';
    lx.lines = malloc(nl * sizeof *lx.lines);
    if (!lx.lines) return ds_errf(err, "template: out of memory");
    lx.lines[0] = 0;
    lx.nlines = 1;
    for (size_t i = 0; i < m; i++)
        if (s[i] == '\n') lx.lines[lx.nlines++] = i + 1;

    size_t pos = 0;
    bool line_starting = true;
    while (pos < m && !lx.failed) {
        size_t q = pos;
        while (q + 1 < m && !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#'))) q++;
        if (q + 1 >= m) {
            emit_text(&lx, pos, m, 0, '+', false);
            break;
        }
        char kind = s[q + 1];
        size_t p = q + 2;
        char sign = 0;
        if (p < m && (s[p] == '-' || s[p] == '+')) sign = s[p++];
        if (kind == '%') {
            size_t re = match_raw_begin(s, q, m);
            if (re) {
                if (emit_text(&lx, pos, q, kind, sign, line_starting) != 0) break;
                size_t tag, end;
                char esign;
                if (!find_endraw(s, re, m, &tag, &esign, &end)) {
                    lx_fail(&lx, q, "%s", "Missing end of raw directive");
                    break;
                }
                /* the raw body gets the same treatment as text before a block tag */
                bool ls = s[re - 1] == '\n';
                if (emit_text(&lx, re, tag, '%', esign, ls) != 0) break;
                line_starting = s[end - 1] == '\n';
                pos = end;
                continue;
            }
        }
        if (emit_text(&lx, pos, q, kind, sign, line_starting) != 0) break;
        if (kind == '#') {
            /* the first "#}" ends the comment; "-#}" strips after, "+#}" keeps, else trim */
            size_t e = p;
            while (e + 1 < m && !(s[e] == '#' && s[e + 1] == '}')) e++;
            if (e + 1 >= m) {
                if (p < m) lx_fail(&lx, q, "%s", "Missing end of comment tag");
                pos = m;
                break;
            }
            size_t after = e + 2;
            if (e > p && s[e - 1] == '-') after = skip_space(s, after, m);
            else if (e > p && s[e - 1] == '+') { /* keep */
            } else if (after < m && s[after] == '\n') after++;
            line_starting = s[after - 1] == '\n';
            pos = after;
            continue;
        }
        if (!push(&lx, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, q)) break;
        size_t e = lex_tag(&lx, p, kind, q, &line_starting);
        if (e == (size_t)-1) break;
        pos = e;
    }
    if (!lx.failed) push(&lx, T_EOF, m);
    free(lx.lines);
    if (lx.failed) {
        free(lx.toks);
        return -1;
    }
    token *toks = ar_alloc(a, lx.nt * sizeof *toks);
    if (!toks) {
        free(lx.toks);
        return ds_errf(err, "template: out of memory");
    }
    memcpy(toks, lx.toks, lx.nt * sizeof *toks);
    free(lx.toks);
    *out = toks;
    *n_out = lx.nt;
    return 0;
}
