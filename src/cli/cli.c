#include "cli.h"

#include "minienc/ops.h"
#include "minienc/predict.h"
#include "minienc/report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(const me_error *err) {
    fprintf(stderr, "minienc: error: %s\n", err->msg);
    return me_status_exit_code(err->status);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "minienc: error: %s: %s (see 'minienc help %s')\n", cmd, msg, cmd);
    return 2;
}

int cli_option_value(const char *name, const char *cmd, int argc, char **argv, int *i, const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        cli_usage(cmd, "%s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_common_option(cli_common *c, const char *cmd, unsigned accepts, int argc, char **argv, int *i) {
    const char *v;
    int r = cli_option_value("--set", cmd, argc, argv, i, &v);
    if (r < 0) return -1;
    if (r > 0) {
        if (c->n_sets == CLI_MAX_SETS) {
            cli_usage(cmd, "more than %d --set options", CLI_MAX_SETS);
            return -1;
        }
        c->sets[c->n_sets++] = v;
        return 1;
    }
    if ((accepts & CLI_JSON) && strcmp(argv[*i], "--json") == 0) return c->json = 1;
    if ((accepts & CLI_FORCE) && strcmp(argv[*i], "--force") == 0) return c->force = 1;
    return 0;
}

int cli_parse_int(const char *cmd, const char *name, const char *text, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s '%s' is not an integer in [%ld, %ld]", name, text, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_int_option(const cli_int_opt *opts, int n, const char *cmd, int argc, char **argv, int *i) {
    for (int k = 0; k < n; k++) {
        const char *v;
        int r = cli_option_value(opts[k].name, cmd, argc, argv, i, &v);
        if (r < 0) return -1;
        if (r > 0) return cli_parse_int(cmd, opts[k].name, v, opts[k].lo, opts[k].hi, opts[k].dst) ? 1 : -1;
    }
    return 0;
}

me_status cli_load_config(me_config *cfg, const char *path, const cli_common *c, me_error *err) {
    me_config_defaults(cfg);
    me_status st;
    if (path && (st = me_config_load(cfg, path, err))) return st;
    for (int i = 0; i < c->n_sets; i++)
        if ((st = me_config_set(cfg, c->sets[i], err))) return st;
    return me_config_validate(cfg, err);
}

int cli_set_threads(int threads) {
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    me_ops_set_threads(threads);
    return threads;
}

me_status cli_write_plots(const char *run_dir, me_error *err) {
    int written;
    me_status st = me_report_plots(run_dir, err);
    return st ? st : me_predict_plot_run(run_dir, &written, err);
}
