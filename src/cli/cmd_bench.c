/* minienc bench: timed training steps of the encoder stack. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_dist.h"
#include "minienc/bench.h"
#include "minienc/train.h"

#include "internal.h"

enum { OPT_BATCH, OPT_SEQ, OPT_STEPS, OPT_THREADS, OPT_PROFILE, OPT_ROUNDS, OPT_JSON, OPT_SET, N_OPTS };
static const cli_option options[N_OPTS] = {
    [OPT_BATCH] = {.name = "--batch", .kind = CLI_INT, .value = "B", .help = "sequences per step",
                   .def = 32, .lo = 1, .hi = 1 << 20},
    [OPT_SEQ] = {.name = "--seq", .kind = CLI_INT, .value = "S", .help = "tokens per sequence",
                 .def = 64, .lo = 1, .hi = 1 << 16},
    [OPT_STEPS] = {.name = "--steps", .kind = CLI_INT, .value = "N", .help = "timed steps, after warm-up",
                   .def = 10, .lo = 1, .hi = 100000},
    [OPT_THREADS] = {.name = "--threads", .kind = CLI_INT, .value = "T", .help = "threads, 0: all cores",
                     .lo = 0, .hi = 1024, .def_text = "the config's train.threads"},
    [OPT_PROFILE] = {.name = "--profile", .kind = CLI_FLAG,
                     .help = "also the time of each operation of a step (where the time goes)"},
    [OPT_ROUNDS] = {.name = "--rounds", .kind = CLI_INT, .value = "R", .lo = 1, .hi = 64,
                    .help = "alone: the timed steps in R blocks, each followed by the sgemm reference; under mpirun: "
                            "rounds of one process alone, then all, in turn",
                    .def_text = "alone: one block per sgemm reference's worth of arithmetic, at least 3 and at most "
                                "one per step; under mpirun: 3"},
    [OPT_JSON] = CLI_OPTION_JSON,
    [OPT_SET] = CLI_OPTION_SET,
};

/* A milliseconds cell, "-" where the operation has no such phase. */
static void ms_cell(char *buf, size_t cap, double ms) {
    if (ms < 0) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.3f", ms);
}

static void print_profile(const me_bench_result *r, long steps) {
    double sum = 0.0;
    for (int k = 0; k < r->n_prof; k++) sum += r->prof[k].total_ms;
    printf("\nwhere the time goes (median per step over the %ld timed steps, ms)\n", steps);
    printf("  %-22s %9s %9s %9s %7s\n", "operation", "forward", "backward", "total", "share");
    for (int k = 0; k < r->n_prof; k++) {
        char f[32], b[32];
        ms_cell(f, sizeof f, r->prof[k].forward_ms);
        ms_cell(b, sizeof b, r->prof[k].backward_ms);
        printf("  %-22s %9s %9s %9.3f %6.1f%%\n", r->prof[k].name, f, b, r->prof[k].total_ms,
               sum > 0 ? 100.0 * r->prof[k].total_ms / sum : 0.0);
    }
    printf("  %-22s %9s %9s %9.3f  (median step %.3f)\n", "sum of the rows", "", "", sum, r->prof_step_ms);
    printf("  matmul rows include their bias; backward includes the update. Synchronisation: %.0f parallel regions\n"
           "  per step x %.2f us for an empty one (fork and join, measured in this run), taken out of their rows.\n",
           r->regions_per_step, r->region_us);
}

/* The step's matmuls timed one shape at a time (same threads): what the step would take if it were
 * its matmuls alone, each at its standalone rate. Fills ms[n] (per step) and returns the sum. */
static double matmuls_alone(const me_bench_matmul *mm, int n, int threads, double *ms) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        /* per-head calls run on one thread each, the pairs spread over the threads */
        ms[i] = 1000.0 * me_bench_matmul_seconds(&mm[i]) * mm[i].count / (mm[i].per_head ? threads : 1);
        total += ms[i];
    }
    return total;
}

static void print_matmuls(const me_bench_matmul *mm, const double *ms, int n, double total, double flops,
                          double sgemm) {
    printf("\nthe step's matmuls alone (each shape timed on its own with the same threads)\n");
    printf("  %-10s %-17s %-22s %9s %9s %9s\n", "site", "product", "m x n x k (op)", "per step", "GFLOP/s", "ms/step");
    for (int i = 0; i < n; i++) {
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d (%c%c)", mm[i].m, mm[i].n, mm[i].k, mm[i].trans_a ? 'T' : 'N',
                 mm[i].trans_b ? 'T' : 'N');
        double f = 2.0 * mm[i].m * mm[i].n * mm[i].k * mm[i].count;
        printf("  %-10s %-17s %-22s %9.0f %9.1f %9.3f\n", mm[i].site, mm[i].what, shape, mm[i].count,
               ms[i] > 0 ? f / (ms[i] * 1e6) : 0.0, ms[i]);
    }
    double rate = total > 0 ? flops / (total * 1e6) : 0.0;
    printf("  all of them: %.3f ms/step -> %.1f GFLOP/s, %.0f%% of the sgemm 2048^3 rate: the most a step made of\n"
           "  these calls can reach\n", total, rate, sgemm > 0 ? 100.0 * rate / sgemm : 0.0);
}

/* The median of v[n] (n <= 64), v left as it is. */
static double median(const double *v, int n) {
    double s[64];
    memcpy(s, v, (size_t)n * sizeof *s);
    return me_median(s, (size_t)n);
}

static void print_rounds(const char *label, const double *ms, int rounds) {
    printf("%s%.2f ms/step (median of rounds; per round:", label, median(ms, rounds));
    for (int i = 0; i < rounds; i++) printf(" %.2f", ms[i]);
    printf(")\n");
}

/* Under mpirun: the scaling against one process. Rounds alternate rank 0 alone on the whole batch
 * (the others wait, sleeping) and every rank on its shard, so that a busy machine slows both alike. */
static int bench_group(cli_dist *dist, const char *config, const me_config *cfg, long batch, long seq, long steps,
                       long rounds, int threads, int json) {
    me_dist *d = &dist->d;
    me_error err = {0};
    me_status st = ME_OK;
    double solo[64], group[64], reduce[64];
    me_bench_result r1 = {0}, rn = {0};
    double sgemm = 0;
    if (d->rank == 0) sgemm = me_bench_sgemm_gflops(2048, 5);
    for (long k = 0; k < rounds && !st; k++) {
        me_bench_options o = {.batch = (int)batch, .seq = (int)seq, .steps = (int)steps, .warmup = 2};
        if (d->rank == 0) st = me_bench_run(&cfg->model, &o, &r1, &err);
        if ((st = me_dist_agree(d, st, NULL, &err))) break;
        o.dist = d;
        if ((st = me_bench_run(&cfg->model, &o, &rn, &err))) break;
        solo[k] = r1.ms_median;
        group[k] = rn.ms_median;
        reduce[k] = rn.ms_reduce;
    }
    if (st) {
        if (!cli_dist_reports(dist)) return me_status_exit_code(st);
        me_error_prefix(&err, "rank %d of %d", d->rank, d->size);
        return cli_fail(&err);
    }
    if (d->rank > 0) return 0;
    int n = (int)rounds;
    double ms1 = median(solo, n), msn = median(group, n), speedup = ms1 / msn;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "config", config);
        cJSON_AddNumberToObject(j, "batch", (double)batch);
        cJSON_AddNumberToObject(j, "seq", (double)seq);
        cJSON_AddNumberToObject(j, "steps", (double)steps);
        cJSON_AddNumberToObject(j, "rounds", (double)rounds);
        cJSON_AddNumberToObject(j, "processes", d->size);
        cJSON_AddNumberToObject(j, "threads", threads);
        cJSON_AddNumberToObject(j, "ms_per_step", msn);
        cJSON_AddNumberToObject(j, "ms_per_step_one_process", ms1);
        cJSON_AddNumberToObject(j, "ms_gradient_sum", median(reduce, n));
        cJSON_AddNumberToObject(j, "speedup", speedup);
        cJSON_AddNumberToObject(j, "scaling_efficiency", speedup / d->size);
        cJSON_AddItemToObject(j, "rounds_ms_per_step", cJSON_CreateDoubleArray(group, n));
        cJSON_AddItemToObject(j, "rounds_ms_per_step_one_process", cJSON_CreateDoubleArray(solo, n));
        cJSON_AddNumberToObject(j, "tokens_per_s", (double)batch * seq / (msn / 1000.0));
        cJSON_AddNumberToObject(j, "gflop_per_step", rn.gflop_per_step);
        cJSON_AddNumberToObject(j, "sgemm_gflops", sgemm);
        cJSON_AddNumberToObject(j, "loss_first", rn.loss_first);
        cJSON_AddNumberToObject(j, "loss_last", rn.loss_last);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
        return 0;
    }
    printf("bench %s: batch %ld x seq %ld split over %d processes x %d thread%s, %ld timed steps, %ld rounds "
           "(forward, MSE, backward, gradient sum, AdamW)\n", config, batch, seq, d->size, threads,
           threads == 1 ? "" : "s", steps, rounds);
    char label[64];
    snprintf(label, sizeof label, "  1 process  x %d:  ", threads);
    print_rounds(label, solo, n);
    snprintf(label, sizeof label, "  %d processes x %d:  ", d->size, threads);
    print_rounds(label, group, n);
    printf("  gradient sum %.2f ms of the step (median; summed in rank order, %.1f MiB per rank each way)\n",
           median(reduce, n), (double)rn.param_bytes * (d->size - 1) / d->size / 1048576.0);
    printf("  speedup     %.2fx over one process with the same threads: %.0f%% scaling efficiency\n", speedup,
           100.0 * speedup / d->size);
    double tokens = (double)batch * seq;
    printf("  throughput  %.0f tokens/s (one process: %.0f); %.1f GFLOP/s; sgemm 2048^3 on one process: %.1f GFLOP/s\n",
           tokens / (msn / 1000.0), tokens / (ms1 / 1000.0), rn.gflop_per_step / (msn / 1000.0), sgemm);
    printf("  loss        %.4f -> %.4f\n", rn.loss_first, rn.loss_last);
    return 0;
}

static int cmd_bench(const cli_args *a) {
    const char *config = a->args[0];
    long batch = a->num[OPT_BATCH], seq = a->num[OPT_SEQ], steps = a->num[OPT_STEPS];
    me_error err = {0};
    me_config cfg;
    if (cli_load_config(&cfg, config, a, &err)) return cli_fail(&err);
    cli_dist *dist = cli_dist_current();
    int asked = a->given[OPT_THREADS] ? (int)a->num[OPT_THREADS] : cfg.train.threads;
    int used = cli_set_threads(cli_dist_threads(dist, asked));
    cli_dist_check_binding(dist, used);
    if (cli_dist_group(dist))
        return bench_group(dist, config, &cfg, batch, seq, steps, a->given[OPT_ROUNDS] ? a->num[OPT_ROUNDS] : 3, used,
                           a->given[OPT_JSON]);
    int profile = a->given[OPT_PROFILE];
    me_bench_options o = {.batch = (int)batch, .seq = (int)seq, .steps = (int)steps, .warmup = 2, .profile = profile,
                          .sgemm_rounds = a->given[OPT_ROUNDS] ? (int)a->num[OPT_ROUNDS]
                                                                : me_bench_auto_rounds(&cfg.model, (int)batch, (int)seq, (int)steps),
                          .thread_shards = me_train_thread_shards(&cfg, (int)batch, used)};
    me_bench_result r;
    if (me_bench_run(&cfg.model, &o, &r, &err)) return cli_fail(&err);
    double sgemm = r.sgemm_gflops;
    double mib = 1024.0 * 1024.0, peak_step = (double)(r.rss_peak - r.rss_before);
    me_bench_matmul mm[ME_BENCH_MATMULS_MAX];
    double mm_ms[ME_BENCH_MATMULS_MAX], mm_total = 0.0;
    int n_mm = profile ? me_bench_step_matmuls(&cfg.model, (int)batch, (int)seq, mm) : 0;
    if (profile) mm_total = matmuls_alone(mm, n_mm, used, mm_ms);
    if (a->given[OPT_JSON]) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "config", config);
        cJSON_AddNumberToObject(j, "batch", (double)batch);
        cJSON_AddNumberToObject(j, "seq", (double)seq);
        cJSON_AddNumberToObject(j, "steps", (double)steps);
        cJSON_AddNumberToObject(j, "threads", used);
        cJSON_AddNumberToObject(j, "ms_per_step", r.ms_median);
        cJSON_AddNumberToObject(j, "ms_min", r.ms_min);
        cJSON_AddNumberToObject(j, "ms_max", r.ms_max);
        cJSON_AddNumberToObject(j, "tokens_per_s", r.tokens_per_s);
        cJSON_AddNumberToObject(j, "gflop_per_step", r.gflop_per_step);
        cJSON_AddNumberToObject(j, "gflops", r.gflops);
        cJSON_AddNumberToObject(j, "sgemm_gflops", sgemm);
        cJSON_AddNumberToObject(j, "sgemm_ratio", r.sgemm_ratio);
        cJSON_AddNumberToObject(j, "sgemm_rounds", r.sgemm_rounds);
        cJSON_AddNumberToObject(j, "needed_bytes", (double)r.needed_bytes);
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)r.rss_peak);
        cJSON_AddNumberToObject(j, "rss_before_bytes", (double)r.rss_before);
        cJSON_AddNumberToObject(j, "peak_over_needed", peak_step / (double)r.needed_bytes);
        cJSON_AddNumberToObject(j, "loss_first", r.loss_first);
        cJSON_AddNumberToObject(j, "loss_last", r.loss_last);
        if (profile) {
            cJSON *pj = cJSON_AddObjectToObject(j, "profile");
            cJSON_AddNumberToObject(pj, "step_ms", r.prof_step_ms);
            cJSON_AddNumberToObject(pj, "region_us", r.region_us);
            cJSON_AddNumberToObject(pj, "regions_per_step", r.regions_per_step);
            cJSON *rows = cJSON_AddArrayToObject(pj, "rows");
            for (int k = 0; k < r.n_prof; k++) {
                cJSON *row = cJSON_CreateObject();
                cJSON_AddStringToObject(row, "op", r.prof[k].name);
                if (r.prof[k].forward_ms >= 0) cJSON_AddNumberToObject(row, "forward_ms", r.prof[k].forward_ms);
                if (r.prof[k].backward_ms >= 0) cJSON_AddNumberToObject(row, "backward_ms", r.prof[k].backward_ms);
                cJSON_AddNumberToObject(row, "ms", r.prof[k].total_ms);
                cJSON_AddItemToArray(rows, row);
            }
            cJSON_AddNumberToObject(pj, "matmuls_alone_ms", mm_total);
            cJSON_AddNumberToObject(pj, "matmuls_alone_sgemm_ratio",
                                    mm_total > 0 && sgemm > 0 ? r.gflop_per_step / (mm_total / 1000.0) / sgemm : 0);
            cJSON *mj = cJSON_AddArrayToObject(pj, "matmuls");
            for (int k = 0; k < n_mm; k++) {
                cJSON *row = cJSON_CreateObject();
                cJSON_AddStringToObject(row, "site", mm[k].site);
                cJSON_AddStringToObject(row, "product", mm[k].what);
                cJSON_AddNumberToObject(row, "m", mm[k].m);
                cJSON_AddNumberToObject(row, "n", mm[k].n);
                cJSON_AddNumberToObject(row, "k", mm[k].k);
                cJSON_AddNumberToObject(row, "per_step", mm[k].count);
                cJSON_AddNumberToObject(row, "ms", mm_ms[k]);
                cJSON_AddItemToArray(mj, row);
            }
        }
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
        return 0;
    }
    printf("bench %s: batch %ld x seq %ld, %d threads, %ld timed steps (forward, MSE, backward, AdamW)\n",
           config, batch, seq, used, steps);
    printf("  step        %.2f ms median (min %.2f, max %.2f)\n", r.ms_median, r.ms_min, r.ms_max);
    printf("  throughput  %.0f tokens/s\n", r.tokens_per_s);
    printf("  compute     %.3f GFLOP/step -> %.1f GFLOP/s; sgemm 2048^3 here: %.1f GFLOP/s; %.0f%% of it\n"
           "              (median over %d rounds of a block of steps and an sgemm call after it)\n",
           r.gflop_per_step, r.gflops, sgemm, 100.0 * r.sgemm_ratio, r.sgemm_rounds);
    printf("  memory      needed %.1f MiB (params %.1f, grads %.1f, AdamW %.1f, activations %.1f, batch %.1f)\n",
           (double)r.needed_bytes / mib, (double)r.param_bytes / mib, (double)r.grad_bytes / mib,
           (double)r.optim_bytes / mib, (double)r.activation_bytes / mib, (double)r.io_bytes / mib);
    printf("              peak RSS %.1f MiB, %.1f MiB before the model: the step took %.2fx what it needs\n",
           (double)r.rss_peak / mib, (double)r.rss_before / mib, peak_step / (double)r.needed_bytes);
    printf("  loss        %.4f -> %.4f\n", r.loss_first, r.loss_last);
    if (profile) {
        print_profile(&r, steps);
        print_matmuls(mm, mm_ms, n_mm, mm_total, r.gflop_per_step * 1e9, sgemm);
    }
    return 0;
}

const cli_command cli_bench = {
    .name = "bench", .args = "CONFIG", .args_what = "CONFIG", .min_args = 1, .max_args = 1,
    .options = options, .n_options = N_OPTS, .run = cmd_bench, .data_parallel = 1,
    .summary = "Time full training steps (forward, MSE loss, backward, AdamW) of the encoder stack. Under\n"
               "mpirun -np N: the batch split over N processes against one process, in alternating rounds.",
};
