/* metrics.csv, a run's per-step training log: its header, its row format, a writer and a strict reader.
 * Training writes it (and reloads it when resuming); reports read it.
 *
 * Format: the header line ME_METRICS_HEADER, then one row per step:
 *     step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc
 * step an integer that increases from row to row; loss, lr and grad_norm as printf's %.9g,
 * tokens_per_s as %.6g; valid_loss and valid_acc as %.9g at evaluation steps, empty otherwise. Lines end
 * with "\n". */
#ifndef MINIENC_METRICS_H
#define MINIENC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/status.h"

#define ME_METRICS_HEADER "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc"

/* One row. valid_loss / valid_acc are NaN on a step without an evaluation (written as empty fields). */
typedef struct {
    int64_t step;
    double loss, lr, grad_norm, tokens_per_s;
    double valid_loss, valid_acc;
} me_metrics_row;

/* ---- writing ---------------------------------------------------------------------------------------- */

/* The file's text, built row by row in memory and written whole (atomically) when the run saves. */
typedef struct {
    char *text; /* NUL-terminated, owned */
    size_t len, cap;
} me_metrics_log;

/* Starts a log holding the header line. Release with me_metrics_log_free. */
me_status me_metrics_log_init(me_metrics_log *log, me_error *err);
/* Appends one row in the format above. ME_ERR_NOMEM when the text cannot grow. */
me_status me_metrics_log_append(me_metrics_log *log, const me_metrics_row *row, me_error *err);
/* Writes the log to path atomically (temporary file, fsync, rename). */
me_status me_metrics_log_write(const me_metrics_log *log, const char *path, me_error *err);
void me_metrics_log_free(me_metrics_log *log);

/* ---- reading ---------------------------------------------------------------------------------------- */

/* The columns of a metrics.csv, each [n]. valid_loss/valid_acc are NaN where the field is empty. */
typedef struct {
    size_t n;
    double *step, *loss, *lr, *grad_norm, *tokens_per_s, *valid_loss, *valid_acc; /* [n] each, owned */
} me_metrics;

/* Reads metrics.csv strictly: the exact header, 7 comma-separated fields per row, an integer step that
 * increases from row to row, numbers in the five always-present columns, a number or nothing in the
 * two valid columns (decimal as printf's %g writes it, including nan and inf). A trailing newline is
 * optional; CRLF line ends are accepted. Any other content is refused with ME_ERR_FORMAT and
 * "PATH:LINE: what is wrong, what is expected". A missing file is ME_ERR_IO. Release with
 * me_metrics_free. */
me_status me_metrics_read(me_metrics *m, const char *path, me_error *err);
void me_metrics_free(me_metrics *m);

/* Row i of m (i < m->n). */
me_metrics_row me_metrics_row_at(const me_metrics *m, size_t i);

#endif
