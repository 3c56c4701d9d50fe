/* Private to the report module (src/report*.c). */
#ifndef MINIENC_REPORT_INTERNAL_H
#define MINIENC_REPORT_INTERNAL_H

#include <stddef.h>

#include "minienc/status.h"

/* "DIR/FILE", malloc'ed (the caller frees it); NULL when out of memory. */
char *report_join(const char *dir, const char *file);

/* A run directory must exist and hold the regular file `file`; anything else is a usage error
 * (ME_ERR_USAGE naming what is missing), not an I/O failure. *path receives "RUN_DIR/FILE" (malloc'ed,
 * the caller frees it) on success, NULL otherwise. */
me_status report_run_file(const char *run_dir, const char *file, char **path, me_error *err);

/* Indices of the k dimensions with the largest |last − first| (ties: lower index first), into idx[k]. */
void report_top_moved(const float *first, const float *last, size_t dim, size_t k, size_t *idx);

#endif
