/* minienc plot / inspect: charts and a drift summary of a run directory's γ/β history. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "minienc/predict.h"
#include "minienc/report.h"

int cmd_plot(int argc, char **argv) {
    const char *run_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage("plot", "unknown option '%s'", argv[i]);
        if (run_dir) return cli_usage("plot", "one RUN_DIR expected, got '%s' too", argv[i]);
        run_dir = argv[i];
    }
    if (!run_dir) return cli_usage("plot", "expected RUN_DIR");
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

int cmd_inspect(int argc, char **argv) {
    cli_common c = {0};
    long top = ME_REPORT_DEFAULT_TOP;
    for (int i = 1; i < argc; i++) {
        const cli_int_opt opt = {"--top", &top, 1, 1000000};
        int r = cli_int_option(&opt, 1, "inspect", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage("inspect", "unknown option '%s'", argv[i]);
        if (c.n_positional == 1) return cli_usage("inspect", "one RUN_DIR expected, got '%s' too", argv[i]);
        c.positional[c.n_positional++] = argv[i];
    }
    if (c.n_positional != 1) return cli_usage("inspect", "expected RUN_DIR");
    me_error err = {0};
    me_report rep;
    if (me_report_inspect(&rep, c.positional[0], (int)top, &err)) return cli_fail(&err);
    int code = 0;
    if (c.json) {
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
