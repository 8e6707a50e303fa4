/* A GGUF source: every key/value is carried over as it is (tokenizer.* included) except the
 * file type and quantization version, which the recipe sets; every tensor keeps its name and
 * shape, weight matrices get the recipe's types and everything else keeps its stored type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"

int cv_plan_gguf(cv_plan *p, const char *path, ds_err *err) {
    if (!(p->gguf = calloc(1, sizeof *p->gguf))) return ds_errf(err, "out of memory");
    if (gguf_open(path, p->gguf, err)) {
        free(p->gguf);
        p->gguf = NULL;
        return -1;
    }
    const gguf_file *g = p->gguf;
    gguf_str arch;
    int rc = gguf_get_str(g, "general.architecture", &arch, err);
    if (rc < 0) return -1;
    if (rc == 0) return ds_errf(err, "%s: missing required key 'general.architecture'", path);
    char key[128];
    snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
    int64_t n_layer;
    if ((rc = gguf_get_int(g, key, &n_layer, err)) < 0) return -1;
    if (rc == 0) return ds_errf(err, "%s: missing required key '%s'", path, key);
    if (n_layer <= 0 || n_layer > 1 << 20) return ds_errf(err, "%s: key '%s' is out of range (%lld)", path, key, (long long)n_layer);
    p->n_layer = (int)n_layer;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_set_kv(p->w, &g->kv[i], err)) return ds_err_wrap(err, "%s", path);
    if (g->n_tensors == 0) return ds_errf(err, "%s: the file has no tensors (a vocabulary-only GGUF?)", path);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const ds_tensor *s = &g->tensors[i];
        if (cv_plan_add(p, s->name, s->ndim, s->shape, s, 1, err)) return ds_err_wrap(err, "%s", path);
        p->t[p->n - 1].keep = s->type;
    }
    p->tied = gguf_find_tensor(g, "output.weight") == NULL;
    return 0;
}
