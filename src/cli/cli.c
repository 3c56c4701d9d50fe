#include "cli.h"

#include "minienc/ops.h"
#include "minienc/predict.h"
#include "minienc/report.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

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

/* ---- the option parser ----------------------------------------------------------------------------
 * A small one of our own rather than getopt_long: getopt_long prints its own messages (or, silenced,
 * leaves the offending text to be dug out of argv), accepts any unambiguous abbreviation ("--che" for
 * --checkpoint, a promise every later option could break), and keeps its state in globals. Here every
 * refusal is one "minienc: error: CMD: ..." line with exit 2, and the same table gives the help. */

const char *cli_nearest(const char *typed, const char *const *names, int n) {
    size_t lt = strlen(typed);
    const char *best = NULL;
    int best_d = 0;
    for (int i = 0; i < n; i++) {
        int d = me_edit_distance(typed, lt, names[i], strlen(names[i]));
        if (!best || d < best_d) best = names[i], best_d = d;
    }
    /* at most one edit per three typed characters: "tpo" is "top", "foo" is not */
    return best && (size_t)(3 * best_d) <= lt ? best : NULL;
}

static int find_option(const cli_command *cmd, const char *name, size_t len) {
    for (int k = 0; k < cmd->n_options; k++)
        if (strlen(cmd->options[k].name) == len && strncmp(cmd->options[k].name, name, len) == 0) return k;
    return -1;
}

static int unknown_option(const cli_command *cmd, const char *arg) {
    const char *names[CLI_MAX_OPTIONS + 1]; /* compared without their "--" */
    int n = 0;
    for (int k = 0; k < cmd->n_options; k++) names[n++] = cmd->options[k].name + 2;
    names[n++] = "help";
    char typed[128];
    size_t len = strcspn(arg, "=");
    snprintf(typed, sizeof typed, "%.*s", (int)(len < sizeof typed ? len : sizeof typed - 1), arg);
    if (strcmp(typed, "--set") == 0 && cmd->no_set_why)
        return cli_usage(cmd->name, "--set does not apply: %s", cmd->no_set_why);
    const char *near = cli_nearest(typed + strspn(typed, "-"), names, n);
    if (near) return cli_usage(cmd->name, "unknown option '%s', did you mean '--%s'?", typed, near);
    if (cmd->n_options == 0)
        return cli_usage(cmd->name, "unknown option '%s': %s takes none but --help", typed, cmd->name);
    char list[512] = "";
    size_t used = 0;
    for (int k = 0; k < n && used < sizeof list; k++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s--%s", k ? " " : "", names[k]);
    return cli_usage(cmd->name, "unknown option '%s', expected one of: %s", typed, list);
}

/* Parses an integer option value strictly into [lo, hi]. */
static int parse_int(const cli_command *cmd, const cli_option *o, const char *text, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < o->lo || v > o->hi)
        return cli_usage(cmd->name, "%s '%s' is not an integer in [%ld, %ld]", o->name, text, o->lo, o->hi);
    *out = v;
    return 0;
}

/* Parses a real option value strictly: finite, in (real_lo, real_hi]. */
static int parse_real(const cli_command *cmd, const cli_option *o, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || !(v > o->real_lo) || !(v <= o->real_hi))
        return cli_usage(cmd->name, "%s '%s' is not a number above %g and at most %g", o->name, text, o->real_lo,
                         o->real_hi);
    *out = v;
    return 0;
}

/* "--set train.lr" then "0.01": the shell split what was meant as one assignment. */
static int looks_like_split_set(const char *set_value, const char *next) {
    return set_value && !strchr(set_value, '=') && strchr(set_value, '.') && next[0] != '-';
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a) {
    assert(cmd->n_options <= CLI_MAX_OPTIONS && cmd->max_args <= CLI_MAX_ARGS);
    memset(a, 0, sizeof *a);
    a->set_option = -1;
    for (int k = 0; k < cmd->n_options; k++) {
        a->num[k] = cmd->options[k].def;
        a->real[k] = cmd->options[k].real_def;
        if (cmd->options[k].kind == CLI_SET) a->set_option = k;
    }
    /* values of repeated options in command-line order, grouped by option at the end */
    int owner[CLI_MAX_VALUES];
    const char *found[CLI_MAX_VALUES];
    int n_found = 0;
    int only_args = 0;
    const char *last_set = NULL; /* the previous argument's --set value, if that is what it was */
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *prev_set = last_set;
        last_set = NULL;
        if (!only_args && strcmp(s, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (only_args || s[0] != '-' || s[1] == '\0') {
            if (looks_like_split_set(prev_set, s))
                return cli_usage(cmd->name, "--set takes section.key=value; got '%s' followed by '%s': did you mean "
                                 "--set %s=%s?", prev_set, s, prev_set, s);
            if (a->n_args == cmd->max_args)
                return cli_usage(cmd->name, "one %s expected, got '%s' too", cmd->args_what, s);
            a->args[a->n_args++] = s;
            continue;
        }
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            cli_print_help(cmd, stdout);
            return 0;
        }
        size_t len = strcspn(s, "=");
        int k = find_option(cmd, s, len);
        if (k < 0) return unknown_option(cmd, s);
        const cli_option *o = &cmd->options[k];
        a->given[k]++;
        if (o->kind == CLI_FLAG) {
            if (s[len] == '=') return cli_usage(cmd->name, "%s takes no value, got '%s'", o->name, s);
            continue;
        }
        const char *v;
        if (s[len] == '=') {
            v = s + len + 1;
        } else {
            /* the next argument, unless there is none or it is one of this command's options */
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (!next || (next[0] == '-' && find_option(cmd, next, strcspn(next, "=")) >= 0))
                return cli_usage(cmd->name, "%s needs a value, expected %s %s", o->name, o->name, o->value);
            v = argv[++i];
        }
        switch (o->kind) {
        case CLI_STRING: a->text[k] = v; break;
        case CLI_INT:
            if (parse_int(cmd, o, v, &a->num[k])) return 2;
            break;
        case CLI_REAL:
            if (parse_real(cmd, o, v, &a->real[k])) return 2;
            break;
        case CLI_LIST:
        case CLI_SET:
            if (a->given[k] > o->hi) return cli_usage(cmd->name, "more than %ld %s options", o->hi, o->name);
            if (n_found == CLI_MAX_VALUES) return cli_usage(cmd->name, "more than %d repeated options", CLI_MAX_VALUES);
            owner[n_found] = k;
            found[n_found++] = v;
            if (o->kind == CLI_SET) last_set = v;
            break;
        case CLI_FLAG: break;
        }
    }
    for (int k = 0, n = 0; k < cmd->n_options; k++) {
        a->first[k] = n;
        for (int j = 0; j < n_found; j++)
            if (owner[j] == k) a->values[n++] = found[j];
    }
    if (a->set_option >= 0) a->n_sets = a->given[a->set_option];
    if (a->n_args < cmd->min_args) return cli_usage(cmd->name, "expected %s", cmd->args_what);
    for (int k = 0; k < cmd->n_options; k++)
        if (cmd->options[k].required && !a->given[k])
            return cli_usage(cmd->name, "%s %s is required", cmd->options[k].name, cmd->options[k].value);
    return CLI_PARSED;
}

/* ---- usage and help ------------------------------------------------------------------------------ */

void cli_print_usage(const cli_command *cmd, FILE *f) {
    fprintf(f, "minienc %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
    for (int k = 0; k < cmd->n_options; k++) {
        const cli_option *o = &cmd->options[k];
        int repeated = o->kind == CLI_LIST || o->kind == CLI_SET;
        fprintf(f, " %s%s%s%s%s%s", o->required ? "" : "[", o->name, o->value ? " " : "", o->value ? o->value : "",
                repeated ? " ..." : "", o->required ? "" : "]");
    }
    fputs("\n  ", f); /* the summary, every line indented */
    for (const char *c = cmd->summary; *c; c++) {
        fputc(*c, f);
        if (*c == '\n') fputs("  ", f);
    }
    fputc('\n', f);
}

void cli_print_help(const cli_command *cmd, FILE *f) {
    cli_print_usage(cmd, f);
    int width = (int)strlen("-h, --help");
    for (int k = 0; k < cmd->n_options; k++) {
        const cli_option *o = &cmd->options[k];
        int w = (int)strlen(o->name) + (o->value ? 1 + (int)strlen(o->value) : 0);
        if (w > width) width = w;
    }
    fprintf(f, "\noptions:\n");
    for (int k = 0; k < cmd->n_options; k++) {
        const cli_option *o = &cmd->options[k];
        char spelled[128];
        snprintf(spelled, sizeof spelled, "%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
        fprintf(f, "  %-*s  %s", width, spelled, o->help);
        if (o->required)
            fprintf(f, " (required)");
        else if (o->def_text)
            fprintf(f, " (default: %s)", o->def_text);
        else if (o->kind == CLI_INT)
            fprintf(f, " (default %ld)", o->def);
        else if (o->kind == CLI_REAL)
            fprintf(f, " (default %g)", o->real_def);
        fputc('\n', f);
    }
    fprintf(f, "  %-*s  show this help\n", width, "-h, --help");
}

/* ---- shared steps -------------------------------------------------------------------------------- */

me_status cli_load_config(me_config *cfg, const char *path, const cli_args *a, me_error *err) {
    me_config_defaults(cfg);
    me_status st;
    if (path && (st = me_config_load(cfg, path, err))) return st;
    const char *const *sets = a->set_option >= 0 ? cli_list(a, a->set_option) : NULL;
    for (int i = 0; i < a->n_sets; i++)
        if ((st = me_config_set(cfg, sets[i], err))) return st;
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
