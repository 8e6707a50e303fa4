/* Typed access to jansson objects with errors that name the file and field. Each getter
 * returns 1 and sets *out when the field exists with the right type, 0 when it is absent (or
 * JSON null), and -1 with a message like "config.json: field 'hidden_size' must be an
 * integer" otherwise. */
#ifndef DS_BASE_JSON_UTIL_H
#define DS_BASE_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* Loads a JSON file; when `missing_ok` a missing file gives 0 and *out = NULL. */
int ds_json_load_file(const char *path, bool missing_ok, json_t **out, ds_err *err);

int ds_json_int(const json_t *obj, const char *key, const char *file, int64_t *out, ds_err *err);
int ds_json_num(const json_t *obj, const char *key, const char *file, double *out, ds_err *err);
int ds_json_bool(const json_t *obj, const char *key, const char *file, bool *out, ds_err *err);
int ds_json_str(const json_t *obj, const char *key, const char *file, const char **out, ds_err *err);

/* Like ds_json_int but absence is an error ("missing required field"). */
int ds_json_req_int(const json_t *obj, const char *key, const char *file, int64_t *out, ds_err *err);

#endif
