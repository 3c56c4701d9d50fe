/* minienc predict / eval: a trained model on inputs and data files; the validation examples shown
 * at the end of training. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "file.h"
#include "minienc/attention.h"
#include "minienc/predict.h"

#define MAX_INPUTS 4096
#define MAX_CHARTS 16

static cJSON *int_array(const int32_t *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t j = 0; a && j < n; j++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[j]));
    return a;
}

/* Probabilities to 6 decimals, so that JSON shows 0.98 rather than 0.98000001907348633. */
static double rounded(float p) { return round((double)p * 1e6) / 1e6; }

/* One example as predict's JSON object. */
static cJSON *example_json(const me_predictions *p, const me_dataset *ds, size_t i) {
    cJSON *o = cJSON_CreateObject();
    size_t r0 = p->row[i], nr = p->row[i + 1] - p->row[i];
    cJSON_AddItemToObject(o, "input", int_array(ds->tokens + ds->offsets[i], me_dataset_len(ds, i)));
    cJSON_AddItemToObject(o, "prediction", int_array(p->pred + r0, nr));
    if (me_dataset_has_targets(ds, i)) {
        cJSON_AddItemToObject(o, "target", int_array(ds->targets + ds->target_offsets[i],
                                                     ds->target_offsets[i + 1] - ds->target_offsets[i]));
        cJSON_AddBoolToObject(o, "correct", p->correct[i]);
    }
    if (p->top_k > 0) {
        cJSON *top = cJSON_AddArrayToObject(o, "top");
        for (size_t r = r0; r < r0 + nr; r++) {
            cJSON *row = cJSON_CreateArray();
            for (int k = 0; k < p->top_k; k++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "token", p->top[r * (size_t)p->top_k + (size_t)k]);
                cJSON_AddNumberToObject(e, "p", rounded(p->top_p[r * (size_t)p->top_k + (size_t)k]));
                cJSON_AddItemToArray(row, e);
            }
            cJSON_AddItemToArray(top, row);
        }
    }
    return o;
}

static int print_json(cJSON *o, int pretty) {
    char *s = o ? (pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o)) : NULL;
    cJSON_Delete(o);
    if (!s) {
        fprintf(stderr, "minienc: error: out of memory building JSON\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

/* "token accuracy 93.33% (56/60), sequence accuracy 80.00% (8/10)" or "accuracy 80.00% (8/10)". */
static void accuracy_text(const me_eval_result *e, me_task task, char *buf, size_t cap) {
    if (task == ME_TASK_TAG)
        snprintf(buf, cap, "token accuracy %.2f%% (%zu/%zu), sequence accuracy %.2f%% (%zu/%zu)", 100.0 * e->accuracy,
                 e->right, e->targets, 100.0 * e->seq_accuracy, e->seq_right, e->sequences);
    else
        snprintf(buf, cap, "accuracy %.2f%% (%zu/%zu)", 100.0 * e->seq_accuracy, e->seq_right, e->sequences);
}

/* Writes OUT_DIR/attention.safetensors and a chart per input (the first MAX_CHARTS). */
static me_status write_attention(const char *dir, const me_predictor *p, const me_predictions *out,
                                 const me_dataset *ds, int *charts, me_error *err) {
    char path[ME_PATH_MAX + 64], title[2048], line[1536];
    *charts = 0;
    me_status st = me_file_mkdir_p(dir, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s/attention.safetensors", dir);
    st = me_attention_write(&out->attention, path, p->checkpoint, p->step, err);
    for (size_t i = 0; i < out->n && i < MAX_CHARTS && !st; i++) {
        snprintf(path, sizeof path, "%s/attention_%zu.png", dir, i);
        snprintf(title, sizeof title, "input %zu: %s  (%s, step %" PRId64 ")", i,
                 me_predict_describe(out, ds, i, 1, line, sizeof line), p->checkpoint, p->step);
        if ((st = me_attention_png(&out->attention, i, title, path, err)) == ME_OK) (*charts)++;
    }
    return st;
}

enum { PREDICT_INPUT, PREDICT_DATA, PREDICT_TOP, PREDICT_JSON, PREDICT_ATTENTION, N_PREDICT_OPTS };
static const cli_option predict_options[N_PREDICT_OPTS] = {
    [PREDICT_INPUT] = {.name = "--input", .kind = CLI_LIST, .value = "\"TOKENS\"", .hi = MAX_INPUTS,
                       .help = "one input sequence, TAB and targets optional (repeatable)"},
    [PREDICT_DATA] = {.name = "--data", .kind = CLI_STRING, .value = "FILE|-",
                      .help = "inputs in the data-file format, targets optional (- reads stdin)"},
    [PREDICT_TOP] = {.name = "--top", .kind = CLI_INT, .value = "K", .lo = 1, .hi = 1000000,
                     .help = "classes per position in --json's \"top\"",
                     .def_text = CLI_STR(ME_PREDICT_DEFAULT_TOP) ", at most the model's classes"},
    [PREDICT_JSON] = {.name = "--json", .kind = CLI_FLAG, .help = "print JSON Lines, one object per input"},
    [PREDICT_ATTENTION] = {.name = "--attention", .kind = CLI_STRING, .value = "OUT_DIR",
                           .help = "also write every layer's attention weights there, and a chart per input (the "
                                   "first " CLI_STR(MAX_CHARTS) ")"},
};

static int cmd_predict(const cli_args *a) {
    const char *const *inputs = cli_list(a, PREDICT_INPUT);
    int n_inputs = a->given[PREDICT_INPUT];
    const char *data = a->text[PREDICT_DATA], *attention = a->text[PREDICT_ATTENTION];
    long top = a->given[PREDICT_TOP] ? a->num[PREDICT_TOP] : -1;
    if (!n_inputs && !data)
        return cli_usage("predict", "expected inputs: --input \"TOKENS\" (one per sequence) or --data FILE|-");
    if (n_inputs && data) return cli_usage("predict", "--input and --data exclude each other");
    me_error err = {0};
    me_predictor p;
    me_dataset ds;
    me_predictions out;
    memset(&ds, 0, sizeof ds);
    memset(&out, 0, sizeof out);
    int code = 0;
    if (me_predictor_open(&p, a->args[0], &err)) return cli_fail(&err);
    const me_model_config *mc = &p.cfg.model;
    if (top > mc->n_classes) {
        code = cli_usage("predict", "--top %ld is more than the model's %d classes", top, mc->n_classes);
        goto done;
    }
    me_status st;
    if (data) {
        st = me_predictor_load_data(&p, &ds, data, ME_DATA_TARGETS_OPTIONAL, &err);
    } else {
        st = me_dataset_init(&ds, p.cfg.data.task, mc->vocab_size, mc->n_classes, mc->max_len, ME_DATA_TARGETS_OPTIONAL,
                             "--input", &err);
        for (int i = 0; i < n_inputs && !st; i++)
            st = me_dataset_add_line(&ds, inputs[i], strlen(inputs[i]), "--input", (size_t)i + 1, &err);
    }
    if (st) {
        code = cli_fail(&err);
        goto done;
    }
    cli_set_threads(p.cfg.train.threads);
    me_predict_options o = {.top_k = top > 0                                   ? (int)top
                                     : mc->n_classes < ME_PREDICT_DEFAULT_TOP ? mc->n_classes
                                                                              : ME_PREDICT_DEFAULT_TOP,
                            .attention = attention != NULL};
    if (me_predict(&p, &ds, &o, &out, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    char line[8192];
    for (size_t i = 0; i < out.n && !code; i++) {
        if (a->given[PREDICT_JSON]) code = print_json(example_json(&out, &ds, i), 0);
        else printf("%s\n", me_predict_describe(&out, &ds, i, 1, line, sizeof line));
    }
    if (!a->given[PREDICT_JSON] && out.eval.sequences) {
        accuracy_text(&out.eval, ds.task, line, sizeof line);
        printf("%s%s\n", line, out.eval.sequences < out.n ? " over the inputs with targets" : "");
    }
    if (attention && !code) {
        int charts;
        me_status ast = write_attention(attention, &p, &out, &ds, &charts, &err);
        if (ast == ME_ERR_FONT) { /* the weights are written; only the charts are missing */
            fprintf(stderr, "minienc: warning: %s\n", err.msg);
        } else if (ast) {
            code = cli_fail(&err);
            goto done;
        }
        fprintf(stderr, "minienc: wrote %s/attention.safetensors (%d layers x %zu inputs x %d heads) and %d chart%s "
                        "%s/attention_0.png%s\n", attention, out.attention.layers, out.attention.n, out.attention.heads,
                charts, charts == 1 ? "" : "s", attention, charts > 1 ? " .." : "");
    }
done:
    me_predictions_free(&out);
    me_dataset_free(&ds);
    me_predictor_free(&p);
    return code;
}

enum { EVAL_DATA, EVAL_ERRORS, EVAL_JSON, EVAL_CHECKPOINT, EVAL_SET, N_EVAL_OPTS };
static const cli_option eval_options[N_EVAL_OPTS] = {
    [EVAL_DATA] = {.name = "--data", .kind = CLI_STRING, .value = "FILE", .help = "the data file to evaluate on",
                   .def_text = "the checkpoint's data.valid"},
    [EVAL_ERRORS] = {.name = "--errors", .kind = CLI_INT, .value = "N", .lo = 0, .hi = 1000000000, .def = 0,
                     .help = "list the first N wrong examples"},
    [EVAL_JSON] = CLI_OPTION_JSON,
    [EVAL_CHECKPOINT] = {.name = "--checkpoint", .kind = CLI_STRING, .value = "FILE",
                         .help = "the older form: the checkpoint to evaluate with CONFIG given first"},
    [EVAL_SET] = CLI_OPTION_SET,
};

static int cmd_eval(const cli_args *a) {
    const char *ckpt = a->text[EVAL_CHECKPOINT], *data = a->text[EVAL_DATA];
    long errors = a->num[EVAL_ERRORS];
    if (a->n_sets && !ckpt)
        return cli_usage("eval", "--set applies to a CONFIG given with --checkpoint FILE; the model and its config "
                                 "come from the checkpoint");
    me_error err = {0};
    me_predictor p;
    if (ckpt) { /* the older form: eval CONFIG --checkpoint FILE */
        me_config cfg;
        if (cli_load_config(&cfg, a->args[0], a, &err) || me_predictor_open_config(&p, ckpt, &cfg, &err))
            return cli_fail(&err);
    } else if (me_predictor_open(&p, a->args[0], &err)) {
        return cli_fail(&err);
    }
    if (!data) data = p.cfg.data.valid;
    if (!data[0]) {
        me_predictor_free(&p);
        return cli_usage("eval", "no --data given and the stored config has no data.valid");
    }
    cli_set_threads(p.cfg.train.threads);
    me_dataset ds;
    me_predictions out;
    memset(&ds, 0, sizeof ds);
    memset(&out, 0, sizeof out);
    int code = 0;
    me_predict_options o = {0};
    if (me_predictor_load_data(&p, &ds, data, 0, &err) || me_predict(&p, &ds, &o, &out, &err)) {
        code = cli_fail(&err);
        goto done;
    }
    const me_eval_result *e = &out.eval;
    int tag = ds.task == ME_TASK_TAG;
    if (a->given[EVAL_JSON]) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", p.checkpoint);
        cJSON_AddNumberToObject(j, "step", (double)p.step);
        cJSON_AddStringToObject(j, "data", data);
        cJSON_AddStringToObject(j, "task", tag ? "tag" : "classify");
        cJSON_AddNumberToObject(j, "examples", (double)e->examples);
        cJSON_AddNumberToObject(j, "tokens", (double)e->tokens);
        cJSON_AddNumberToObject(j, "loss", e->loss);
        if (tag) {
            cJSON_AddNumberToObject(j, "token_accuracy", e->accuracy);
            cJSON_AddNumberToObject(j, "sequence_accuracy", e->seq_accuracy);
        } else {
            cJSON_AddNumberToObject(j, "accuracy", e->seq_accuracy);
        }
        if (errors > 0) {
            cJSON *list = cJSON_AddArrayToObject(j, "errors");
            long shown = 0;
            for (size_t i = 0; i < out.n && shown < errors; i++)
                if (!out.correct[i]) {
                    cJSON_AddItemToArray(list, example_json(&out, &ds, i));
                    shown++;
                }
        }
        code = print_json(j, 0);
    } else {
        char acc[512], line[8192];
        accuracy_text(e, ds.task, acc, sizeof acc);
        printf("%s (step %" PRId64 ") on %s: %zu examples, %zu tokens\nloss %.6f, %s\n", p.checkpoint, p.step, data,
               e->examples, e->tokens, e->loss, acc);
        if (errors > 0) {
            size_t wrong = e->sequences - e->seq_right;
            long shown = 0;
            printf("%zu wrong example%s%s\n", wrong, wrong == 1 ? "" : "s",
                   wrong ? (wrong > (size_t)errors ? ", the first ones:" : ":") : "");
            for (size_t i = 0; i < out.n && shown < errors; i++)
                if (!out.correct[i]) {
                    printf("  %s:%zu: %s\n", data, ds.lines[i],
                           me_predict_describe(&out, &ds, i, 1, line, sizeof line));
                    shown++;
                }
        }
    }
done:
    me_predictions_free(&out);
    me_dataset_free(&ds);
    me_predictor_free(&p);
    return code;
}

const cli_command cli_predict = {
    .name = "predict", .args = "RUN_DIR|CHECKPOINT", .args_what = "RUN_DIR or CHECKPOINT", .min_args = 1,
    .max_args = 1, .options = predict_options, .n_options = N_PREDICT_OPTS, .run = cmd_predict,
    .no_set_why = "the model and its config come from the checkpoint",
    .summary = "The model's answer for each input (config and weights from the checkpoint); with targets, right or\n"
               "wrong and the accuracy; --attention writes every layer's attention weights and a chart per input.",
};

const cli_command cli_eval = {
    .name = "eval", .args = "RUN_DIR|CHECKPOINT", .args_what = "RUN_DIR or CHECKPOINT (or CONFIG --checkpoint FILE)",
    .min_args = 1, .max_args = 1, .options = eval_options, .n_options = N_EVAL_OPTS, .run = cmd_eval,
    .summary = "Loss, token and sequence accuracy of a checkpoint on a data file (default: its config's valid set);\n"
               "--errors N lists the first N wrong examples. (Also: eval CONFIG --checkpoint FILE [--set ...].)",
};

void cli_show_examples(const char *run_dir, int n) {
    me_error err = {0};
    me_predictor p;
    me_dataset ds;
    me_predictions out;
    memset(&ds, 0, sizeof ds);
    memset(&out, 0, sizeof out);
    if (me_predictor_open(&p, run_dir, &err)) {
        fprintf(stderr, "minienc: error: %s\n", err.msg);
        return;
    }
    me_predict_options o = {.max_examples = (size_t)n};
    if (p.cfg.data.valid[0]) {
        if (me_predictor_load_data(&p, &ds, p.cfg.data.valid, 0, &err) || me_predict(&p, &ds, &o, &out, &err)) {
            fprintf(stderr, "minienc: error: %s\n", err.msg);
        } else {
            char line[1024];
            fprintf(stderr, "minienc: the first %zu validation example%s (input -> prediction):\n", out.n,
                    out.n == 1 ? "" : "s");
            for (size_t i = 0; i < out.n; i++)
                fprintf(stderr, "  %s\n", me_predict_describe(&out, &ds, i, 1, line, sizeof line));
        }
    }
    me_predictions_free(&out);
    me_dataset_free(&ds);
    me_predictor_free(&p);
}
