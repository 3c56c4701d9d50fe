/* Shared pieces of the command line. Only the CLI prints to the user and chooses exit codes. */
#ifndef MINIENC_CLI_H
#define MINIENC_CLI_H

#include <stdio.h>

#include "minienc/config.h"
#include "minienc/status.h"

#define CLI_MAX_SETS 128    /* --set options on one command line, at most */
#define CLI_MAX_ARGS 256    /* positional arguments a command takes, at most (compare: the runs) */
#define CLI_MAX_OPTIONS 12  /* options in one command's table, at most */
#define CLI_MAX_VALUES 8192 /* values of repeated options on one command line, at most */

/* ---- options: one table per command drives parsing, usage lines and help ------------------------ */

typedef enum {
    CLI_FLAG,   /* --json */
    CLI_STRING, /* --out FILE */
    CLI_INT,    /* --top K: an integer in [lo, hi] */
    CLI_REAL,   /* --sigma K: a finite number in (real_lo, real_hi] */
    CLI_LIST,   /* --input TOKENS: repeatable, at most hi times, kept in order */
    CLI_SET     /* --set section.key=value: a CLI_LIST of config overrides (cli_load_config applies them) */
} cli_kind;

typedef struct {
    const char *name;     /* "--top" */
    cli_kind kind;
    const char *value;    /* the value's name in usage and help, "K"; NULL for a flag */
    const char *help;     /* one line: what it does */
    long def, lo, hi;     /* CLI_INT: the value when not given, and the accepted range; CLI_LIST, CLI_SET:
                           * hi is how many times it may be given */
    const char *def_text; /* the default in words when it is not `def` ("the config's data.valid"); NULL: none
                           * (CLI_INT then shows def, CLI_REAL real_def) */
    int required;
    double real_def, real_lo, real_hi; /* CLI_REAL: the value when not given, and the accepted range (the
                                        * low end excluded) */
} cli_option;

/* A macro's value as a string literal, for help texts that name a constant: CLI_STR(ME_X). */
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/* The options every command that reads a config shares. */
#define CLI_OPTION_SET                                                                                      \
    { .name = "--set", .kind = CLI_SET, .value = "section.key=value",                                       \
      .help = "override one config key (repeatable; applied in order, after the file)", .hi = CLI_MAX_SETS }
#define CLI_OPTION_JSON { .name = "--json", .kind = CLI_FLAG, .help = "print JSON instead of text" }

/* What the parser found, indexed like the command's option table. */
typedef struct {
    const char *args[CLI_MAX_ARGS]; /* positional arguments in order */
    int n_args;
    const char *text[CLI_MAX_OPTIONS]; /* CLI_STRING: the value, NULL if not given */
    long num[CLI_MAX_OPTIONS];         /* CLI_INT: the value, the option's def if not given */
    double real[CLI_MAX_OPTIONS];      /* CLI_REAL: the value, the option's real_def if not given */
    int given[CLI_MAX_OPTIONS];        /* times the option was on the command line (flags: 1 if set) */
    int first[CLI_MAX_OPTIONS];        /* CLI_LIST, CLI_SET: its given[k] values are values[first[k] ..] */
    const char *values[CLI_MAX_VALUES];
    int n_sets, set_option;            /* how many --set values, and the option they belong to (-1: none) */
} cli_args;

/* The values of repeated option k, in command-line order (a->given[k] of them). */
static inline const char *const *cli_list(const cli_args *a, int k) { return a->values + a->first[k]; }

typedef struct {
    const char *name;          /* "inspect" */
    const char *args;          /* the positional arguments as usage shows them: "RUN_DIR", "[CONFIG]" */
    const char *args_what;     /* the same in messages: "RUN_DIR", "CONFIG.ini or CHECKPOINT.safetensors" */
    int min_args, max_args;    /* how many positional arguments it takes */
    const cli_option *options; /* options[n_options], indexed by the command's own enum */
    int n_options;
    const char *summary;       /* what the command does; lines after the first are indented in help */
    const char *no_set_why;    /* for a command without --set: why, said when --set is given anyway */
    int (*run)(const cli_args *a);
    int data_parallel;         /* under mpirun every process joins the job (cli_dist.h) before parsing */
} cli_command;

/* Parses argv[1..argc) (argv[0] is the command's name) against cmd's table into *a: "--name VALUE",
 * "--name=VALUE", flags, positional arguments anywhere, "--" ending the options, and -h / --help.
 * Returns CLI_PARSED when the command should run; otherwise the exit code to end with: 0 after
 * printing the help (stdout), 2 after a usage error (one line on stderr). */
enum { CLI_PARSED = -1 };
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a);

/* A command's usage line ("minienc inspect RUN_DIR [--top K] [--json]") and its summary. */
void cli_print_usage(const cli_command *cmd, FILE *f);

/* The usage, then one line per option with its default. */
void cli_print_help(const cli_command *cmd, FILE *f);

/* The name in names[0..n) nearest to typed, or NULL if none is near enough to suggest. */
const char *cli_nearest(const char *typed, const char *const *names, int n);

/* ---- messages and shared steps ------------------------------------------------------------------ */

/* Prints "minienc: error: MSG" and returns the exit code for the status. */
int cli_fail(const me_error *err);
/* Prints a usage error for a command and returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Defaults, then the file (if path non-NULL), then every --set of a, then validation. */
me_status cli_load_config(me_config *cfg, const char *path, const cli_args *a, me_error *err);

/* Sets OpenBLAS's thread count (0 = all cores) and returns the count in use. */
int cli_set_threads(int threads);

/* Redraws a run's charts into RUN_DIR/plots/ (after training or an interruption), the attention
 * chart of its first validation example included. */
me_status cli_write_plots(const char *run_dir, me_error *err);

/* Prints the first n validation examples of a run with the model's answers to stderr (after
 * training); problems are reported there too and do not fail the command. */
void cli_show_examples(const char *run_dir, int n);

/* The commands, each defined beside its code. */
extern const cli_command cli_train, cli_predict, cli_eval, cli_count, cli_forward, cli_data, cli_plot, cli_inspect,
    cli_sweep, cli_compare, cli_bench;

#endif
