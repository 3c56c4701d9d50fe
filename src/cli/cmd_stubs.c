/* Commands whose implementation has not landed yet refuse clearly. */
#include "cli.h"

static int not_yet(const char *cmd) {
    fprintf(stderr, "minienc: error: '%s' is not available in this build\n", cmd);
    return 1;
}
int cmd_train(int argc, char **argv) { (void)argc, (void)argv; return not_yet("train"); }
int cmd_eval(int argc, char **argv) { (void)argc, (void)argv; return not_yet("eval"); }
int cmd_data(int argc, char **argv) { (void)argc, (void)argv; return not_yet("data"); }
int cmd_bench(int argc, char **argv) { (void)argc, (void)argv; return not_yet("bench"); }
