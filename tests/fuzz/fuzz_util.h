/* Helpers shared by the fuzz targets. */
#ifndef MINIENC_FUZZ_UTIL_H
#define MINIENC_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A check the code under test must satisfy: abort (a crash libFuzzer reports) when it does not. */
#define FUZZ_CHECK(cond)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

/* The modules that only read paths get the input through one in-memory file per process, reached as
 * /proc/self/fd/N: nothing touches the disk and nothing is left behind. Returns the path. */
static inline const char *fuzz_put_file(const void *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("minienc-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    return path;
}

#endif
