/* minienc plot / inspect: charts and a drift summary of a run directory's γ/β history. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "minienc/predict.h"
#include "minienc/report.h"

static int cmd_plot(const cli_args *a) {
    const char *run_dir = a->args[0];
    me_error err = {0};
    me_report_files files;
    me_status st = me_report_plots_list(run_dir, &files, &err);
    for (int i = 0; i < files.n; i++) printf("%s\n", files.paths[i]);
    me_report_files_free(&files);
    int attention = 0;
    if (!st && (st = me_predict_plot_run(run_dir, &attention, &err)) == ME_OK && attention)
        printf("%s/plots/attention.png\n", run_dir);
    if (st) return cli_fail(&err);
    return 0;
}

enum { OPT_TOP, OPT_SIGMA, OPT_JSON, N_INSPECT_OPTS };
static const cli_option inspect_options[N_INSPECT_OPTS] = {
    [OPT_TOP] = {.name = "--top", .kind = CLI_INT, .value = "K", .help = "dimensions to list per LayerNorm",
                 .def = ME_REPORT_DEFAULT_TOP, .lo = 1, .hi = 1000000},
    [OPT_SIGMA] = {.name = "--sigma", .kind = CLI_REAL, .value = "K",
                   .help = "outlier gamma dimensions: |gamma_d - mean| > K standard deviations",
                   .real_def = ME_REPORT_DEFAULT_SIGMA, .real_lo = 0, .real_hi = 1e6},
    [OPT_JSON] = CLI_OPTION_JSON,
};

static int cmd_inspect(const cli_args *a) {
    me_error err = {0};
    me_report rep;
    if (me_report_inspect(&rep, a->args[0], (int)a->num[OPT_TOP], a->real[OPT_SIGMA], &err)) return cli_fail(&err);
    int code = 0;
    if (a->given[OPT_JSON]) {
        cJSON *root = me_report_json(&rep);
        char *s = root ? cJSON_Print(root) : NULL;
        if (s) {
            printf("%s\n", s);
        } else {
            me_error_set(&err, ME_ERR_NOMEM, "inspect: out of memory building JSON");
            code = cli_fail(&err);
        }
        free(s);
        cJSON_Delete(root);
    } else if (me_report_print(&rep, stdout, &err)) {
        code = cli_fail(&err);
    }
    me_report_free(&rep);
    if (code == 0 && fflush(stdout) != 0) {
        me_error_set(&err, ME_ERR_IO, "inspect: cannot write to standard output");
        code = cli_fail(&err);
    }
    return code;
}

const cli_command cli_plot = {
    .name = "plot", .args = "RUN_DIR", .args_what = "RUN_DIR", .min_args = 1, .max_args = 1, .run = cmd_plot,
    .summary = "Redraw a run's charts into RUN_DIR/plots/.",
};

const cli_command cli_inspect = {
    .name = "inspect", .args = "RUN_DIR", .args_what = "RUN_DIR", .min_args = 1, .max_args = 1,
    .options = inspect_options, .n_options = N_INSPECT_OPTS, .run = cmd_inspect,
    .summary = "Summarise how each LayerNorm's gamma and beta moved: the K dimensions that moved most, switched-off\n"
               "gammas, and outlier gamma dimensions with the first step each crossed, flagging dimensions that are\n"
               "outliers in two or more LayerNorms.",
};
