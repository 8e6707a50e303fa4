/* Hugging Face weights: a single model.safetensors or the shards listed by
 * model.safetensors.index.json, and binding tensors by name with shape checks. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_util.h"
#include "model/model_internal.h"



void hf_storage_free(void *p) {
    hf_storage *s = p;
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        st_close(&s->files[i]);
        free(s->names[i]);
    }
    free(s->files);
    free(s->names);
    free(s);
}

int hf_path_join(char *out, size_t cap, const char *dir, const char *name, ds_err *err) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap) return ds_errf(err, "%s/%s: path too long", dir, name);
    return 0;
}

static int add_shard(hf_storage *s, const char *dir, const char *name, ds_err *err) {
    for (int i = 0; i < s->n_files; i++)
        if (!strcmp(s->names[i], name)) return 0;
    if (strchr(name, '/') || !strcmp(name, "..") || !*name)
        return ds_errf(err, "%s/model.safetensors.index.json: shard name '%s' must be a plain file name", dir, name);
    char path[PATH_MAX];
    if (hf_path_join(path, sizeof path, dir, name, err)) return -1;
    st_file *files = realloc(s->files, sizeof *files * (size_t)(s->n_files + 1));
    if (!files) return ds_errf(err, "out of memory");
    s->files = files;
    char **names = realloc(s->names, sizeof *names * (size_t)(s->n_files + 1));
    if (!names) return ds_errf(err, "out of memory");
    s->names = names;
    if (st_open(path, &s->files[s->n_files], err)) return -1;
    s->names[s->n_files++] = strdup(name);
    return 0;
}

const ds_tensor *hf_find(const hf_storage *s, const char *name) {
    for (int i = 0; i < s->n_files; i++) {
        const ds_tensor *t = st_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* Opens model.safetensors, or every shard of model.safetensors.index.json, checking that each
 * tensor the index lists is in the file it names. */
int hf_open_weights(const char *dir, hf_storage *s, ds_err *err) {
    char path[PATH_MAX];
    if (hf_path_join(path, sizeof path, dir, "model.safetensors.index.json", err)) return -1;
    json_t *idx;
    int rc = ds_json_load_file(path, true, &idx, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (hf_path_join(path, sizeof path, dir, "model.safetensors", err)) return -1;
        FILE *f = fopen(path, "rb");
        if (!f)
            return ds_errf(err, "%s: no model.safetensors or model.safetensors.index.json (legacy "
                           "pytorch_model.bin checkpoints are not supported yet)", dir);
        fclose(f);
        return add_shard(s, dir, "model.safetensors", err);
    }
    json_t *map = json_object_get(idx, "weight_map");
    if (!json_is_object(map)) {
        json_decref(idx);
        return ds_errf(err, "%s: field 'weight_map' must be an object", path);
    }
    const char *tensor;
    json_t *file;
    json_object_foreach(map, tensor, file) {
        if (!json_is_string(file)) {
            json_decref(idx);
            return ds_errf(err, "%s: weight_map entry '%s' must be a file name", path, tensor);
        }
        if (add_shard(s, dir, json_string_value(file), err)) {
            json_decref(idx);
            return -1;
        }
        for (int i = 0; i < s->n_files; i++) {
            if (strcmp(s->names[i], json_string_value(file)) != 0) continue;
            if (!st_find(&s->files[i], tensor)) {
                ds_errf(err, "%s: lists tensor '%s' in %s, which does not contain it", path, tensor, s->names[i]);
                json_decref(idx);
                return -1;
            }
        }
    }
    json_decref(idx);
    if (s->n_files == 0) return ds_errf(err, "%s: weight_map is empty", path);
    return 0;
}

/* An F8_E4M3 weight X.weight needs X.weight_scale_inv: float32 [ceil(rows/128), ceil(cols/128)],
 * multiplied into its 128×128 blocks (the name says "inv" but the value is a multiplier). The
 * scales are copied so they are aligned and in f32 whatever their stored type. */
static int bind_fp8_scale(ds_model *m, const hf_storage *s, const char *dir, const char *name, ds_tensor *w,
                          ds_err *err) {
    char scale_name[512];
    if ((size_t)snprintf(scale_name, sizeof scale_name, "%s_scale_inv", name) >= sizeof scale_name)
        return ds_errf(err, "%s: tensor name too long", dir);
    const ds_tensor *sc = hf_find(s, scale_name);
    if (!sc) return ds_errf(err, "%s: tensor '%s' is F8_E4M3 but '%s' is missing", dir, name, scale_name);
    const int64_t br = (w->shape[0] + DS_FP8_BLOCK - 1) / DS_FP8_BLOCK, bc = (w->shape[1] + DS_FP8_BLOCK - 1) / DS_FP8_BLOCK;
    if (sc->ndim != 2 || sc->shape[0] != br || sc->shape[1] != bc)
        return ds_errf(err, "%s: tensor '%s' should have shape [%lld, %lld] (128x128 blocks of %s [%lld, %lld])", dir,
                       scale_name, (long long)br, (long long)bc, name, (long long)w->shape[0], (long long)w->shape[1]);
    ds_tensor flat = *sc;
    flat.ndim = 1;
    flat.shape[0] = br * bc;
    float *copy;
    if (ds_model_own_f32(m, &flat, br * bc, &copy, err)) return ds_err_wrap(err, "%s", dir);
    w->scale = copy;
    w->scale_cols = bc;
    return 0;
}

int hf_bind_weight(ds_model *m, const hf_storage *s, const char *dir, const char *name, int64_t rows, int64_t cols,
                       ds_tensor *out, ds_err *err) {
    const ds_tensor *t = hf_find(s, name);
    if (!t) return ds_errf(err, "%s: missing tensor '%s'", dir, name);
    *out = *t;
    if (ds_check_weight(t, rows, cols, dir, err)) return -1;
    return t->type == DS_F8_E4M3 ? bind_fp8_scale(m, s, dir, name, out, err) : 0;
}

int hf_bind_vector(ds_model *m, const hf_storage *s, const char *dir, const char *name, int64_t n,
                       float **out, ds_err *err) {
    const ds_tensor *t = hf_find(s, name);
    if (!t) return ds_errf(err, "%s: missing tensor '%s'", dir, name);
    if (ds_model_own_f32(m, t, n, out, err)) return ds_err_wrap(err, "%s", dir);
    return 0;
}

