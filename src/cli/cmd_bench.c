/* minienc bench: timed training steps of the encoder stack. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "minienc/bench.h"

int cmd_bench(int argc, char **argv) {
    cli_common c = {0};
    long batch = 32, seq = 64, steps = 10, threads = -1; /* -1: train.threads from the config */
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option(&c, "bench", CLI_JSON, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const cli_int_opt ints[] = {{"--batch", &batch, 1, 1 << 20}, {"--seq", &seq, 1, 1 << 16},
                                    {"--steps", &steps, 1, 100000}, {"--threads", &threads, 0, 1024}};
        if ((r = cli_int_option(ints, 4, "bench", argc, argv, &i))) {
            if (r < 0) return 2;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage("bench", "unknown option '%s'", argv[i]);
        if (c.n_positional == 1) return cli_usage("bench", "one CONFIG expected, got '%s' too", argv[i]);
        c.positional[c.n_positional++] = argv[i];
    }
    if (c.n_positional != 1) return cli_usage("bench", "expected CONFIG");
    me_error err = {0};
    me_config cfg;
    if (cli_load_config(&cfg, c.positional[0], &c, &err)) return cli_fail(&err);
    int used = cli_set_threads(threads >= 0 ? (int)threads : cfg.train.threads);
    double sgemm = me_bench_sgemm_gflops(2048, 5);
    me_bench_options o = {.batch = (int)batch, .seq = (int)seq, .steps = (int)steps, .warmup = 2};
    me_bench_result r;
    if (me_bench_run(&cfg.model, &o, &r, &err)) return cli_fail(&err);
    double mib = 1024.0 * 1024.0, peak_step = (double)(r.rss_peak - r.rss_before);
    if (c.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "config", c.positional[0]);
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
        cJSON_AddNumberToObject(j, "sgemm_ratio", sgemm > 0 ? r.gflops / sgemm : 0);
        cJSON_AddNumberToObject(j, "needed_bytes", (double)r.needed_bytes);
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)r.rss_peak);
        cJSON_AddNumberToObject(j, "rss_before_bytes", (double)r.rss_before);
        cJSON_AddNumberToObject(j, "peak_over_needed", peak_step / (double)r.needed_bytes);
        cJSON_AddNumberToObject(j, "loss_first", r.loss_first);
        cJSON_AddNumberToObject(j, "loss_last", r.loss_last);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
        return 0;
    }
    printf("bench %s: batch %ld x seq %ld, %d threads, %ld timed steps (forward, MSE, backward, AdamW)\n",
           c.positional[0], batch, seq, used, steps);
    printf("  step        %.2f ms median (min %.2f, max %.2f)\n", r.ms_median, r.ms_min, r.ms_max);
    printf("  throughput  %.0f tokens/s\n", r.tokens_per_s);
    printf("  compute     %.3f GFLOP/step -> %.1f GFLOP/s; sgemm 2048^3 here: %.1f GFLOP/s (%.0f%%)\n",
           r.gflop_per_step, r.gflops, sgemm, sgemm > 0 ? 100.0 * r.gflops / sgemm : 0.0);
    printf("  memory      needed %.1f MiB (params %.1f, grads %.1f, AdamW %.1f, activations %.1f, batch %.1f)\n",
           (double)r.needed_bytes / mib, (double)r.param_bytes / mib, (double)r.grad_bytes / mib,
           (double)r.optim_bytes / mib, (double)r.activation_bytes / mib, (double)r.io_bytes / mib);
    printf("              peak RSS %.1f MiB, %.1f MiB before the model: the step took %.2fx what it needs\n",
           (double)r.rss_peak / mib, (double)r.rss_before / mib, peak_step / (double)r.needed_bytes);
    printf("  loss        %.4f -> %.4f\n", r.loss_first, r.loss_last);
    return 0;
}
