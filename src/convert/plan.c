/* The conversion plan (output tensors and their sources) and ds_quantize_model, which builds
 * one from the source, chooses the types and writes the file. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert_internal.h"

#define GGML_QUANTIZATION_VERSION 2

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int cv_plan_add(cv_plan *p, const char *name, int ndim, const int64_t *shape, const ds_tensor *parts,
                int n_parts, ds_err *err) {
    if (ndim < 1 || ndim > DS_MAX_DIMS) return ds_errf(err, "tensor '%s' has %d dimensions (1 to %d)", name, ndim, DS_MAX_DIMS);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        cv_tensor *t = realloc(p->t, sizeof *t * (size_t)cap);
        if (!t) return ds_errf(err, "out of memory");
        p->t = t;
        p->cap = cap;
    }
    cv_tensor *t = &p->t[p->n];
    *t = (cv_tensor){.ndim = ndim, .n_parts = n_parts, .keep = DS_F32};
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    if (n_parts == 1) t->single = parts[0];
    else t->parts = parts;
    /* llama.cpp quantizes 2-D and stacked 3-D weights, never norms or the MoE router */
    t->quantizable = ndim >= 2 && ends_with(name, ".weight") && !strstr(name, "_norm.weight") &&
                     !strstr(name, "ffn_gate_inp.weight");
    const int64_t row = shape[ndim - 1];
    int64_t elems = 1;
    for (int d = 0; d < ndim; d++) elems *= shape[d];
    if (row <= 0 || n_parts < 1 || (elems / row) % n_parts != 0)
        return ds_errf(err, "tensor '%s': %d parts cannot make shape with rows of %lld", name, n_parts, (long long)row);
    for (int i = 0; i < n_parts; i++) {
        const ds_tensor *s = cv_part(t, i);
        if (s->ndim < 1 || s->shape[s->ndim - 1] != row || ds_tensor_nelems(s) != elems / n_parts)
            return ds_errf(err, "tensor '%s': source '%s' has a different shape", name, s->name ? s->name : "?");
    }
    if (!(t->name = strdup(name))) return ds_errf(err, "out of memory");
    if (!t->parts) t->single.name = t->name;
    p->n++;
    return 0;
}

void cv_plan_free(cv_plan *p) {
    for (int i = 0; i < p->n; i++) free(p->t[i].name);
    free(p->t);
    gguf_writer_free(p->w);
    ds_model_free(p->model);
    if (p->gguf) gguf_close(p->gguf);
    free(p->gguf);
    free(p->rope_freqs);
    memset(p, 0, sizeof *p);
}

int ds_quantize_model(const char *src, FILE *out, const ds_quantize_opts *o, ds_err *err) {
    struct stat st;
    if (stat(src, &st) != 0) return ds_errf(err, "%s: no such file or directory", src);
    cv_plan p = {0};
    int rc = -1;
    if (!(p.w = gguf_writer_new())) {
        ds_errf(err, "out of memory");
        goto done;
    }
    if (S_ISDIR(st.st_mode) ? cv_plan_hf(&p, src, o->log, err) : cv_plan_gguf(&p, src, err)) goto done;
    if (gguf_set_u32(p.w, "general.quantization_version", GGML_QUANTIZATION_VERSION, err) ||
        gguf_set_u32(p.w, "general.file_type", o->recipe.file_type, err))
        goto done;
    cv_choose_types(&p, o);
    rc = cv_write(&p, out, o, err);
done:
    cv_plan_free(&p);
    return rc;
}
