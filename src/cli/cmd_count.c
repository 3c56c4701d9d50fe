/* minienc count: the parameter audit from live tensors. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "minienc/checkpoint.h"
#include "minienc/count.h"
#include "minienc/model.h"
#include "minienc/params.h"
#include "minienc/safetensors.h"

#include "internal.h"

static void print_json(const me_count_tensor *t, int n, const me_count_report *r, const me_model_config *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "total", (double)r->total);
    cJSON_AddNumberToObject(root, "layernorm", (double)r->layernorm);
    cJSON_AddBoolToObject(root, "ok", r->all_ok);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddNumberToObject(model, "d_model", c->d_model);
    cJSON_AddNumberToObject(model, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(model, "n_layers", c->n_layers);
    cJSON_AddBoolToObject(model, "final_norm", c->final_norm);
    cJSON_AddNumberToObject(model, "vocab_size", c->vocab_size);
    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t[i].name);
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON_AddNumberToObject(o, "count", (double)t[i].count);
        cJSON_AddItemToArray(tensors, o);
    }
    cJSON *groups = cJSON_AddArrayToObject(root, "groups");
    for (int i = 0; i < r->n; i++) {
        const me_count_group *g = &r->groups[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddStringToObject(o, "formula", g->formula);
        cJSON_AddNumberToObject(o, "formula_value", (double)g->expected);
        cJSON_AddNumberToObject(o, "live", (double)g->live);
        cJSON_AddBoolToObject(o, "ok", g->expected == g->live);
        cJSON_AddItemToArray(groups, o);
    }
    char *s = cJSON_Print(root);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
}

static void print_table(const char *source, const me_count_tensor *t, int n, const me_count_report *r) {
    char num[32], shape[64], f1[32];
    printf("parameters of %s\n\n", source);
    printf("%-48s %-14s %14s\n", "tensor", "shape", "count");
    for (int i = 0; i < n; i++)
        printf("%-48s %-14s %14s\n", t[i].name, me_shape_string(shape, sizeof shape, t[i].ndim, t[i].shape),
               me_format_count(num, sizeof num, t[i].count));
    printf("\n%-22s %14s %8s   %s\n", "group", "live", "share", "closed form");
    for (int i = 0; i < r->n; i++) {
        const me_count_group *g = &r->groups[i];
        if (g->summary) continue;
        double share = r->total ? 100.0 * (double)g->live / (double)r->total : 0.0;
        printf("%-22s %14s %7.3f%%   %s = %s  %s\n", g->name, me_format_count(num, sizeof num, g->live), share,
               g->formula, me_format_count(f1, sizeof f1, g->expected), g->live == g->expected ? "ok" : "MISMATCH");
    }
    printf("\n");
    for (int i = 0; i < r->n; i++) {
        const me_count_group *g = &r->groups[i];
        if (!g->summary) continue;
        double share = r->total ? 100.0 * (double)g->live / (double)r->total : 0.0;
        printf("%s: %s = %s  live %s  (%.4f%% of all)  %s\n", g->name, g->formula,
               me_format_count(f1, sizeof f1, g->expected), me_format_count(num, sizeof num, g->live), share,
               g->live == g->expected ? "ok" : "MISMATCH");
    }
    if (r->unknown[0]) printf("tensor '%s' belongs to no known group: MISMATCH\n", r->unknown);
}

enum { OPT_SET, OPT_JSON, N_OPTS };
static const cli_option options[N_OPTS] = {[OPT_SET] = CLI_OPTION_SET, [OPT_JSON] = CLI_OPTION_JSON};

static int cmd_count(const cli_args *a) {
    const char *path = a->args[0];
    me_error err = {0};
    char located[ME_PATH_MAX + 64];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* a run directory: count its checkpoint */
        if (me_checkpoint_locate(path, located, sizeof located, &err)) return cli_fail(&err);
        path = located;
    }
    me_count_tensor *t = NULL;
    int n = 0, code = 0;
    me_model_config mc;
    me_model m;
    memset(&m, 0, sizeof m);
    me_st_file f;
    memset(&f, 0, sizeof f);
    me_count_report rep;
    memset(&rep, 0, sizeof rep);
    if (me_ends_with(path, ".safetensors") && a->n_sets)
        return cli_usage("count", "--set applies to a CONFIG, not to the tensors of %s", path);
    if (me_ends_with(path, ".safetensors")) {
        if (me_st_read(&f, path, &err)) return cli_fail(&err);
        const char *format = me_st_meta(&f, "format");
        if (format && strcmp(format, "minienc-history-1") == 0) {
            me_st_free(&f);
            return cli_usage("count", "%s is a gamma/beta history (see 'minienc inspect'), expected a checkpoint "
                                      "or a config", path);
        }
        t = calloc((size_t)f.n + 1, sizeof *t);
        if (t) n = me_count_tensors_of_file(t, &f);
        const char *stored = me_st_meta(&f, "config");
        me_config cfg;
        if (stored) {
            me_config_defaults(&cfg);
            if (me_config_load_string(&cfg, stored, path, &err) || me_config_validate(&cfg, &err)) {
                me_error_prefix(&err, "%s: stored config", path);
                code = cli_fail(&err);
                goto done;
            }
            mc = cfg.model;
            /* the stored config also fixes every shape: a tensor that disagrees is a broken file */
            if (me_model_build(&m, &cfg, &err)) {
                code = cli_fail(&err);
                goto done;
            }
            for (int i = 0; i < n; i++) {
                int j = me_params_find(&m.params, t[i].name);
                if (j < 0 || !me_shape_equal(m.params.t[j].ndim, m.params.t[j].shape, t[i].ndim, t[i].shape)) {
                    char got[96], want[96] = "no such tensor";
                    me_shape_string(got, sizeof got, t[i].ndim, t[i].shape);
                    if (j >= 0) me_shape_string(want, sizeof want, m.params.t[j].ndim, m.params.t[j].shape);
                    me_error_set(&err, ME_ERR_SHAPE, "%s: tensor '%s' is %s but its stored config says %s", path,
                                 t[i].name, got, want);
                    code = cli_fail(&err);
                    goto done;
                }
            }
        } else if (me_count_infer_config(&mc, t, n, &err)) {
            me_error_prefix(&err, "%s", path);
            code = cli_fail(&err);
            goto done;
        }
    } else {
        me_config cfg;
        if (cli_load_config(&cfg, path, a, &err)) return cli_fail(&err);
        if (me_model_build(&m, &cfg, &err)) return cli_fail(&err);
        mc = m.cfg;
        t = calloc((size_t)m.params.n + 1, sizeof *t);
        if (t) n = me_count_tensors_of_params(t, &m.params);
    }
    if (!t) {
        me_error_set(&err, ME_ERR_NOMEM, "out of memory listing tensors");
        code = cli_fail(&err);
        goto done;
    }
    if (me_count_build(&rep, t, n, &mc, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    if (a->given[OPT_JSON])
        print_json(t, n, &rep, &mc);
    else
        print_table(path, t, n, &rep);
    if (!rep.all_ok) {
        fprintf(stderr, "minienc: error: %s: live parameter counts disagree with the closed-form formulas\n", path);
        code = 1;
    }
done:
    me_count_free(&rep);
    free(t);
    me_st_free(&f);
    me_model_free(&m);
    return code;
}

const cli_command cli_count = {
    .name = "count", .args = "CONFIG.ini | CHECKPOINT.safetensors | RUN_DIR",
    .args_what = "CONFIG.ini, CHECKPOINT.safetensors or RUN_DIR",
    .min_args = 1, .max_args = 1, .options = options, .n_options = N_OPTS, .run = cmd_count,
    .summary = "Parameter audit from live tensors: per tensor, per group with its closed-form formula, totals.",
};
