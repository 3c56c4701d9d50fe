/* minienc plot / inspect (placeholder until the report module lands). */
#include <stdio.h>

#include "cli.h"

int cmd_plot(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "minienc: error: 'plot' is not available in this build\n");
    return 1;
}

int cmd_inspect(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "minienc: error: 'inspect' is not available in this build\n");
    return 1;
}
