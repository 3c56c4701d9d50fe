/* minienc: one binary, one subcommand per job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dist.h"

#ifndef MINIENC_VERSION
#error "MINIENC_VERSION comes from the CMake project version"
#endif

static const cli_command *const commands[] = {&cli_train, &cli_predict, &cli_eval,  &cli_count,   &cli_forward,
                                              &cli_data,  &cli_plot,    &cli_inspect, &cli_sweep, &cli_compare,
                                              &cli_bench};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* A command's output that did not reach stdout (a full disk, a closed pipe) is a failure too. */
static int finish(int code) {
    if ((fflush(stdout) != 0 || ferror(stdout)) && code == 0) {
        fprintf(stderr, "minienc: error: cannot write to standard output\n");
        return 1;
    }
    return code;
}

static void print_overview(FILE *f) {
    fprintf(f, "minienc %s: a small, exact transformer-encoder trainer\n\ncommands:\n", MINIENC_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) {
        fputc('\n', f);
        cli_print_usage(commands[i], f);
    }
    fprintf(f, "\n'minienc help CMD' or 'minienc CMD --help' lists a command's options with their defaults;\n"
               "'minienc --version' prints the version.\n");
}

static const cli_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i]->name) == 0) return commands[i];
    return NULL;
}

/* "unknown command 'trian', did you mean 'train'?", or the list when nothing is near. */
static int unknown_command(const char *name) {
    const char *names[N_COMMANDS + 2];
    for (int i = 0; i < N_COMMANDS; i++) names[i] = commands[i]->name;
    names[N_COMMANDS] = "help";
    names[N_COMMANDS + 1] = "version";
    const char *near = cli_nearest(name, names, N_COMMANDS + 2);
    if (near) {
        fprintf(stderr, "minienc: error: unknown command '%s', did you mean '%s'? (see 'minienc help')\n", name, near);
    } else {
        fprintf(stderr, "minienc: error: unknown command '%s', expected one of:", name);
        for (int i = 0; i < N_COMMANDS; i++) fprintf(stderr, " %s", commands[i]->name);
        fprintf(stderr, " (see 'minienc help')\n");
    }
    return 2;
}

/* OpenMP workers sleep after a short spin (libgomp's default), and waking them costs more than a
 * small model's whole kernel: measured on the toy model (d 64, batch 32 x 16) a step took 5.0 ms with
 * the default and 2.8 ms with workers that keep spinning between the kernels of a step. libgomp reads
 * its settings once, in its constructor, so a longer spin must be in the environment before that runs,
 * unless the user chose GOMP_SPINCOUNT or OMP_WAIT_POLICY.
 *
 * The loader runs the executable's .preinit_array before any library's constructor, but a setenv()
 * there is lost: libc's own constructor, which runs next, resets `environ` to the array the kernel
 * passed (glibc 2.36). That array has no free slot, so while the libraries start, the entry of one
 * variable that no library reads at start-up (PWD, HOME, ...) points at the setting instead, and the
 * executable's constructor, which runs after every library's and before main, puts it back. With none
 * of those variables set (env -i), libgomp keeps its default. */
static char spin_setting[] = "GOMP_SPINCOUNT=20000000";
static char **lent_slot, *lent_value;

/* Plain loops: this runs before libc has initialised itself. */
static int has_prefix(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

static void lend_spin_setting(int argc, char **argv, char **envp) {
    (void)argc, (void)argv;
    static const char *const spare[] = {"PWD=", "HOME=", "_=", "OLDPWD=", "SHLVL=", "USER=", "LOGNAME=", "PATH="};
    char **slot = NULL;
    for (char **e = envp; e && *e; e++) {
        if (has_prefix(*e, "GOMP_SPINCOUNT=") || has_prefix(*e, "OMP_WAIT_POLICY=")) return;
        for (size_t k = 0; !slot && k < sizeof spare / sizeof spare[0]; k++)
            if (has_prefix(*e, spare[k])) slot = e;
    }
    if (!slot) return;
    lent_slot = slot;
    lent_value = *slot;
    *slot = spin_setting;
}
__attribute__((section(".preinit_array"), used)) static void (*lend_spin_setting_entry)(int, char **, char **) =
    lend_spin_setting;

extern char **environ;

__attribute__((constructor)) static void return_lent_slot(void) {
    if (!lent_slot) return;
    for (char **e = environ; e && *e; e++) /* a library may have copied the array with setenv */
        if (*e == spin_setting) *e = lent_value;
    if (*lent_slot == spin_setting) *lent_slot = lent_value;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *first = argv[1];
    if (strcmp(first, "--version") == 0 || strcmp(first, "version") == 0) {
        printf("minienc %s\n", MINIENC_VERSION);
        return finish(0);
    }
    if (strcmp(first, "help") == 0 || strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0) {
        if (argc < 3) {
            print_overview(stdout);
            return finish(0);
        }
        const cli_command *cmd = find_command(argv[2]);
        if (!cmd) return unknown_command(argv[2]);
        cli_print_help(cmd, stdout);
        return finish(0);
    }
    const cli_command *cmd = find_command(first);
    if (!cmd) return unknown_command(first);
    cli_args args;
    /* under mpirun a data-parallel command joins the job first, so that even a usage error is one line
     * for the whole job (cli_dist.h) */
    int code = cmd->data_parallel ? cli_dist_start() : 0;
    if (code) return code;
    code = cli_parse(cmd, argc - 1, argv + 1, &args);
    if (code == CLI_PARSED) code = cmd->run(&args);
    return finish(cmd->data_parallel ? cli_dist_finish(code) : code);
}
