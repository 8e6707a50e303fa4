#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *arg_value(int argc, char **argv, int *i, const char *cmd) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "dsinfer %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int arg_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "dsinfer %s: %s expects an integer, got '%s'\n", cmd, flag, s);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "dsinfer %s: %s must be between %lld and %lld, got %lld\n", cmd, flag, (long long)min,
                (long long)max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "dsinfer %s: %s expects a number, got '%s'\n", cmd, flag, s);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "dsinfer %s: %s must be between %g and %g, got %g\n", cmd, flag, min, max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_int_list(const char *cmd, const char *what, const char *s, int64_t **out, int *n) {
    *out = NULL;
    *n = 0;
    int cap = 0, pos = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || (*end && !strchr(" ,\t\n", *end))) {
            int len = (int)strcspn(p, " ,\t\n");
            fprintf(stderr, "dsinfer %s: %s: '%.*s' at position %d is not a non-negative integer\n", cmd, what,
                    len, p, pos);
            free(*out);
            *out = NULL;
            return -1;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *grown = realloc(*out, sizeof **out * (size_t)cap);
            if (!grown) {
                free(*out);
                *out = NULL;
                fprintf(stderr, "dsinfer %s: out of memory\n", cmd);
                return -1;
            }
            *out = grown;
        }
        (*out)[(*n)++] = v;
        pos++;
        p = end;
    }
    return 0;
}

int arg_read_file(const char *cmd, const char *path, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "dsinfer %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = realloc(buf, cap * 2);
        if (!b) free(buf);
        buf = b;
        cap *= 2;
    }
    const char *why = !buf ? "out of memory" : ferror(f) ? "read error" : NULL;
    if (f != stdin) fclose(f);
    if (why) {
        free(buf);
        fprintf(stderr, "dsinfer %s: %s: %s\n", cmd, path, why);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}
