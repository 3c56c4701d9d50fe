#include "minienc/status.h"

#include <stdio.h>
#include <string.h>

const char *me_status_string(me_status s) {
    switch (s) {
    case ME_OK: return "ok";
    case ME_ERR_USAGE: return "usage";
    case ME_ERR_CONFIG: return "config";
    case ME_ERR_FORMAT: return "format";
    case ME_ERR_SHAPE: return "shape";
    case ME_ERR_DATA: return "data";
    case ME_ERR_EXISTS: return "exists";
    case ME_ERR_NOFILE: return "no such file";
    case ME_ERR_NOMEM: return "out of memory";
    case ME_ERR_IO: return "io";
    case ME_ERR_NUMERIC: return "numeric";
    case ME_ERR_INTERRUPTED: return "interrupted";
    case ME_ERR_CHECK: return "check";
    case ME_ERR_FONT: return "font";
    }
    return "unknown";
}

int me_status_exit_code(me_status s) {
    switch (s) {
    case ME_OK: return 0;
    case ME_ERR_USAGE:
    case ME_ERR_CONFIG:
    case ME_ERR_FORMAT:
    case ME_ERR_SHAPE:
    case ME_ERR_DATA:
    case ME_ERR_EXISTS:
    case ME_ERR_NOFILE: return 2;
    case ME_ERR_INTERRUPTED: return 130;
    default: return 1;
    }
}

me_status me_error_set(me_error *err, me_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

me_status me_error_prefix(me_error *err, const char *fmt, ...) {
    if (!err) return ME_OK;
    char prefix[ME_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Truncation of an over-long message is acceptable: it is for people, not parsed. */
    char joined[ME_ERROR_MSG_MAX];
    size_t lp = strnlen(prefix, sizeof joined - 3);
    memcpy(joined, prefix, lp);
    joined[lp] = ':';
    joined[lp + 1] = ' ';
    size_t rest = sizeof joined - lp - 3;
    size_t lm = strnlen(err->msg, rest);
    memcpy(joined + lp + 2, err->msg, lm);
    joined[lp + 2 + lm] = '\0';
    memcpy(err->msg, joined, sizeof joined);
    return err->status;
}
