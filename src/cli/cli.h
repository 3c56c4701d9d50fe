/* Shared pieces of the command line. Only the CLI prints to the user and chooses exit codes. */
#ifndef MINIENC_CLI_H
#define MINIENC_CLI_H

#include <stdio.h>

#include "minienc/config.h"
#include "minienc/status.h"

#define CLI_MAX_SETS 128

/* Options most commands share. */
typedef struct {
    const char *positional[4]; /* non-option arguments in order */
    int n_positional;
    const char *sets[CLI_MAX_SETS]; /* --set section.key=value */
    int n_sets;
    int json;
    int force;
} cli_common;

/* Prints "minienc: error: MSG" and returns the exit code for the status. */
int cli_fail(const me_error *err);
/* Prints a usage error for a command and returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Flags a command accepts besides --set (which every command with a config takes). */
enum { CLI_JSON = 1, CLI_FORCE = 2 };

/* Tries to take argv[*i] as a common option (--set X, --set=X, and --json / --force where the
 * command's `accepts` flags allow them; elsewhere they are refused as unknown options). Returns 1 if taken
 * (advancing *i past a value), 0 if not an option it knows, -1 on a usage error (message printed). */
int cli_common_option(cli_common *c, const char *cmd, unsigned accepts, int argc, char **argv, int *i);

/* The value of an option that takes one: "--name VALUE" or "--name=VALUE". Returns 1 and sets *value,
 * 0 if argv[*i] is not that option, -1 (message printed) if the value is missing. */
int cli_option_value(const char *name, const char *cmd, int argc, char **argv, int *i, const char **value);

/* An integer option: "--name N" or "--name=N", N in [lo, hi], stored in *dst. */
typedef struct {
    const char *name;
    long *dst;
    long lo, hi;
} cli_int_opt;

/* Tries argv[*i] against opts[n]: returns 1 if taken (value parsed and stored), 0 if it is none of
 * them, -1 on a usage error (message printed). */
int cli_int_option(const cli_int_opt *opts, int n, const char *cmd, int argc, char **argv, int *i);

/* Parses an integer option value strictly into [lo, hi]; prints a usage error and returns 0 if bad. */
int cli_parse_int(const char *cmd, const char *name, const char *text, long lo, long hi, long *out);

/* Defaults, then the file (if path non-NULL), then every --set, then validation. */
me_status cli_load_config(me_config *cfg, const char *path, const cli_common *c, me_error *err);

/* Sets OpenBLAS's thread count (0 = all cores) and returns the count in use. */
int cli_set_threads(int threads);

/* Redraws a run's charts into RUN_DIR/plots/ (after training or an interruption), the attention
 * chart of its first validation example included. */
me_status cli_write_plots(const char *run_dir, me_error *err);

int cmd_count(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints the first n validation examples of a run with the model's answers to stderr (after
 * training); problems are reported there too and do not fail the command. */
void cli_show_examples(const char *run_dir, int n);

#endif
