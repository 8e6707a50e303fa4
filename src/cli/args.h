/* Flag-value parsing shared by the subcommands: every failure prints which flag and value
 * were wrong and returns -1 (the caller exits with status 2). */
#ifndef DS_CLI_ARGS_H
#define DS_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value after flag argv[*i]; advances *i. NULL (after a message) if missing. */
const char *arg_value(int argc, char **argv, int *i, const char *cmd);

int arg_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out);
int arg_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out);

/* A comma- or space-separated list of non-negative integers, e.g. "1,2,3" or "512 1024";
 * malloc'd into *out. `what` names the flag in messages. */
int arg_int_list(const char *cmd, const char *what, const char *s, int64_t **out, int *n);

/* The whole of file `path` ('-' = standard input) in a malloc'd buffer (not NUL-terminated);
 * on failure prints "dsinfer CMD: PATH: why" and returns -1. */
int arg_read_file(const char *cmd, const char *path, char **out, size_t *len);

#endif
