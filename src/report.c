/* Run reports: what the inspect analysis (report_inspect.c) and the charts (report_plots.c) share: the
 * run directory. */
#include "minienc/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report_internal.h"

char *report_join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, file);
    return s;
}

me_status report_run_file(const char *run_dir, const char *file, char **path, me_error *err) {
    struct stat sb;
    *path = NULL;
    if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return me_error_set(err, ME_ERR_USAGE, "%s: not a directory, expected a run directory written by 'minienc train'",
                            run_dir);
    char *p = report_join(run_dir, file);
    if (!p) return me_error_set(err, ME_ERR_NOMEM, "out of memory");
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        me_error_set(err, ME_ERR_USAGE, "%s: missing, expected a run directory written by 'minienc train'", p);
        free(p);
        return ME_ERR_USAGE;
    }
    *path = p;
    return ME_OK;
}

void me_report_run_name(const char *run_dir, char *buf, size_t cap) {
    if (!cap) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", run_dir && run_dir[0] ? run_dir : ".");
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
    const char *base = strrchr(tmp, '/');
    base = base && base[1] ? base + 1 : tmp;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        char *real = realpath(tmp, NULL);
        if (real) {
            const char *rb = strrchr(real, '/');
            snprintf(buf, cap, "%s", rb && rb[1] ? rb + 1 : real);
            free(real);
            return;
        }
    }
    snprintf(buf, cap, "%s", base);
}
