/* Commands whose implementation has not landed yet refuse clearly. */
#include "cli.h"

static int not_yet(const char *cmd) {
    fprintf(stderr, "minienc: error: '%s' is not available in this build\n", cmd);
    return 1;
}
int cmd_bench(int argc, char **argv) { (void)argc, (void)argv; return not_yet("bench"); }
/* Until the report module lands, training writes no charts. */
me_status cli_write_plots(const char *run_dir, me_error *err) {
    (void)run_dir, (void)err;
    return ME_OK;
}
