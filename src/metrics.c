/* metrics.csv: see include/minienc/metrics.h. */
#include "minienc/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"

#define METRICS_COLS 7 /* fields of ME_METRICS_HEADER */

/* ================================ writing ================================ */

static me_status log_add(me_metrics_log *log, const char *text, size_t n, me_error *err) {
    if (log->len + n + 1 > log->cap) {
        size_t cap = log->cap ? log->cap : 4096;
        while (cap < log->len + n + 1) cap *= 2;
        char *s = realloc(log->text, cap);
        if (!s) return me_error_set(err, ME_ERR_NOMEM, "out of memory for metrics");
        log->text = s;
        log->cap = cap;
    }
    memcpy(log->text + log->len, text, n);
    log->len += n;
    log->text[log->len] = '\0';
    return ME_OK;
}

me_status me_metrics_log_init(me_metrics_log *log, me_error *err) {
    memset(log, 0, sizeof *log);
    return log_add(log, ME_METRICS_HEADER "\n", strlen(ME_METRICS_HEADER "\n"), err);
}

/* A valid column: %.9g, or nothing without an evaluation. */
static int put_optional(char *buf, size_t cap, double v, const char *sep) {
    return isnan(v) ? snprintf(buf, cap, "%s", sep) : snprintf(buf, cap, "%.9g%s", v, sep);
}

me_status me_metrics_log_append(me_metrics_log *log, const me_metrics_row *r, me_error *err) {
    char row[512];
    int n = snprintf(row, sizeof row, "%" PRId64 ",%.9g,%.9g,%.9g,%.6g,", r->step, r->loss, r->lr, r->grad_norm,
                     r->tokens_per_s);
    n += put_optional(row + n, sizeof row - (size_t)n, r->valid_loss, ",");
    n += put_optional(row + n, sizeof row - (size_t)n, r->valid_acc, "\n");
    return log_add(log, row, (size_t)n, err);
}

me_status me_metrics_log_write(const me_metrics_log *log, const char *path, me_error *err) {
    return me_file_write_atomic(path, log->text, log->len, err);
}

void me_metrics_log_free(me_metrics_log *log) {
    free(log->text);
    memset(log, 0, sizeof *log);
}

/* ================================ reading ================================ */

/* Name of column c: its field of the header. */
static const char *column_name(int c, char *buf, size_t cap) {
    const char *s = ME_METRICS_HEADER;
    for (int k = 0; k < c; k++) s = strchr(s, ',') + 1;
    size_t n = strcspn(s, ",");
    snprintf(buf, cap, "%.*s", (int)n, s);
    return buf;
}

void me_metrics_free(me_metrics *m) {
    free(m->step); /* one block holds every column */
    memset(m, 0, sizeof *m);
}

me_metrics_row me_metrics_row_at(const me_metrics *m, size_t i) {
    me_metrics_row r = {(int64_t)m->step[i], m->loss[i],       m->lr[i],       m->grad_norm[i],
                        m->tokens_per_s[i],  m->valid_loss[i], m->valid_acc[i]};
    return r;
}

/* A whole-field decimal number as printf's %g writes it (digits, '.', exponent; "nan", "inf" and their
 * negatives): no spaces, no hex, nothing left over. */
static int parse_number(const char *s, double *v) {
    const char *t = s[0] == '-' ? s + 1 : s;
    int special = strcmp(t, "nan") == 0 || strcmp(t, "inf") == 0;
    if (!special) {
        if (!(*t >= '0' && *t <= '9') && *t != '.') return 0;
        for (const char *q = t; *q; q++)
            if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || (errno == ERANGE && fabs(x) > 1.0)) return 0;
    *v = x;
    return 1;
}

static int parse_step(const char *s, long long *v) {
    if (*s < '0' || *s > '9') return 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno) return 0;
    *v = x;
    return 1;
}

me_status me_metrics_read(me_metrics *m, const char *path, me_error *err) {
    memset(m, 0, sizeof *m);
    char *text;
    size_t len = 0;
    me_status st = me_file_read_all(path, "a CSV file", &text, &len, err);
    if (st) return st;
    if (memchr(text, '\0', len)) {
        free(text);
        return me_error_set(err, ME_ERR_FORMAT, "%s: contains a NUL byte, expected CSV text", path);
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    double *block = calloc(lines * METRICS_COLS + 1, sizeof(double));
    if (!block) {
        free(text);
        return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory for %zu rows", path, lines);
    }
    double *col[METRICS_COLS];
    for (int c = 0; c < METRICS_COLS; c++) col[c] = block + (size_t)c * lines;

    char *p = text;
    size_t line = 0, rows = 0;
    long long prev_step = -1;
    while (*p) {
        line++;
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = '\0';
        size_t ll = strlen(p);
        if (ll > 0 && p[ll - 1] == '\r') p[--ll] = '\0';
        if (line == 1) {
            if (strcmp(p, ME_METRICS_HEADER) != 0) {
                st = me_error_set(err, ME_ERR_FORMAT, "%s:1: header is '%.80s', expected '%s'", path, p,
                                  ME_METRICS_HEADER);
                goto fail;
            }
            p = next;
            continue;
        }
        if (ll == 0) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s:%zu: empty line, expected %d comma-separated fields", path, line,
                              METRICS_COLS);
            goto fail;
        }
        char *field[METRICS_COLS];
        int nf = 0;
        for (char *q = p;;) {
            char *comma = strchr(q, ',');
            if (nf < METRICS_COLS) field[nf] = q;
            nf++;
            if (!comma) break;
            *comma = '\0';
            q = comma + 1;
        }
        if (nf != METRICS_COLS) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s:%zu: %d fields, expected %d (%s)", path, line, nf, METRICS_COLS,
                              ME_METRICS_HEADER);
            goto fail;
        }
        long long step;
        if (!parse_step(field[0], &step)) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s:%zu: step '%.40s' is not a non-negative integer", path, line,
                              field[0]);
            goto fail;
        }
        if (step <= prev_step) {
            st = me_error_set(err, ME_ERR_FORMAT, "%s:%zu: step %lld after step %lld, expected increasing steps", path,
                              line, step, prev_step);
            goto fail;
        }
        prev_step = step;
        col[0][rows] = (double)step;
        for (int c = 1; c < METRICS_COLS; c++) {
            int optional = c >= 5; /* valid_loss, valid_acc: empty without an evaluation */
            if (optional && field[c][0] == '\0') {
                col[c][rows] = NAN;
                continue;
            }
            if (!parse_number(field[c], &col[c][rows])) {
                char name[32];
                st = me_error_set(err, ME_ERR_FORMAT, "%s:%zu: %s '%.40s' is not a number%s", path, line,
                                  column_name(c, name, sizeof name), field[c], optional ? " (or empty)" : "");
                goto fail;
            }
        }
        rows++;
        p = next;
    }
    if (line == 0) {
        st = me_error_set(err, ME_ERR_FORMAT, "%s:1: empty file, expected the header '%s'", path, ME_METRICS_HEADER);
        goto fail;
    }
    free(text);
    m->n = rows;
    m->step = col[0];
    m->loss = col[1];
    m->lr = col[2];
    m->grad_norm = col[3];
    m->tokens_per_s = col[4];
    m->valid_loss = col[5];
    m->valid_acc = col[6];
    return ME_OK;
fail:
    free(text);
    free(block);
    return st;
}
