/* Errors are values: a function that can fail returns 0 on success or -1 on failure and, on
 * failure, fills a ds_err with a message that names what failed and where (file, tensor,
 * field, offset). Nothing below cli/ prints, aborts or exits on anything a user can cause. */
#ifndef DS_BASE_ERROR_H
#define DS_BASE_ERROR_H

typedef struct ds_err {
    char msg[1024];
} ds_err;

/* Formats the message into err (if err is non-NULL) and returns -1, so callers can write
 * `return ds_errf(err, "...")`. */
int ds_errf(ds_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (adds context while unwinding); returns -1. */
int ds_err_wrap(ds_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
