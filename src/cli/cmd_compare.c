/* minienc compare: runs and sweeps side by side, grouped by config, as a table (or JSON) and charts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "minienc/compare.h"
#include "minienc/report.h"

#include "file.h"

enum { OPT_BY, OPT_OUT, OPT_SIGMA, OPT_JSON, N_COMPARE_OPTS };
static const cli_option compare_options[N_COMPARE_OPTS] = {
    [OPT_BY] = {.name = "--by", .kind = CLI_STRING, .value = "SECTION.KEY,...",
                .help = "group runs that agree on these keys",
                .def_text = "runs whose configs differ only in train.seed form a group"},
    [OPT_OUT] = {.name = "--out", .kind = CLI_STRING, .value = "DIR", .help = "folder for the charts",
                 .def_text = "SWEEP_DIR/compare for one sweep, else ./compare"},
    [OPT_SIGMA] = {.name = "--sigma", .kind = CLI_REAL, .value = "K",
                   .help = "outlier gamma dimensions: |gamma_d - mean| > K standard deviations",
                   .real_def = ME_REPORT_DEFAULT_SIGMA, .real_lo = 0, .real_hi = 1e6},
    [OPT_JSON] = CLI_OPTION_JSON,
};

static int cmd_compare(const cli_args *a) {
    const char *const *paths = a->args;
    int n_paths = a->n_args, json = a->given[OPT_JSON];
    const char *by_text = a->text[OPT_BY], *out = a->text[OPT_OUT];
    double sigma = a->real[OPT_SIGMA];
    /* --by KEY,KEY */
    char by_buf[2048];
    const char *by[ME_COMPARE_MAX_BY];
    int n_by = 0;
    if (by_text) {
        if (strlen(by_text) >= sizeof by_buf) return cli_usage("compare", "--by is too long");
        snprintf(by_buf, sizeof by_buf, "%s", by_text);
        for (char *save = NULL, *k = strtok_r(by_buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
            while (*k == ' ') k++;
            if (n_by == ME_COMPARE_MAX_BY) return cli_usage("compare", "--by: more than %d keys", ME_COMPARE_MAX_BY);
            if (*k) by[n_by++] = k;
        }
        if (n_by == 0) return cli_usage("compare", "--by needs SECTION.KEY[,SECTION.KEY...]");
    }
    /* charts: in the sweep's folder when comparing one sweep, else ./compare */
    char out_dir[ME_PATH_MAX + 16];
    char probe[ME_PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/sweep.ini", paths[0]);
    if (out) snprintf(out_dir, sizeof out_dir, "%s", out);
    else if (n_paths == 1 && me_file_probe(probe) == ME_PATH_OTHER) snprintf(out_dir, sizeof out_dir, "%s/compare", paths[0]);
    else snprintf(out_dir, sizeof out_dir, "compare");

    me_error err = {0};
    me_compare c;
    int code = 0;
    if (me_compare_load(&c, paths, n_paths, sigma, &err) || me_compare_group_by(&c, by, n_by, &err)) {
        code = cli_fail(&err);
        me_compare_free(&c);
        return code;
    }
    me_report_files files;
    me_error perr = {0};
    me_status pst = me_compare_plots(&c, out_dir, &files, &perr);
    if (json) {
        cJSON *root = me_compare_json(&c);
        char *s = root ? cJSON_Print(root) : NULL;
        if (s) printf("%s\n", s);
        else code = cli_fail(&(me_error){ME_ERR_NOMEM, "compare: out of memory building JSON"});
        free(s);
        cJSON_Delete(root);
    } else if (me_compare_print(&c, stdout, &err)) {
        code = cli_fail(&err);
    }
    fflush(stdout);
    if (files.n) {
        fprintf(stderr, "minienc: %d chart%s in %s:", files.n, files.n == 1 ? "" : "s", out_dir);
        for (int i = 0; i < files.n; i++) {
            const char *slash = strrchr(files.paths[i], '/');
            fprintf(stderr, " %s", slash ? slash + 1 : files.paths[i]);
        }
        fprintf(stderr, "\n");
    }
    me_report_files_free(&files);
    if (pst && !code) code = cli_fail(&perr);
    me_compare_free(&c);
    return code;
}

const cli_command cli_compare = {
    .name = "compare", .args = "RUN_OR_SWEEP_DIR...", .args_what = "RUN_OR_SWEEP_DIR", .min_args = 1,
    .max_args = CLI_MAX_ARGS, .options = compare_options, .n_options = N_COMPARE_OPTS, .run = cmd_compare,
    .summary = "Runs side by side: groups of runs whose configs differ only in train.seed (or that agree on the --by\n"
               "keys), each group's mean over its runs with a min-max band. Prints a table (or JSON) and draws\n"
               "curves.png, <layernorm>.png, drift.png and outliers.png.",
    .no_set_why = "compare reads each run's own config",
};
