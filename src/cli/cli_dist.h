/* The command line under mpirun: joining the job, threads per process, and one error line for the
 * whole job. main() starts and finishes it around the commands marked data_parallel (train, bench);
 * every other command ignores MPI. */
#ifndef MINIENC_CLI_DIST_H
#define MINIENC_CLI_DIST_H

#include "minienc/dist.h"

typedef struct {
    me_dist d;        /* d.size == 0: not started by mpirun */
    int saved_stderr; /* ranks above 0: the real stderr while theirs is held back; -1 otherwise */
    int held;         /* the held-back stderr (a memfd) */
} cli_dist;

/* Joins the job when mpirun started this process (otherwise loads nothing). Ranks above 0 hold their
 * stderr back from then on: the job shows rank 0's output, plus the one error line of the rank that
 * reports a failure. Returns 0, or an exit code (message printed once). */
int cli_dist_start(void);

/* For a command that does not run data-parallel: when mpirun started this process, a usage error
 * (printed by the job's first process only) saying so; 0 otherwise. */
int cli_dist_refuse(const char *cmd, const char *why);

/* The job this process belongs to (d.size == 0 outside mpirun). */
cli_dist *cli_dist_current(void);

/* 1 when this process is a rank of a job of two or more. */
int cli_dist_group(const cli_dist *c);

/* Threads per process: `threads` when positive, else the node's cores divided by the job's processes
 * on this node (0, i.e. all cores, outside mpirun). */
int cli_dist_threads(const cli_dist *c, int threads);

/* Rank 0 warns when this process may run on fewer cores than it starts threads (mpirun binds each
 * process to one core by default when there are at most two). */
void cli_dist_check_binding(const cli_dist *c, int threads);

/* Whether this rank prints a failure's message: outside mpirun always; in a job only the rank that
 * reports it (d.fail_rank, or rank 0 while no agreement named one). */
int cli_dist_reports(const cli_dist *c);

/* Ends a command: the ranks agree on its outcome (unless an earlier agreement already failed), the
 * reporting rank's held-back error line reaches stderr, and the process leaves the job. Returns the
 * exit code this rank exits with: the reporting rank's code on every rank. */
int cli_dist_finish(int code);

#endif
