/* libFuzzer target for the safetensors parser: parse arbitrary bytes, then touch every byte
 * of every tensor so that a tensor pointing outside the input is caught by ASan. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/safetensors.h"

static volatile uint8_t g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    ds_err err;
    if (st_parse(data, size, "fuzz.safetensors", &f, &err) != 0) return 0;
    uint8_t acc = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const ds_tensor *t = &f.tensors[i];
        const uint8_t *p = t->data;
        for (size_t j = 0; j < t->nbytes; j++) acc ^= p[j];
        acc ^= (uint8_t)strlen(t->name);
        if (st_find(&f, t->name) != t) __builtin_trap();
    }
    g_sink = acc;
    st_close(&f);
    return 0;
}
