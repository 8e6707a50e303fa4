/* GGUF v3 writer. Each key/value is kept already encoded (key string, value type, value), so a
 * replaced key keeps its position and the header is written by concatenation; tensor offsets
 * are assigned when tensors are declared, so the header can be written before any data. */
#include "format/gguf_write.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_VERSION 3
#define DEFAULT_ALIGNMENT 32
#define MAX_GGML_ID 64

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

typedef struct kv_entry {
    char *key;
    buf enc; /* key string, u32 value type, value */
} kv_entry;

typedef struct tensor_entry {
    char *name;
    int ggml_type;
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    size_t nbytes;
    uint64_t offset; /* in the data section */
} tensor_entry;

struct gguf_writer {
    kv_entry *kv;
    size_t n_kv, cap_kv;
    tensor_entry *t;
    size_t n_t, cap_t;
    uint64_t data_size; /* data section bytes, padded */
    /* streaming state */
    size_t cur;         /* tensor being written */
    size_t cur_done;    /* its bytes written so far */
    bool header_written;
};

/* ---- encoding ---- */

static int buf_put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int put_le(buf *b, uint64_t v, size_t n) {
    uint8_t le[8];
    for (size_t i = 0; i < n; i++) le[i] = (uint8_t)(v >> (8 * i));
    return buf_put(b, le, n);
}

static int put_str(buf *b, const char *s, uint64_t len) {
    return put_le(b, len, 8) || buf_put(b, s, (size_t)len) ? -1 : 0;
}

static size_t scalar_bytes(gguf_type t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- key/values ---- */

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].enc.p);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static kv_entry *find_kv(const gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

bool gguf_writer_has(const gguf_writer *w, const char *key) { return find_kv(w, key) != NULL; }

/* The entry for `key` with its encoding reset to "key, type": new at the end, or in place. */
static kv_entry *begin_kv(gguf_writer *w, const char *key, gguf_type type, ds_err *err) {
    kv_entry *e = find_kv(w, key);
    if (!e) {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
            kv_entry *kv = realloc(w->kv, cap * sizeof *kv);
            if (!kv) goto oom;
            w->kv = kv;
            w->cap_kv = cap;
        }
        e = &w->kv[w->n_kv];
        *e = (kv_entry){.key = strdup(key)};
        if (!e->key) goto oom;
        w->n_kv++;
    }
    e->enc.n = 0;
    if (put_str(&e->enc, key, strlen(key)) || put_le(&e->enc, (uint64_t)type, 4)) goto oom;
    return e;
oom:
    ds_errf(err, "gguf writer: out of memory for key '%s'", key);
    return NULL;
}

static int scalar(gguf_writer *w, const char *key, gguf_type type, uint64_t bits, ds_err *err) {
    kv_entry *e = begin_kv(w, key, type, err);
    if (!e) return -1;
    if (put_le(&e->enc, bits, scalar_bytes(type))) return ds_errf(err, "gguf writer: out of memory");
    return 0;
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v, ds_err *err) {
    return scalar(w, key, GGUF_UINT32, v, err);
}

int gguf_set_i32(gguf_writer *w, const char *key, int32_t v, ds_err *err) {
    return scalar(w, key, GGUF_INT32, (uint32_t)v, err);
}

int gguf_set_f32(gguf_writer *w, const char *key, float v, ds_err *err) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return scalar(w, key, GGUF_FLOAT32, bits, err);
}

int gguf_set_bool(gguf_writer *w, const char *key, bool v, ds_err *err) {
    return scalar(w, key, GGUF_BOOL, v ? 1 : 0, err);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *s, size_t len, ds_err *err) {
    kv_entry *e = begin_kv(w, key, GGUF_STRING, err);
    if (!e) return -1;
    if (put_str(&e->enc, s, len)) return ds_errf(err, "gguf writer: out of memory");
    return 0;
}

/* Encodes an array's element type, count and n_bytes of already little-endian elements. */
static int raw_array(gguf_writer *w, const char *key, gguf_type elem, uint64_t n, const void *bytes,
                     size_t n_bytes, ds_err *err) {
    kv_entry *e = begin_kv(w, key, GGUF_ARRAY, err);
    if (!e) return -1;
    if (put_le(&e->enc, (uint64_t)elem, 4) || put_le(&e->enc, n, 8) || buf_put(&e->enc, bytes, n_bytes))
        return ds_errf(err, "gguf writer: out of memory for key '%s'", key);
    return 0;
}

int gguf_set_array(gguf_writer *w, const char *key, gguf_type elem, const void *data, uint64_t n,
                   ds_err *err) {
    size_t size = scalar_bytes(elem);
    if (size == 0) return ds_errf(err, "gguf writer: key '%s': arrays of type %d need gguf_set_str_array", key, (int)elem);
    if (n > SIZE_MAX / size) return ds_errf(err, "gguf writer: key '%s': array too large", key);
    /* x86-64 and aarch64 Linux are little-endian, so host order is file order */
    return raw_array(w, key, elem, n, data, (size_t)n * size, err);
}

int gguf_set_str_array(gguf_writer *w, const char *key, const gguf_str *items, uint64_t n, ds_err *err) {
    buf tmp = {0};
    for (uint64_t i = 0; i < n; i++)
        if (put_str(&tmp, items[i].ptr, items[i].len)) {
            free(tmp.p);
            return ds_errf(err, "gguf writer: out of memory for key '%s'", key);
        }
    int rc = raw_array(w, key, GGUF_STRING, n, tmp.p, tmp.n, err);
    free(tmp.p);
    return rc;
}

/* Bytes of a parsed array's elements (strings are length-prefixed, lengths already checked). */
static size_t array_bytes(const gguf_kv *kv) {
    if (kv->arr_type != GGUF_STRING) return (size_t)kv->arr_len * scalar_bytes(kv->arr_type);
    size_t n = 0;
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        uint64_t len = 0;
        for (int b = 7; b >= 0; b--) len = (len << 8) | kv->arr_data[n + (size_t)b];
        n += 8 + (size_t)len;
    }
    return n;
}

int gguf_set_kv(gguf_writer *w, const gguf_kv *kv, ds_err *err) {
    switch (kv->type) {
    case GGUF_STRING: return gguf_set_str(w, kv->key, kv->v.s.ptr, (size_t)kv->v.s.len, err);
    case GGUF_ARRAY: return raw_array(w, kv->key, kv->arr_type, kv->arr_len, kv->arr_data, array_bytes(kv), err);
    case GGUF_FLOAT32: return gguf_set_f32(w, kv->key, (float)kv->v.f, err);
    case GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &kv->v.f, 8);
        return scalar(w, kv->key, GGUF_FLOAT64, bits, err);
    }
    default:
        if (scalar_bytes(kv->type) == 0) return ds_errf(err, "gguf writer: key '%s' has unknown type %d", kv->key, (int)kv->type);
        return scalar(w, kv->key, kv->type, kv->v.u, err); /* signed values keep their two's complement bits */
    }
}

/* ---- tensors ---- */

int gguf_ggml_type_of(ds_dtype t) {
    for (uint32_t id = 0; id < MAX_GGML_ID; id++) {
        const char *name = gguf_ggml_type_name(id);
        if (name && ds_dtype_from_name(name) == (int)t) return (int)id;
    }
    return -1;
}

static uint32_t alignment(const gguf_writer *w) {
    const kv_entry *e = find_kv(w, "general.alignment");
    if (!e) return DEFAULT_ALIGNMENT;
    const uint8_t *v = e->enc.p + e->enc.n - 4; /* a u32 value ends the encoding */
    return (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

static uint64_t pad_to(uint64_t n, uint32_t align) { return (n + align - 1) / align * align; }

/* Re-lays out the data section (the alignment may have changed since tensors were added). */
static void layout(gguf_writer *w) {
    uint32_t align = alignment(w);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off = pad_to(off + w->t[i].nbytes, align);
    }
    w->data_size = off;
}

int gguf_add_tensor(gguf_writer *w, const char *name, ds_dtype type, int ndim, const int64_t *shape,
                    ds_err *err) {
    int id = gguf_ggml_type_of(type);
    if (id < 0) return ds_errf(err, "tensor '%s': type %s cannot be stored in GGUF", name, ds_dtype_name(type));
    if (ndim < 1 || ndim > DS_MAX_DIMS) return ds_errf(err, "tensor '%s': %d dimensions (1 to %d)", name, ndim, DS_MAX_DIMS);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return ds_errf(err, "tensor '%s' added twice", name);
    ds_tensor probe = {.type = type, .ndim = ndim};
    memcpy(probe.shape, shape, sizeof(int64_t) * (size_t)ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) return ds_errf(err, "tensor '%s': negative dimension", name);
    if (shape[ndim - 1] % ds_dtype_block_elems(type) != 0)
        return ds_errf(err, "tensor '%s': row length %lld is not a multiple of the %s block size %d", name,
                       (long long)shape[ndim - 1], ds_dtype_name(type), ds_dtype_block_elems(type));
    size_t nbytes;
    if (ds_dtype_bytes_for(type, ds_tensor_nelems(&probe), &nbytes, name, err)) return -1;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        tensor_entry *t = realloc(w->t, cap * sizeof *t);
        if (!t) return ds_errf(err, "gguf writer: out of memory");
        w->t = t;
        w->cap_t = cap;
    }
    tensor_entry *e = &w->t[w->n_t];
    *e = (tensor_entry){.name = strdup(name), .ggml_type = id, .ndim = ndim, .nbytes = nbytes};
    if (!e->name) return ds_errf(err, "gguf writer: out of memory");
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    w->n_t++;
    return 0;
}

/* Header bytes before the data section, unpadded. */
static uint64_t header_bytes(const gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) n += w->kv[i].enc.n;
    for (size_t i = 0; i < w->n_t; i++) n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].ndim + 4 + 8;
    return n;
}

uint64_t gguf_writer_file_size(const gguf_writer *w) {
    gguf_writer *mw = (gguf_writer *)w;
    layout(mw);
    return pad_to(header_bytes(w), alignment(w)) + w->data_size;
}

static int write_all(FILE *f, const void *p, size_t n, ds_err *err) {
    if (n && fwrite(p, 1, n, f) != n) return ds_errf(err, "write failed (disk full?)");
    return 0;
}

static int write_zeros(FILE *f, uint64_t n, ds_err *err) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (write_all(f, zeros, k, err)) return -1;
        n -= k;
    }
    return 0;
}

int gguf_write_header(gguf_writer *w, FILE *f, ds_err *err) {
    uint32_t align = alignment(w);
    if (align == 0 || (align & (align - 1)) != 0)
        return ds_errf(err, "gguf writer: general.alignment %" PRIu32 " is not a power of two", align);
    layout(w);
    buf h = {0};
    int rc = -1;
    if (buf_put(&h, "GGUF", 4) || put_le(&h, GGUF_VERSION, 4) || put_le(&h, w->n_t, 8) || put_le(&h, w->n_kv, 8))
        goto oom;
    for (size_t i = 0; i < w->n_kv; i++)
        if (buf_put(&h, w->kv[i].enc.p, w->kv[i].enc.n)) goto oom;
    for (size_t i = 0; i < w->n_t; i++) {
        const tensor_entry *t = &w->t[i];
        if (put_str(&h, t->name, strlen(t->name)) || put_le(&h, (uint64_t)t->ndim, 4)) goto oom;
        for (int d = t->ndim - 1; d >= 0; d--)
            if (put_le(&h, (uint64_t)t->shape[d], 8)) goto oom;
        if (put_le(&h, (uint64_t)t->ggml_type, 4) || put_le(&h, t->offset, 8)) goto oom;
    }
    uint64_t padded = pad_to(h.n, alignment(w));
    rc = write_all(f, h.p, h.n, err) || write_zeros(f, padded - h.n, err) ? -1 : 0;
    w->header_written = rc == 0;
    w->cur = 0;
    w->cur_done = 0;
    free(h.p);
    return rc;
oom:
    free(h.p);
    return ds_errf(err, "gguf writer: out of memory for the header");
}

/* Moves past tensors that are complete (zero-sized ones included), writing their padding. */
static int advance(gguf_writer *w, FILE *f, ds_err *err) {
    uint32_t align = alignment(w);
    while (w->cur < w->n_t && w->cur_done == w->t[w->cur].nbytes) {
        const tensor_entry *t = &w->t[w->cur];
        if (write_zeros(f, pad_to(t->nbytes, align) - t->nbytes, err)) return -1;
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int gguf_write_data(gguf_writer *w, FILE *f, const void *data, size_t n, ds_err *err) {
    if (!w->header_written) return ds_errf(err, "gguf writer: data before the header");
    const uint8_t *p = data;
    while (n > 0) {
        if (advance(w, f, err)) return -1;
        if (w->cur >= w->n_t) return ds_errf(err, "gguf writer: more data than the declared tensors hold");
        size_t room = w->t[w->cur].nbytes - w->cur_done, k = n < room ? n : room;
        if (write_all(f, p, k, err)) return -1;
        w->cur_done += k;
        p += k;
        n -= k;
    }
    return advance(w, f, err);
}

int gguf_write_finish(gguf_writer *w, FILE *f, ds_err *err) {
    if (!w->header_written) return ds_errf(err, "gguf writer: finish before the header");
    if (advance(w, f, err)) return -1;
    if (w->cur < w->n_t)
        return ds_errf(err, "gguf writer: tensor '%s' has %zu of its %zu bytes", w->t[w->cur].name, w->cur_done,
                       w->t[w->cur].nbytes);
    if (fflush(f) != 0) return ds_errf(err, "write failed (disk full?)");
    return 0;
}
