#include "base/json_util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int ds_json_load_file(const char *path, bool missing_ok, json_t **out, ds_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (missing_ok && errno == ENOENT) return 0;
        return ds_errf(err, "%s: cannot read: %s", path, strerror(errno));
    }
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) return ds_errf(err, "%s: invalid JSON at line %d column %d: %s", path, je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return ds_errf(err, "%s: expected a JSON object at the top level", path);
    }
    *out = j;
    return 1;
}

static const json_t *field(const json_t *obj, const char *key) {
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    return (v && !json_is_null(v)) ? v : NULL;
}

int ds_json_int(const json_t *obj, const char *key, const char *file, int64_t *out, ds_err *err) {
    const json_t *v = field(obj, key);
    if (!v) return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    /* 4096.0 is accepted as an integer; 4096.5 is not. */
    if (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v)) {
        *out = (int64_t)json_real_value(v);
        return 1;
    }
    return ds_errf(err, "%s: field '%s' must be an integer", file, key);
}

int ds_json_num(const json_t *obj, const char *key, const char *file, double *out, ds_err *err) {
    const json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_number(v)) return ds_errf(err, "%s: field '%s' must be a number", file, key);
    *out = json_number_value(v);
    return 1;
}

int ds_json_bool(const json_t *obj, const char *key, const char *file, bool *out, ds_err *err) {
    const json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return ds_errf(err, "%s: field '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return 1;
}

int ds_json_str(const json_t *obj, const char *key, const char *file, const char **out, ds_err *err) {
    const json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_string(v)) return ds_errf(err, "%s: field '%s' must be a string", file, key);
    *out = json_string_value(v);
    return 1;
}

int ds_json_req_int(const json_t *obj, const char *key, const char *file, int64_t *out, ds_err *err) {
    int rc = ds_json_int(obj, key, file, out, err);
    if (rc == 0) return ds_errf(err, "%s: missing required field '%s'", file, key);
    return rc;
}
