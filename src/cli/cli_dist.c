/* The command line under mpirun (see cli_dist.h). */
#define _GNU_SOURCE /* memfd_create, sched_getaffinity */
#include "cli_dist.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "minienc/status.h"

#ifndef MINIENC_MPI_PLUGIN
#define MINIENC_MPI_PLUGIN ""
#endif
#define PLUGIN_NAME "minienc-mpi.so"

/* minienc-mpi.so next to the running binary, else where the build put it. */
static void plugin_path(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/%s", exe, PLUGIN_NAME);
            if (access(out, R_OK) == 0) return;
        }
    }
    snprintf(out, cap, "%s", MINIENC_MPI_PLUGIN);
}

static cli_dist job = {.saved_stderr = -1, .held = -1, .d = {.fail_rank = -1}};

cli_dist *cli_dist_current(void) { return &job; }

int cli_dist_start(void) {
    cli_dist *c = &job;
    memset(c, 0, sizeof *c);
    c->saved_stderr = c->held = -1;
    c->d.fail_rank = -1;
    if (!me_dist_launched(NULL)) return 0;
    /* before MPI is up only the environment knows the rank: rank 0 alone says what went wrong */
    const char *env_rank = getenv("OMPI_COMM_WORLD_RANK");
    int first = !env_rank || strcmp(env_rank, "0") == 0;
    char path[PATH_MAX + 32];
    plugin_path(path, sizeof path);
    me_error err = {0};
    me_status st = path[0] ? me_dist_open(&c->d, path, &err)
                           : me_error_set(&err, ME_ERR_USAGE, "started by mpirun, but this minienc was built without "
                                          "MPI; expected a build with Open MPI (install libopenmpi-dev, then run "
                                          "scripts/bootstrap.sh or cmake with -DMINIENC_MPI=ON)");
    if (st) {
        if (first) fprintf(stderr, "minienc: error: %s\n", err.msg);
        memset(&c->d, 0, sizeof c->d);
        return me_status_exit_code(st);
    }
    if (c->d.rank > 0) {
        fflush(stderr);
        c->held = memfd_create("minienc-rank-stderr", 0);
        c->saved_stderr = c->held >= 0 ? dup(2) : -1;
        if (c->saved_stderr >= 0 && dup2(c->held, 2) < 0) {
            close(c->saved_stderr);
            c->saved_stderr = -1;
        }
    }
    return 0;
}

int cli_dist_refuse(const char *cmd, const char *why) {
    if (!me_dist_launched(NULL)) return 0;
    const char *env_rank = getenv("OMPI_COMM_WORLD_RANK");
    if (env_rank && strcmp(env_rank, "0") != 0) return 2;
    return cli_usage(cmd, "started by mpirun: %s", why);
}

int cli_dist_group(const cli_dist *c) { return c->d.size > 1; }

int cli_dist_threads(const cli_dist *c, int threads) {
    if (threads > 0 || !c->d.size) return threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = c->d.local_size > 0 ? c->d.local_size : 1;
    long t = cores > 0 ? cores / local : 1;
    return t >= 1 ? (int)t : 1;
}

void cli_dist_check_binding(const cli_dist *c, int threads) {
    cpu_set_t set;
    if (!c->d.size || c->d.rank != 0 || sched_getaffinity(0, sizeof set, &set) != 0) return;
    int cores = CPU_COUNT(&set);
    if (cores < threads)
        fprintf(stderr, "minienc: warning: this process may run on %d core%s but starts %d threads (mpirun binds "
                "each process to one core when it starts at most two): start mpirun with --bind-to none or "
                "--map-by slot:PE=%d\n", cores, cores == 1 ? "" : "s", threads, threads);
}

int cli_dist_reports(const cli_dist *c) {
    if (!c->d.size) return 1;
    return c->d.fail_rank >= 0 ? c->d.fail_rank == c->d.rank : c->d.rank == 0;
}

static me_status status_of_code(int code) {
    switch (code) {
    case 0: return ME_OK;
    case 2: return ME_ERR_USAGE;
    case 130: return ME_ERR_INTERRUPTED;
    default: return ME_ERR_IO;
    }
}

/* The last "minienc: error: " line this rank held back, to the real stderr, naming the rank. */
static void replay_error(const cli_dist *c) {
    off_t size = lseek(c->held, 0, SEEK_END);
    if (size <= 0 || size > (1 << 24)) return;
    char *text = malloc((size_t)size + 1);
    if (!text) return;
    if (pread(c->held, text, (size_t)size, 0) != size) {
        free(text);
        return;
    }
    text[size] = '\0';
    static const char tag[] = "minienc: error: ";
    char *line = NULL;
    for (char *p = text; (p = strstr(p, tag)); p++)
        if (p == text || p[-1] == '\n') line = p;
    if (line) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        const char *msg = line + sizeof tag - 1;
        char named[32];
        snprintf(named, sizeof named, "rank %d of %d", c->d.rank, c->d.size);
        dprintf(c->saved_stderr, "%s%s%s%s\n", tag, strncmp(msg, named, strlen(named)) ? named : "",
                strncmp(msg, named, strlen(named)) ? ": " : "", msg);
    }
    free(text);
}

int cli_dist_finish(int code) {
    cli_dist *c = &job;
    if (!c->d.size) return code;
    fflush(stdout);
    fflush(stderr);
    if (c->d.fail_rank < 0) { /* no failure agreed yet: agree on this command's outcome */
        me_error err = {0};
        me_status st = me_dist_agree(&c->d, status_of_code(code), NULL, &err);
        code = st == status_of_code(code) ? code : me_status_exit_code(st);
    }
    if (c->saved_stderr >= 0) {
        if (c->d.fail_rank == c->d.rank) replay_error(c);
        dup2(c->saved_stderr, 2);
        close(c->saved_stderr);
        c->saved_stderr = -1;
    }
    if (c->held >= 0) close(c->held);
    c->held = -1;
    me_dist_close(&c->d);
    return code;
}
