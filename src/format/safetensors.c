/* safetensors reader.
 *
 * A .safetensors file is
 *
 *     u64 LE  N            length of the JSON header in bytes
 *     N bytes JSON         { "name": {"dtype": "F32", "shape": [512, 64],
 *                                     "data_offsets": [begin, end]}, ...,
 *                            "__metadata__": {"key": "value", ...} }   (optional, ignored)
 *     data section         everything after the header; offsets are relative to its start
 *
 * Shapes are already in PyTorch order (row-major, last dimension contiguous), so tensors are
 * handed out as is, pointing into the caller's bytes. The JSON is parsed by jansson with
 * duplicate keys rejected; everything else (dtype names, shape entries, offsets, sizes,
 * overlaps) is checked here, so a tensor's [data, data + nbytes) always lies in the file.
 *
 * Error messages are built without the file label and the label is prepended once, in
 * st_parse, so every message reads "LABEL: tensor 'NAME': what is wrong". */
#include "format/safetensors.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Real headers are a few hundred KB at most; anything bigger is not a weight file. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

/* safetensors dtype names are ds_dtype's names of the plain (unblocked) types, upper case. */
static int dtype_from_name(const char *name, ds_dtype *out) {
    int t = ds_dtype_from_name(name);
    if (t < 0 || ds_dtype_block_elems((ds_dtype)t) != 1 || strcmp(ds_dtype_name((ds_dtype)t), name))
        return -1;
    *out = (ds_dtype)t;
    return 0;
}

static uint64_t rd_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* "[512, 64]" for messages. */
static void format_shape(const ds_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Fills t->ndim and t->shape from a JSON array of non-negative integers. */
static int parse_shape(const json_t *shape, ds_tensor *t, ds_err *err) {
    if (!json_is_array(shape)) return ds_errf(err, "'shape' is missing or not an array");
    size_t n = json_array_size(shape);
    if (n > DS_MAX_DIMS)
        return ds_errf(err, "shape has %zu dimensions; dsinfer supports at most %d", n,
                       DS_MAX_DIMS);
    t->ndim = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return ds_errf(err, "shape entry %zu is not a non-negative integer", i);
        t->shape[i] = (int64_t)json_integer_value(d);
    }
    return 0;
}

/* Element count of t's shape. Fails when the product of the nonzero dimensions overflows
 * int64, so that no partial product of the shape (in any order, as later code may compute
 * strides) overflows even when one dimension is 0. */
static int shape_nelems(const ds_tensor *t, int64_t *out, ds_err *err) {
    int64_t nonzero = 1;
    bool has_zero = false;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = t->shape[i];
        if (d == 0) {
            has_zero = true;
            continue;
        }
        if (nonzero > INT64_MAX / d) {
            char shp[128];
            format_shape(t, shp, sizeof shp);
            return ds_errf(err, "shape %s has too many elements", shp);
        }
        nonzero *= d;
    }
    *out = has_zero ? 0 : nonzero;
    return 0;
}

/* Reads [begin, end] and checks begin <= end <= data_size. */
static int parse_offsets(const json_t *offs, uint64_t data_size, uint64_t *begin, uint64_t *end,
                         ds_err *err) {
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return ds_errf(err, "'data_offsets' is missing or not an array of two integers");
    const json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < 0)
        return ds_errf(err, "'data_offsets' entries must be non-negative integers");
    *begin = (uint64_t)json_integer_value(b);
    *end = (uint64_t)json_integer_value(e);
    if (*begin > *end)
        return ds_errf(err, "data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                       *begin, *end);
    if (*end > data_size)
        return ds_errf(err,
                       "data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the "
                       "%" PRIu64 "-byte data section",
                       *begin, *end, data_size);
    return 0;
}

/* Parses one header entry into t (name not set). `data` is the start of the data section. */
static int parse_entry(const json_t *info, const uint8_t *data, uint64_t data_size,
                       ds_tensor *t, ds_err *err) {
    if (!json_is_object(info)) return ds_errf(err, "entry is not a JSON object");

    const char *dtype = json_string_value(json_object_get(info, "dtype"));
    if (!dtype) return ds_errf(err, "'dtype' is missing or not a string");
    if (dtype_from_name(dtype, &t->type) != 0) return ds_errf(err, "unknown dtype '%s'", dtype);

    if (parse_shape(json_object_get(info, "shape"), t, err) != 0) return -1;
    uint64_t begin = 0, end = 0;
    if (parse_offsets(json_object_get(info, "data_offsets"), data_size, &begin, &end, err) != 0)
        return -1;

    int64_t nelems = 0;
    size_t need;
    if (shape_nelems(t, &nelems, err) != 0 ||
        ds_dtype_bytes_for(t->type, nelems, &need, "shape", err) != 0)
        return -1;
    if (end - begin != need) {
        char shp[128];
        format_shape(t, shp, sizeof shp);
        return ds_errf(err, "data_offsets [%" PRIu64 ", %" PRIu64 "] but %s shape %s needs %zu "
                       "bytes", begin, end, dtype, shp, need);
    }
    t->data = data + begin;
    t->nbytes = need;
    return 0;
}

/* Orders by data offset, then size (empty tensors first), then name, for a stable result. */
static int cmp_by_offset(const void *a, const void *b) {
    const ds_tensor *x = a, *y = b;
    const uint8_t *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Byte offset of t's data within the data section, for messages. */
static size_t offset_of(const ds_tensor *t, const uint8_t *data) {
    return (size_t)((const uint8_t *)t->data - data);
}

/* With tensors sorted by offset, a tensor overlaps an earlier one exactly when it starts before
 * the previous non-empty tensor ends (while none overlap, that one ends furthest). Empty
 * tensors occupy no bytes and overlap nothing. */
static int check_overlaps(const st_file *f, const uint8_t *data, ds_err *err) {
    const ds_tensor *prev = NULL; /* the last non-empty tensor */
    for (int i = 0; i < f->n_tensors; i++) {
        const ds_tensor *t = &f->tensors[i];
        if (t->nbytes == 0) continue;
        size_t begin = offset_of(t, data);
        if (prev) {
            size_t pb = offset_of(prev, data), pe = pb + prev->nbytes;
            if (pe > begin)
                return ds_errf(err, "tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s' "
                               "[%zu, %zu]", t->name, begin, begin + t->nbytes, prev->name, pb, pe);
        }
        prev = t;
    }
    return 0;
}

/* Builds f->tensors from the parsed header. */
static int parse_tensors(json_t *root, const uint8_t *data, uint64_t data_size, st_file *f,
                         ds_err *err) {
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return ds_errf(err, "out of memory for %zu tensors", n);

    const char *name;
    json_t *info;
    json_object_foreach(root, name, info) {
        if (strcmp(name, "__metadata__") == 0) continue;
        ds_tensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(name);
        if (!t->name) return ds_errf(err, "out of memory");
        f->n_tensors++;
        if (parse_entry(info, data, data_size, t, err) != 0)
            return ds_err_wrap(err, "tensor '%s'", name);
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_by_offset);
    return check_overlaps(f, data, err);
}

/* st_parse without the label prefix on errors. */
static int parse(const uint8_t *data, size_t size, st_file *out, ds_err *err) {
    if (size < 8)
        return ds_errf(err, "file is %zu bytes, too short for the 8-byte header length", size);
    uint64_t hlen = rd_le64(data);
    if (hlen > size - 8)
        return ds_errf(err, "header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                       hlen, size);
    if (hlen > ST_MAX_HEADER)
        return ds_errf(err, "header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                       hlen, ST_MAX_HEADER);

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ds_errf(err, "header JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                       jerr.column);
    /* (the header limit keeps the entry count far below INT_MAX, so n_tensors cannot wrap) */
    int rc = json_is_object(root)
                 ? parse_tensors(root, data + 8 + hlen, size - 8 - hlen, out, err)
                 : ds_errf(err, "header JSON is not an object");
    json_decref(root);
    return rc;
}

int st_parse(const uint8_t *data, size_t size, const char *label, st_file *out, ds_err *err) {
    memset(out, 0, sizeof *out);
    if (parse(data, size, out, err) != 0) {
        st_close(out);
        return ds_err_wrap(err, "%s", label ? label : "safetensors");
    }
    return 0;
}

int st_open(const char *path, st_file *out, ds_err *err) {
    ds_mapped map;
    memset(out, 0, sizeof *out);
    if (ds_map_file(path, &map, err) != 0) return -1;
    if (st_parse(map.data, map.size, map.path, out, err) != 0) {
        ds_unmap_file(&map);
        return -1;
    }
    out->map = map;
    return 0;
}

const ds_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

void st_close(st_file *f) {
    for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    ds_unmap_file(&f->map);
    memset(f, 0, sizeof *f);
}
