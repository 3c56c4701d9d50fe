/* minienc status codes and the caller-owned error context.
 *
 * Every function that can fail returns an me_status and, when given a non-NULL me_error, fills it
 * with one human-readable line: "WHERE: what is wrong, what is expected" (WHERE is FILE:LINE,
 * FILE:LINE:COLUMN, a tensor name or a config key). There is no global error state. */
#ifndef MINIENC_STATUS_H
#define MINIENC_STATUS_H

#include <stdarg.h>

typedef enum {
    ME_OK = 0,
    ME_ERR_USAGE,       /* bad command-line usage                      -> exit 2 */
    ME_ERR_CONFIG,      /* bad config value, key or size               -> exit 2 */
    ME_ERR_FORMAT,      /* malformed file (safetensors, data, csv)     -> exit 2 */
    ME_ERR_SHAPE,       /* a tensor's shape disagrees with the model   -> exit 2 */
    ME_ERR_DATA,        /* bad data file content                       -> exit 2 */
    ME_ERR_EXISTS,      /* refusing to overwrite an existing run       -> exit 2 */
    ME_ERR_NOFILE,      /* an input file is missing or unreadable      -> exit 2 */
    ME_ERR_NOMEM,       /* allocation failed                           -> exit 1 */
    ME_ERR_IO,          /* read/write/rename failed                    -> exit 1 */
    ME_ERR_NUMERIC,     /* NaN or Inf in loss or gradients             -> exit 1 */
    ME_ERR_INTERRUPTED, /* stopped by a signal, state saved            -> exit 130 */
    ME_ERR_CHECK,       /* a self-check failed (count formula != live) -> exit 1 */
    ME_ERR_FONT         /* the chart font is missing or unusable, no charts drawn -> exit 1
                           (training reports it as a warning and goes on) */
} me_status;

#define ME_ERROR_MSG_MAX 1024

typedef struct {
    me_status status;
    char msg[ME_ERROR_MSG_MAX];
} me_error;

/* A short name for the status ("ok", "config", "io", ...). Never NULL. */
const char *me_status_string(me_status s);

/* The process exit code the CLI uses for a status: 0 ok, 2 bad input, 130 interrupted, 1 otherwise. */
int me_status_exit_code(me_status s);

/* Formats msg into err (if err is non-NULL) and returns st, so that callers can write
 * `return me_error_set(err, ME_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
me_status me_error_set(me_error *err, me_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "prefix: " to an already set message (used to add a file or tensor name on the way up). */
me_status me_error_prefix(me_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
