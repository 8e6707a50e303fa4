/* GGUF reader (versions 2 and 3, little-endian).
 *
 * A GGUF file is
 *
 *     u32 magic "GGUF"   u32 version   u64 n_tensors   u64 n_kv
 *     n_kv key/values:   string key, u32 value type, value
 *     n_tensors infos:   string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset
 *     padding to general.alignment (default 32)
 *     data section:      tensor bytes; each info's offset is relative to its start
 *
 * where a string is a u64 length followed by that many bytes (no NUL), and a value is a
 * scalar (u8/i8/u16/i16/u32/i32/u64/i64/f32/f64/bool), a string, or an array: u32 element
 * type, u64 count, then the elements (arrays of arrays are rejected here).
 *
 * ne[] lists dimensions innermost first (ne[0] is the contiguous row); ds_tensor shapes are
 * PyTorch order, so they are ne[] reversed. Block-quantized rows hold whole blocks, so ne[0]
 * must be a multiple of the type's block size.
 *
 * The file is untrusted: every count and length is checked against the bytes left before
 * anything is allocated or looped over, so a hostile header cannot make us allocate more than
 * a small multiple of the file size (and never more than the caps below) or spin. Strings and
 * arrays point into the caller's bytes; keys and tensor names are copied (NUL-terminated).
 *
 * Errors are built without the file label and the label is prepended once, in gguf_parse. */
#include "format/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
/* Smallest encodings: a key/value is a key length, a value type and a one-byte value; a tensor
 * info with no dimensions is a name length, n_dims, a type and an offset. */
#define GGUF_MIN_KV_BYTES (8 + 4 + 1)
#define GGUF_MIN_TENSOR_INFO_BYTES (8 + 4 + 4 + 8)
/* Real files have tens of keys and a few thousand tensors; these caps bound the allocations
 * for huge (mapped, mostly unread) files whose header lies about its counts. */
#define GGUF_MAX_KV ((uint64_t)1 << 20)
#define GGUF_MAX_TENSORS ((uint64_t)1 << 20)

/* ---- ggml tensor types ---- */

#define GGML_TYPE_COUNT 40
#define DTYPE_NONE (-1) /* a type ggml knows and dsinfer does not */

/* Indexed by ggml type id; ids without a name are unknown (never assigned). */
static const struct {
    const char *name;
    int dtype; /* ds_dtype, or DTYPE_NONE */
} k_ggml_types[GGML_TYPE_COUNT] = {
    [0] = {"F32", DS_F32},         [1] = {"F16", DS_F16},
    [2] = {"Q4_0", DS_Q4_0},       [3] = {"Q4_1", DS_Q4_1},
    [6] = {"Q5_0", DS_Q5_0},       [7] = {"Q5_1", DS_Q5_1},
    [8] = {"Q8_0", DS_Q8_0},       [9] = {"Q8_1", DS_Q8_1},
    [10] = {"Q2_K", DS_Q2_K},      [11] = {"Q3_K", DS_Q3_K},
    [12] = {"Q4_K", DS_Q4_K},      [13] = {"Q5_K", DS_Q5_K},
    [14] = {"Q6_K", DS_Q6_K},      [15] = {"Q8_K", DS_Q8_K},
    [16] = {"IQ2_XXS", DTYPE_NONE}, [17] = {"IQ2_XS", DTYPE_NONE},
    [18] = {"IQ3_XXS", DTYPE_NONE}, [19] = {"IQ1_S", DTYPE_NONE},
    [20] = {"IQ4_NL", DTYPE_NONE},  [21] = {"IQ3_S", DTYPE_NONE},
    [22] = {"IQ2_S", DTYPE_NONE},   [23] = {"IQ4_XS", DTYPE_NONE},
    [24] = {"I8", DS_I8},          [25] = {"I16", DS_I16},
    [26] = {"I32", DS_I32},        [27] = {"I64", DS_I64},
    [28] = {"F64", DS_F64},        [29] = {"IQ1_M", DTYPE_NONE},
    [30] = {"BF16", DS_BF16},
    /* 31-33 and 36-38 are interleaved layouts ggml once wrote to files and has since removed. */
    [31] = {"Q4_0_4_4", DTYPE_NONE}, [32] = {"Q4_0_4_8", DTYPE_NONE},
    [33] = {"Q4_0_8_8", DTYPE_NONE}, [34] = {"TQ1_0", DTYPE_NONE},
    [35] = {"TQ2_0", DTYPE_NONE},    [36] = {"IQ4_NL_4_4", DTYPE_NONE},
    [37] = {"IQ4_NL_4_8", DTYPE_NONE}, [38] = {"IQ4_NL_8_8", DTYPE_NONE},
    [39] = {"MXFP4", DTYPE_NONE},
};

const char *gguf_ggml_type_name(uint32_t ggml_type) {
    return ggml_type < GGML_TYPE_COUNT ? k_ggml_types[ggml_type].name : NULL;
}

/* ---- value types ---- */

static const char *const k_value_type_names[] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};
#define GGUF_TYPE_COUNT (sizeof k_value_type_names / sizeof k_value_type_names[0])

static const char *value_type_name(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? k_value_type_names[t] : "?";
}

/* Encoded size of a scalar value type; 0 for STRING, ARRAY and unknown types. */
static size_t scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bool is_int_type(gguf_type t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_UINT16: case GGUF_INT16:
    case GGUF_UINT32: case GGUF_INT32: case GGUF_UINT64: case GGUF_INT64: return true;
    default: return false;
    }
}

static bool is_signed_type(gguf_type t) {
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

static bool is_float_type(gguf_type t) { return t == GGUF_FLOAT32 || t == GGUF_FLOAT64; }

static bool is_number_type(gguf_type t) { return is_int_type(t) || is_float_type(t); }

static bool is_string_type(gguf_type t) { return t == GGUF_STRING; }

/* ---- little-endian decoding ---- */

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

static double f32_bits(uint64_t bits) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)bits };
    return v.f;
}

static double f64_bits(uint64_t bits) {
    union { uint64_t u; double f; } v = { .u = bits };
    return v.f;
}

/* Decodes one scalar of type t at p into the matching union member of *kv. */
static void decode_scalar(gguf_type t, const uint8_t *p, gguf_kv *kv) {
    uint64_t raw = le(p, scalar_size(t));
    switch (t) {
    case GGUF_INT8: kv->v.i = (int8_t)raw; break;
    case GGUF_INT16: kv->v.i = (int16_t)raw; break;
    case GGUF_INT32: kv->v.i = (int32_t)raw; break;
    case GGUF_INT64: kv->v.i = (int64_t)raw; break;
    case GGUF_FLOAT32: kv->v.f = f32_bits(raw); break;
    case GGUF_FLOAT64: kv->v.f = f64_bits(raw); break;
    default: kv->v.u = raw; break; /* unsigned types and BOOL */
    }
}

/* ---- bounds-checked reader ---- */

typedef struct reader {
    const uint8_t *data;
    size_t size;
    size_t pos; /* always <= size */
} reader;

static size_t remaining(const reader *r) { return r->size - r->pos; }

/* Consumes n bytes, pointing *out at them; `what` names them in the error. */
static int take(reader *r, uint64_t n, const uint8_t **out, const char *what, ds_err *err) {
    if (n > remaining(r))
        return ds_errf(err, "%s at offset %zu needs %" PRIu64 " bytes but the file ends at %zu",
                       what, r->pos, n, r->size);
    *out = r->data + r->pos;
    r->pos += (size_t)n;
    return 0;
}

static int rd_u32(reader *r, uint32_t *out, const char *what, ds_err *err) {
    const uint8_t *p = NULL;
    if (take(r, 4, &p, what, err) != 0) return -1;
    *out = (uint32_t)le(p, 4);
    return 0;
}

static int rd_u64(reader *r, uint64_t *out, const char *what, ds_err *err) {
    const uint8_t *p = NULL;
    if (take(r, 8, &p, what, err) != 0) return -1;
    *out = le(p, 8);
    return 0;
}

static int rd_str(reader *r, gguf_str *out, const char *what, ds_err *err) {
    uint64_t len;
    if (rd_u64(r, &len, what, err) != 0) return -1;
    if (len > remaining(r))
        return ds_errf(err, "%s: length %" PRIu64 " at offset %zu runs past the end of the file "
                       "(%zu bytes)", what, len, r->pos - 8, r->size);
    out->ptr = (const char *)r->data + r->pos;
    out->len = len;
    r->pos += (size_t)len;
    return 0;
}

/* Reads a string that becomes a C string (a key or tensor name): no NUL bytes allowed. */
static int rd_name(reader *r, char **out, const char *what, ds_err *err) {
    gguf_str s;
    if (rd_str(r, &s, what, err) != 0) return -1;
    if (memchr(s.ptr, 0, (size_t)s.len))
        return ds_errf(err, "%s at offset %zu contains a NUL byte", what, r->pos - (size_t)s.len);
    *out = malloc((size_t)s.len + 1);
    if (!*out) return ds_errf(err, "out of memory for a %" PRIu64 "-byte %s", s.len, what);
    memcpy(*out, s.ptr, (size_t)s.len);
    (*out)[s.len] = '\0';
    return 0;
}

/* Fails unless `count` items of at least `min_bytes` each fit in what is left of the file. */
static int check_count(const reader *r, uint64_t count, size_t min_bytes, const char *what,
                       ds_err *err) {
    if (count > remaining(r) / min_bytes)
        return ds_errf(err, "%s %" PRIu64 " cannot fit in the %zu bytes left in the file (each "
                       "needs at least %zu)", what, count, remaining(r), min_bytes);
    return 0;
}

/* ---- key/values ---- */

/* Reads an array value: element type, count, elements (strings validated one by one). */
static int read_array(reader *r, gguf_kv *kv, ds_err *err) {
    uint32_t type;
    if (rd_u32(r, &type, "array element type", err) != 0 ||
        rd_u64(r, &kv->arr_len, "array length", err) != 0)
        return -1;
    kv->arr_type = (gguf_type)type;
    if (type == GGUF_ARRAY) return ds_errf(err, "nested arrays are not supported");
    size_t elem = type == GGUF_STRING ? 8 : scalar_size((gguf_type)type);
    if (elem == 0) return ds_errf(err, "unknown array element type %" PRIu32, type);
    if (check_count(r, kv->arr_len, elem, "array length", err) != 0) return -1;

    kv->arr_data = r->data + r->pos;
    if (type != GGUF_STRING) {
        const uint8_t *elems;
        return take(r, kv->arr_len * elem, &elems, "array", err);
    }
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        gguf_str s;
        if (rd_str(r, &s, "string", err) != 0)
            return ds_err_wrap(err, "array element %" PRIu64, i);
    }
    return 0;
}

static int read_value(reader *r, gguf_kv *kv, ds_err *err) {
    if (kv->type == GGUF_STRING) return rd_str(r, &kv->v.s, "string value", err);
    if (kv->type == GGUF_ARRAY) return read_array(r, kv, err);
    size_t n = scalar_size(kv->type);
    if (n == 0) return ds_errf(err, "unknown value type %u", (unsigned)kv->type);
    const uint8_t *p = NULL;
    if (take(r, n, &p, value_type_name(kv->type), err) != 0) return -1;
    decode_scalar(kv->type, p, kv);
    return 0;
}

static int read_kv(reader *r, uint64_t index, gguf_kv *kv, ds_err *err) {
    if (rd_name(r, &kv->key, "key", err) != 0)
        return ds_err_wrap(err, "key/value %" PRIu64, index);
    uint32_t type;
    if (rd_u32(r, &type, "value type", err) != 0) return ds_err_wrap(err, "key '%s'", kv->key);
    kv->type = (gguf_type)type;
    if (read_value(r, kv, err) != 0) return ds_err_wrap(err, "key '%s'", kv->key);
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails if two of `n` names are equal. The names are the string-pointer fields that lie every
 * `stride` bytes from `first` (one field of each struct in an array, e.g. &kv[0].key); `what`
 * is "key" or "tensor". Sorting a copy of the pointers keeps this O(n log n). */
static int check_unique(const void *first, size_t stride, uint64_t n, const char *what,
                        ds_err *err) {
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return ds_errf(err, "out of memory checking %" PRIu64 " names", n);
    for (uint64_t i = 0; i < n; i++)
        memcpy(&names[i], (const char *)first + i * stride, sizeof names[i]);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    int rc = 0;
    for (uint64_t i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = ds_errf(err, "%s '%s' appears more than once", what, names[i]);
    free(names);
    return rc;
}

static int read_kvs(reader *r, gguf_file *f, uint64_t n_kv, ds_err *err) {
    f->kv = calloc(n_kv ? n_kv : 1, sizeof *f->kv);
    if (!f->kv) return ds_errf(err, "out of memory for %" PRIu64 " key/values", n_kv);
    /* n_kv counts the entry being read, so gguf_close frees a partly read one */
    int rc = 0;
    for (; rc == 0 && f->n_kv < n_kv; f->n_kv++) rc = read_kv(r, f->n_kv, &f->kv[f->n_kv], err);
    return rc == 0 ? check_unique(&f->kv[0].key, sizeof *f->kv, f->n_kv, "key", err) : -1;
}

/* general.alignment: a UINT32, nonzero power of two; 32 when absent. */
static int read_alignment(gguf_file *f, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!kv) return 0;
    if (kv->type != GGUF_UINT32)
        return ds_errf(err, "key 'general.alignment' has type %s, expected UINT32",
                       value_type_name(kv->type));
    if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) != 0)
        return ds_errf(err, "key 'general.alignment' = %" PRIu64 " is not a nonzero power of two",
                       kv->v.u);
    f->alignment = (uint32_t)kv->v.u;
    return 0;
}

/* ---- tensor infos ---- */

/* Sets t->type from a ggml type id, naming the tensor and the type when we cannot. */
static int map_ggml_type(ds_tensor *t, uint32_t id, ds_err *err) {
    const char *name = gguf_ggml_type_name(id);
    if (!name) return ds_errf(err, "tensor '%s' has unknown ggml type %" PRIu32, t->name, id);
    if (k_ggml_types[id].dtype == DTYPE_NONE)
        return ds_errf(err, "tensor '%s' has type %s (%" PRIu32 "), which dsinfer does not support",
                       t->name, name, id);
    t->type = (ds_dtype)k_ggml_types[id].dtype;
    return 0;
}

/* Reads n_dims and ne[], and sets t's shape (reversed) and byte size. */
static int read_shape(reader *r, ds_tensor *t, ds_err *err) {
    uint32_t n_dims;
    if (rd_u32(r, &n_dims, "n_dims", err) != 0) return -1;
    if (n_dims > DS_MAX_DIMS)
        return ds_errf(err, "n_dims = %" PRIu32 "; dsinfer supports at most %d", n_dims,
                       DS_MAX_DIMS);
    t->ndim = (int)n_dims;
    /* The product of the nonzero dimensions must fit, so that no partial product of the shape
     * (in any order, as later code may compute strides) overflows even when one is 0. */
    int64_t nonzero = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        uint64_t ne;
        if (rd_u64(r, &ne, "ne[]", err) != 0) return -1;
        if (ne > INT64_MAX)
            return ds_errf(err, "ne[%" PRIu32 "] = %" PRIu64 " is out of range", i, ne);
        if (ne != 0 && nonzero > INT64_MAX / (int64_t)ne)
            return ds_errf(err, "element count overflows at ne[%" PRIu32 "]", i);
        if (ne != 0) nonzero *= (int64_t)ne;
        t->shape[n_dims - 1 - i] = (int64_t)ne;
    }
    return 0;
}

/* Checks that rows hold whole blocks and computes t->nbytes. */
static int size_tensor(ds_tensor *t, ds_err *err) {
    int64_t row = t->ndim ? t->shape[t->ndim - 1] : 1;
    int block = ds_dtype_block_elems(t->type);
    if (row % block != 0)
        return ds_errf(err, "row length ne[0] = %" PRId64 " is not a multiple of the %s block "
                       "size %d", row, ds_dtype_name(t->type), block);
    return ds_dtype_bytes_for(t->type, ds_tensor_nelems(t), &t->nbytes, "data size", err);
}

/* Reads one tensor info; its data offset goes to *offset until the data section is known. */
static int read_tensor_info(reader *r, uint64_t index, ds_tensor *t, uint64_t *offset,
                            ds_err *err) {
    char *name;
    if (rd_name(r, &name, "tensor name", err) != 0)
        return ds_err_wrap(err, "tensor info %" PRIu64, index);
    t->name = name;
    uint32_t type;
    if (read_shape(r, t, err) != 0 || rd_u32(r, &type, "ggml type", err) != 0 ||
        rd_u64(r, offset, "data offset", err) != 0)
        return ds_err_wrap(err, "tensor '%s'", name);
    if (map_ggml_type(t, type, err) != 0) return -1;
    if (size_tensor(t, err) != 0) return ds_err_wrap(err, "tensor '%s'", name);
    return 0;
}

/* Points t at its data after checking the offset's alignment and that the bytes lie in the file. */
static int place_tensor(const gguf_file *f, const uint8_t *data, size_t size, ds_tensor *t,
                        uint64_t offset, ds_err *err) {
    if (offset % f->alignment != 0)
        return ds_errf(err, "tensor '%s': data offset %" PRIu64 " is not a multiple of the "
                       "alignment %" PRIu32, t->name, offset, f->alignment);
    if (f->data_offset > size || offset > size - f->data_offset ||
        t->nbytes > size - f->data_offset - offset)
        return ds_errf(err, "tensor '%s': %zu bytes at offset %" PRIu64 " of the data section "
                       "(which starts at %zu) run past the end of the file (%zu bytes)",
                       t->name, t->nbytes, offset, f->data_offset, size);
    t->data = data + f->data_offset + offset;
    return 0;
}

static int read_tensors(reader *r, gguf_file *f, uint64_t n_tensors, ds_err *err) {
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    uint64_t *offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
    int rc = 0;
    if (!f->tensors || !offsets)
        rc = ds_errf(err, "out of memory for %" PRIu64 " tensors", n_tensors);
    for (; rc == 0 && f->n_tensors < n_tensors; f->n_tensors++)
        rc = read_tensor_info(r, f->n_tensors, &f->tensors[f->n_tensors], &offsets[f->n_tensors],
                              err);
    if (rc == 0)
        rc = check_unique(&f->tensors[0].name, sizeof *f->tensors, f->n_tensors, "tensor", err);

    /* The data section starts at the first aligned offset after the infos. For files without
     * tensors (vocab-only files) it may lie past the end of the file; nothing reads it then. */
    uint64_t align = f->alignment;
    f->data_offset = (size_t)((r->pos + align - 1) / align * align);
    for (uint64_t i = 0; rc == 0 && i < n_tensors; i++)
        rc = place_tensor(f, r->data, r->size, &f->tensors[i], offsets[i], err);
    free(offsets);
    return rc;
}

/* ---- header ---- */

static int read_header(reader *r, gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv,
                       ds_err *err) {
    const uint8_t *magic = NULL;
    if (take(r, 4, &magic, "magic", err) != 0) return -1;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0) return ds_errf(err, "not a GGUF file (bad magic)");
    if (rd_u32(r, &f->version, "version", err) != 0) return -1;
    if (f->version != 2 && f->version != 3) {
        uint32_t swapped = __builtin_bswap32(f->version);
        return ds_errf(err, "unsupported GGUF version %" PRIu32 "%s", f->version,
                       swapped == 2 || swapped == 3 ? " (a big-endian file)" : "");
    }
    if (rd_u64(r, n_tensors, "n_tensors", err) != 0 || rd_u64(r, n_kv, "n_kv", err) != 0)
        return -1;
    if (check_count(r, *n_kv, GGUF_MIN_KV_BYTES, "n_kv", err) != 0 ||
        check_count(r, *n_tensors, GGUF_MIN_TENSOR_INFO_BYTES, "n_tensors", err) != 0)
        return -1;
    if (*n_kv > GGUF_MAX_KV)
        return ds_errf(err, "n_kv %" PRIu64 " exceeds the limit of %" PRIu64, *n_kv, GGUF_MAX_KV);
    if (*n_tensors > GGUF_MAX_TENSORS)
        return ds_errf(err, "n_tensors %" PRIu64 " exceeds the limit of %" PRIu64, *n_tensors,
                       GGUF_MAX_TENSORS);
    return 0;
}

/* gguf_parse without the label prefix on errors. */
static int parse(const uint8_t *data, size_t size, gguf_file *f, ds_err *err) {
    reader r = { .data = data, .size = size, .pos = 0 };
    uint64_t n_tensors, n_kv;
    if (read_header(&r, f, &n_tensors, &n_kv, err) != 0 || read_kvs(&r, f, n_kv, err) != 0 ||
        read_alignment(f, err) != 0)
        return -1;
    return read_tensors(&r, f, n_tensors, err);
}

int gguf_parse(const uint8_t *data, size_t size, const char *label, gguf_file *out, ds_err *err) {
    memset(out, 0, sizeof *out);
    if (!label) label = "gguf";
    if (parse(data, size, out, err) != 0) {
        gguf_close(out);
        return ds_err_wrap(err, "%s", label);
    }
    out->label = label;
    return 0;
}

int gguf_open(const char *path, gguf_file *out, ds_err *err) {
    ds_mapped map;
    memset(out, 0, sizeof *out);
    if (ds_map_file(path, &map, err) != 0) return -1;
    if (gguf_parse(map.data, map.size, map.path, out, err) != 0) {
        ds_unmap_file(&map);
        return -1;
    }
    out->map = map;
    return 0;
}

void gguf_close(gguf_file *f) {
    for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].key);
    for (uint64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    ds_unmap_file(&f->map);
    memset(f, 0, sizeof *f);
}

/* ---- lookup ---- */

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const ds_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

/* ---- typed getters ---- */

static int wrong_type(const gguf_file *f, const gguf_kv *kv, const char *expected, ds_err *err) {
    if (kv->type == GGUF_ARRAY)
        return ds_errf(err, "%s: key '%s' is an array of %s, expected %s", f->label, kv->key,
                       value_type_name(kv->arr_type), expected);
    return ds_errf(err, "%s: key '%s' has type %s, expected %s", f->label, kv->key,
                   value_type_name(kv->type), expected);
}

/* An integer kv or array element as int64; fails for UINT64 values above INT64_MAX. */
static int int_value(const gguf_kv *kv, int64_t *out) {
    if (is_signed_type(kv->type)) {
        *out = kv->v.i;
        return 0;
    }
    if (kv->v.u > INT64_MAX) return -1;
    *out = (int64_t)kv->v.u;
    return 0;
}

/* A numeric kv or array element as a double. */
static double number_value(const gguf_kv *kv) {
    if (is_float_type(kv->type)) return kv->v.f;
    if (is_signed_type(kv->type)) return (double)kv->v.i;
    return (double)kv->v.u;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (!is_int_type(kv->type)) return wrong_type(f, kv, "an integer", err);
    if (int_value(kv, out) != 0)
        return ds_errf(err, "%s: key '%s' = %" PRIu64 " does not fit in int64", f->label, key,
                       kv->v.u);
    return 1;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (!is_number_type(kv->type)) return wrong_type(f, kv, "a number", err);
    *out = number_value(kv);
    return 1;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return wrong_type(f, kv, "BOOL", err);
    *out = kv->v.u != 0;
    return 1;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_STRING) return wrong_type(f, kv, "STRING", err);
    *out = kv->v.s;
    return 1;
}

/* Finds an array whose element type passes `accept`; 0 absent, -1 (with message) otherwise. */
static int find_array(const gguf_file *f, const char *key, bool (*accept)(gguf_type),
                      const char *expected, const gguf_kv **out, ds_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY || !accept(kv->arr_type)) return wrong_type(f, kv, expected, err);
    *out = kv;
    return 1;
}

/* malloc for n elements (at least one, so an empty array is not NULL). */
static void *alloc_array(const gguf_file *f, const char *key, uint64_t n, size_t elem,
                         ds_err *err) {
    void *p = malloc((size_t)(n ? n : 1) * elem);
    if (!p) ds_errf(err, "%s: key '%s': out of memory for %" PRIu64 " elements", f->label, key, n);
    return p;
}

int gguf_get_str_array(const gguf_file *f, const char *key, gguf_str **out, uint64_t *n,
                       ds_err *err) {
    const gguf_kv *kv = NULL;
    int found = find_array(f, key, is_string_type, "an array of STRING", &kv, err);
    if (found != 1) return found;
    gguf_str *s = alloc_array(f, key, kv->arr_len, sizeof *s, err);
    if (!s) return -1;
    const uint8_t *p = kv->arr_data; /* every length was checked by gguf_parse */
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        s[i].len = le(p, 8);
        s[i].ptr = (const char *)p + 8;
        p += 8 + s[i].len;
    }
    *out = s;
    *n = kv->arr_len;
    return 1;
}

/* Element i of a scalar array, decoded into a kv-shaped value. */
static gguf_kv array_elem(const gguf_kv *kv, uint64_t i) {
    gguf_kv e = { .type = kv->arr_type };
    decode_scalar(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &e);
    return e;
}

int gguf_get_int_array(const gguf_file *f, const char *key, int64_t **out, uint64_t *n,
                       ds_err *err) {
    const gguf_kv *kv = NULL;
    int found = find_array(f, key, is_int_type, "an array of integers", &kv, err);
    if (found != 1) return found;
    int64_t *v = alloc_array(f, key, kv->arr_len, sizeof *v, err);
    if (!v) return -1;
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        gguf_kv e = array_elem(kv, i);
        if (int_value(&e, &v[i]) != 0) {
            free(v);
            return ds_errf(err, "%s: key '%s': element %" PRIu64 " = %" PRIu64 " does not fit "
                           "in int64", f->label, key, i, e.v.u);
        }
    }
    *out = v;
    *n = kv->arr_len;
    return 1;
}

int gguf_get_float_array(const gguf_file *f, const char *key, float **out, uint64_t *n,
                         ds_err *err) {
    const gguf_kv *kv = NULL;
    int found = find_array(f, key, is_number_type, "an array of numbers", &kv, err);
    if (found != 1) return found;
    float *v = alloc_array(f, key, kv->arr_len, sizeof *v, err);
    if (!v) return -1;
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        gguf_kv e = array_elem(kv, i);
        v[i] = (float)number_value(&e);
    }
    *out = v;
    *n = kv->arr_len;
    return 1;
}
