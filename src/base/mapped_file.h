/* Read-only memory mapping of a whole file. Weights are used in place from the mapping. */
#ifndef DS_BASE_MAPPED_FILE_H
#define DS_BASE_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct ds_mapped {
    const uint8_t *data; /* the file's bytes (NULL for an empty file) */
    size_t size;         /* file size in bytes */
    char *path;          /* owned copy of the path, for messages */
} ds_mapped;

/* Maps `path` read-only. On failure the message names the path and the OS error. */
int ds_map_file(const char *path, ds_mapped *out, ds_err *err);

/* Unmaps and frees; safe on a zeroed struct. */
void ds_unmap_file(ds_mapped *m);

#endif
