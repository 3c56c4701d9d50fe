/* The file module: everything minienc does to the file system beyond reading a stream — atomic
 * writes, whole-file reads, directories. Private (not API). Every path in an error message is the
 * caller's path as given. */
#ifndef MINIENC_FILE_H
#define MINIENC_FILE_H

#include <stddef.h>

#include "minienc/status.h"

typedef struct {
    const void *data;
    size_t size;
} me_file_chunk;

/* Writes chunks[0..n) in order to PATH.tmp.<pid>, flushes and fsyncs it, renames it over PATH and
 * syncs the folder, so a crash leaves the old file or the new one, never a torn one. On success also
 * removes PATH.tmp.<pid> files left by writers that were killed (dead pids only). ME_ERR_IO names
 * PATH, the temporary file and the failing step. */
me_status me_file_write_chunks(const char *path, const me_file_chunk *chunks, int n, me_error *err);

/* One buffer: me_file_write_chunks with a single chunk. */
me_status me_file_write_atomic(const char *path, const void *data, size_t size, me_error *err);

/* Reads a whole file into *out (malloc'd, NUL-terminated one byte past *size; the caller frees it).
 * Reads to end of file rather than trusting st_size, so pipes work too; a file that is not a regular
 * one and still goes on after 1 GiB (/dev/zero) is refused with ME_ERR_FORMAT "... expected EXPECTED"
 * (e.g. "a safetensors file"). Errors: "PATH: cannot open: ..." and a directory (ME_ERR_NOFILE: the
 * input is missing or unreadable), "PATH: cannot read: ..." (ME_ERR_IO), ME_ERR_NOMEM. */
me_status me_file_read_all(const char *path, const char *expected, char **out, size_t *size, me_error *err);

typedef enum {
    ME_PATH_ABSENT = 0,    /* nothing there */
    ME_PATH_EMPTY_DIR,     /* a directory holding nothing but . and .. */
    ME_PATH_NONEMPTY_DIR,  /* a directory with entries */
    ME_PATH_OTHER          /* something else exists there (a file, an unreadable directory) */
} me_path_kind;

/* What is at path. */
me_path_kind me_file_probe(const char *path);

/* mkdir -p: creates path and its missing parents (mode 0777 before umask). ME_ERR_IO names the
 * component that could not be made; an existing non-directory at path is ME_ERR_IO too. */
me_status me_file_mkdir_p(const char *path, me_error *err);

#endif
