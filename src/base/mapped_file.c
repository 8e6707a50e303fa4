#include "base/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ds_map_file(const char *path, ds_mapped *out, ds_err *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ds_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ds_errf(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ds_errf(err, "%s: not a regular file", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        /* Pre-fault the page tables when the file comfortably fits in memory: decode touches
         * every weight page, and MoE models touch rarely used experts late, one minor fault per
         * 4 KiB page otherwise. */
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        int populate = pages > 0 && page > 0 && out->size < (size_t)pages * (size_t)page / 2 ? MAP_POPULATE : 0;
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE | populate, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ds_errf(err, "%s: cannot mmap %zu bytes: %s", path, out->size, strerror(e));
        }
        out->data = p;
        /* Inference reads every weight on every token: start reading ahead now. */
        madvise(p, out->size, MADV_WILLNEED);
    }
    close(fd);
    out->path = strdup(path);
    return 0;
}

void ds_unmap_file(ds_mapped *m) {
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}
