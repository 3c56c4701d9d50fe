/* minienc: one binary, one subcommand per job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"train", cmd_train,
     "minienc train [CONFIG] [--set section.key=value ...] [--resume RUN_DIR] [--force]\n"
     "  Train a model on a toy task (default configs/default.ini); writes out_dir/{config.ini, metrics.csv,\n"
     "  checkpoint.safetensors, history.safetensors, layernorm.csv, plots/}."},
    {"predict", cmd_predict,
     "minienc predict RUN_DIR|CHECKPOINT [--input \"TOKENS\"]... [--data FILE|-] [--top K] [--json]\n"
     "                [--attention OUT_DIR]\n"
     "  The model's answer for each input (config and weights from the checkpoint); with targets, right or\n"
     "  wrong and the accuracy; --attention writes every layer's attention weights and a chart per input."},
    {"eval", cmd_eval,
     "minienc eval RUN_DIR|CHECKPOINT [--data FILE] [--errors N] [--json]\n"
     "  Loss, token and sequence accuracy of a checkpoint on a data file (default: its config's valid set);\n"
     "  --errors N lists the first N wrong examples. (Also: eval CONFIG --checkpoint FILE [--set ...].)"},
    {"count", cmd_count,
     "minienc count CONFIG.ini | CHECKPOINT.safetensors | RUN_DIR [--set ...] [--json]\n"
     "  Parameter audit from live tensors: per tensor, per group with its closed-form formula, totals."},
    {"forward", cmd_forward,
     "minienc forward CONFIG.ini --weights W.safetensors --input IN.safetensors --output OUT.safetensors\n"
     "  Run the encoder stack alone (dropout off); with dy in IN also the backward pass."},
    {"data", cmd_data,
     "minienc data TASK --out FILE|- [--n N] [--min-len A] [--max-len B] [--vocab V] [--seed S]\n"
     "minienc data TASK --out DIR --valid M [--n N] ...\n"
     "  Generate a toy data set (tasks: reverse, sort, histogram, copy, parity, majority; --vocab defaults\n"
     "  to 2 for parity, 8 otherwise); with --valid M, DIR/train.txt (N examples) and DIR/valid.txt (M) with\n"
     "  no input in both."},
    {"plot", cmd_plot, "minienc plot RUN_DIR\n  Redraw a run's charts into RUN_DIR/plots/."},
    {"inspect", cmd_inspect,
     "minienc inspect RUN_DIR [--top K] [--json]\n  Summarise how each LayerNorm's gamma and beta moved."},
    {"bench", cmd_bench,
     "minienc bench CONFIG [--batch B] [--seq S] [--steps N] [--threads T] [--json]\n"
     "  Time full training steps (forward, MSE loss, backward, AdamW) of the encoder stack."},
};

/* A command's output that did not reach stdout (a full disk, a closed pipe) is a failure too. */
static int finish(int code) {
    if ((fflush(stdout) != 0 || ferror(stdout)) && code == 0) {
        fprintf(stderr, "minienc: error: cannot write to standard output\n");
        return 1;
    }
    return code;
}

static void print_help(FILE *f) {
    fprintf(f, "minienc: a small, exact transformer-encoder trainer\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(f, "\n%s\n", commands[i].usage);
}

/* OpenMP workers sleep after a short spin (libgomp's default), and waking them costs more than a
 * small model's whole kernel: measured on the toy model (d 64, batch 32 x 16) a step took 5.0 ms with
 * the default and 2.8 ms with workers that keep spinning between the kernels of a step. libgomp reads
 * its settings once, when it loads, so the binary re-executes itself once with a longer spin unless the
 * user chose one. */
static void tune_openmp(char **argv) {
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY")) return;
    /* under valgrind /proc/self/exe is valgrind's own tool: stay in this process */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return;
    if (setenv("GOMP_SPINCOUNT", "20000000", 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT"); /* exec failed: carry on with the defaults */
}

int main(int argc, char **argv) {
    tune_openmp(argv);
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc >= 3) {
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    printf("%s\n", commands[i].usage);
                    return finish(0);
                }
            fprintf(stderr, "minienc: error: unknown command '%s' (see 'minienc help')\n", argv[2]);
            return 2;
        }
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : finish(0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
                printf("%s\n", commands[i].usage);
                return finish(0);
            }
            return finish(commands[i].run(argc - 1, argv + 1));
        }
    fprintf(stderr, "minienc: error: unknown command '%s', expected one of: train predict eval count forward data "
                    "plot inspect bench (see 'minienc help')\n", argv[1]);
    return 2;
}
