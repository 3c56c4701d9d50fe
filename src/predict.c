/* Predictions, evaluation and attention maps of a trained model (see predict.h). */
#include "minienc/predict.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "minienc/checkpoint.h"
#include "minienc/ops.h"

void me_predictions_free(me_predictions *p) {
    free(p->row);
    free(p->pred);
    free(p->pred_p);
    free(p->top);
    free(p->top_p);
    free(p->correct);
    me_attention_free(&p->attention);
    memset(p, 0, sizeof *p);
}

/* Output rows of example i: its tokens (tag) or one (classify). */
static size_t rows_of(const me_dataset *ds, size_t i) { return ds->task == ME_TASK_TAG ? me_dataset_len(ds, i) : 1; }

static me_status alloc_outputs(me_predictions *out, const me_model *m, const me_dataset *ds, size_t n, int top_k,
                               int attention, me_error *err) {
    memset(out, 0, sizeof *out);
    out->n = n;
    out->task = ds->task;
    out->top_k = top_k;
    out->row = malloc((n + 1) * sizeof *out->row);
    out->correct = calloc(n, 1);
    if (!out->row || !out->correct) goto nomem;
    out->row[0] = 0;
    int longest = 0;
    for (size_t i = 0; i < n; i++) {
        out->row[i + 1] = out->row[i] + rows_of(ds, i);
        if ((int)me_dataset_len(ds, i) > longest) longest = (int)me_dataset_len(ds, i);
    }
    size_t rows = out->row[n];
    out->pred = malloc(rows * sizeof *out->pred);
    out->pred_p = malloc(rows * sizeof *out->pred_p);
    if (!out->pred || !out->pred_p) goto nomem;
    if (top_k > 0) {
        out->top = malloc(rows * (size_t)top_k * sizeof *out->top);
        out->top_p = malloc(rows * (size_t)top_k * sizeof *out->top_p);
        if (!out->top || !out->top_p) goto nomem;
    }
    if (attention) {
        me_status st = me_attention_alloc(&out->attention, n, m->cfg.n_layers, m->cfg.n_heads, longest, err);
        if (st) {
            me_predictions_free(out);
            return st;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < me_dataset_len(ds, i); j++)
                out->attention.tokens[i * (size_t)longest + j] = ds->tokens[ds->offsets[i] + j];
    }
    return ME_OK;
nomem:
    me_predictions_free(out);
    return me_error_set(err, ME_ERR_NOMEM, "predict: out of memory for the predictions of %zu examples", n);
}

/* Copies the attention probabilities of the last forward pass (batch of b examples padded to s,
 * batch entry i being example idx[i]) into a: rows of padding queries stay 0, and so do keys past an
 * input's end (the forward pass gave them exactly 0). */
static void keep_attention(me_attention *a, const me_model *m, const me_dataset *ds, const size_t *idx, size_t b,
                           int s) {
    int h = m->cfg.n_heads;
    size_t ss = (size_t)s * (size_t)s, as = (size_t)a->s;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const float *probs = m->enc.acts[l].probs; /* [B,H,S,S] */
        for (size_t i = 0; i < b; i++) {
            size_t len = me_dataset_len(ds, idx[i]);
            float *dst = me_attention_at(a, l, idx[i]); /* [H, a->s, a->s] */
            for (int hi = 0; hi < h; hi++)
                for (size_t q = 0; q < len; q++)
                    memcpy(dst + ((size_t)hi * as + q) * as, probs + (i * (size_t)h + (size_t)hi) * ss + q * (size_t)s,
                           (size_t)s * sizeof(float));
        }
    }
}

/* order[n]: examples 0..n by input length, shortest first, in file order within a length (a counting
 * sort; counts has room for max_len_seen + 1 entries). */
static void order_by_length(const me_dataset *ds, size_t n, size_t *order, size_t *counts) {
    size_t L = (size_t)ds->max_len_seen;
    memset(counts, 0, (L + 1) * sizeof *counts);
    for (size_t i = 0; i < n; i++) counts[me_dataset_len(ds, i)]++;
    for (size_t l = 0, start = 0; l <= L; l++) {
        size_t c = counts[l];
        counts[l] = start;
        start += c;
    }
    for (size_t i = 0; i < n; i++) order[counts[me_dataset_len(ds, i)]++] = i;
}

me_status me_predict_model(me_model *m, const me_dataset *ds, int batch_size, const me_predict_options *o,
                           me_predictions *out, me_eval_result *ev, me_error *err) {
    me_predict_options none = {0};
    if (!o) o = &none;
    size_t n = o->max_examples && o->max_examples < ds->n ? o->max_examples : ds->n;
    int cl = m->cfg.n_classes;
    if (o->top_k < 0 || o->top_k > cl)
        return me_error_set(err, ME_ERR_USAGE, "top %d: expected 0 <= K <= n_classes = %d", o->top_k, cl);
    if (batch_size < 1 || batch_size > m->max_b || ds->max_len_seen > m->max_s)
        return me_error_set(err, ME_ERR_USAGE, "predict: batches of %d x %d do not fit the model's %d x %d activations",
                            batch_size, ds->max_len_seen, m->max_b, m->max_s);
    me_status st;
    if (out && (st = alloc_outputs(out, m, ds, n, o->top_k, o->attention, err))) return st;
    int kk = o->top_k > 1 ? o->top_k : 1;
    size_t cap = (size_t)batch_size * (size_t)ds->max_len_seen;
    int32_t *tokens = malloc(cap * sizeof *tokens), *targets = malloc(cap * sizeof *targets);
    int32_t *top = malloc(cap * (size_t)kk * sizeof *top); /* [rows, kk] */
    float *top_p = malloc(cap * (size_t)kk * sizeof *top_p);
    uint8_t *pad = malloc(cap);
    size_t *order = malloc((n ? n : 1) * sizeof *order), *counts = malloc(((size_t)ds->max_len_seen + 1) * sizeof *counts);
    me_eval_result e;
    memset(&e, 0, sizeof e);
    if (!tokens || !targets || !top || !top_p || !pad || !order || !counts) {
        st = me_error_set(err, ME_ERR_NOMEM, "predict: out of memory for batches of %d x %d", batch_size,
                          ds->max_len_seen);
        goto done;
    }
    /* batches of similar lengths: a batch is as long as its longest example, so sorted batches carry
     * little padding (on the shipped 2..10-token sets, a third fewer positions than in file order) */
    order_by_length(ds, n, order, counts);
    double loss_sum = 0.0;
    for (size_t start = 0; start < n; start += (size_t)batch_size) {
        size_t b = n - start < (size_t)batch_size ? n - start : (size_t)batch_size;
        const size_t *idx = order + start;
        size_t s = me_dataset_batch(ds, idx, b, tokens, pad, targets);
        size_t right = 0;
        double loss = me_model_forward(m, tokens, pad, targets, (int)b, (int)s, 0, NULL, &right);
        me_model_top_k(m, kk, top, top_p);
        if (m->n_targets) loss_sum += loss * (double)m->n_targets;
        e.targets += m->n_targets;
        e.right += right;
        size_t per = ds->task == ME_TASK_TAG ? s : 1; /* output rows per batch entry */
        for (size_t i = 0; i < b; i++) {
            size_t ex = idx[i], nr = rows_of(ds, ex);
            int has = me_dataset_has_targets(ds, ex), ok = 1;
            for (size_t j = 0; j < nr; j++) {
                size_t r = i * per + j; /* batch row */
                if (targets[r] >= 0 && top[r * (size_t)kk] != targets[r]) ok = 0;
                if (!out) continue;
                size_t dst = out->row[ex] + j;
                out->pred[dst] = top[r * (size_t)kk];
                out->pred_p[dst] = top_p[r * (size_t)kk];
                if (o->top_k > 0) {
                    memcpy(out->top + dst * (size_t)o->top_k, top + r * (size_t)kk, (size_t)o->top_k * sizeof *top);
                    memcpy(out->top_p + dst * (size_t)o->top_k, top_p + r * (size_t)kk,
                           (size_t)o->top_k * sizeof *top_p);
                }
            }
            e.tokens += me_dataset_len(ds, ex);
            if (has) {
                e.sequences++;
                e.seq_right += (size_t)ok;
                if (out) out->correct[ex] = (uint8_t)ok;
            }
        }
        if (out && o->attention) keep_attention(&out->attention, m, ds, idx, b, (int)s);
    }
    e.examples = n;
    e.loss = e.targets ? loss_sum / (double)e.targets : NAN;
    e.accuracy = e.targets ? (double)e.right / (double)e.targets : NAN;
    e.seq_accuracy = e.sequences ? (double)e.seq_right / (double)e.sequences : NAN;
    if (out) out->eval = e;
    if (ev) *ev = e;
    st = ME_OK;
done:
    free(tokens), free(targets), free(top), free(top_p), free(pad), free(order), free(counts);
    if (st && out) me_predictions_free(out);
    return st;
}

me_status me_evaluate(me_model *m, const me_dataset *ds, int batch_size, me_eval_result *out, me_error *err) {
    return me_predict_model(m, ds, batch_size, NULL, NULL, out, err);
}

/* ---- a model from a checkpoint ------------------------------------------------------------------- */

/* Model and parameters for p->cfg from p->checkpoint. */
static me_status load_model(me_predictor *p, me_error *err) {
    if (p->cfg.model.vocab_size <= 0)
        return me_error_set(err, ME_ERR_CONFIG, "%s: the config has no model.vocab_size, expected a full model "
                            "(embedding and head) trained by minienc train", p->checkpoint);
    me_status st = me_checkpoint_read_step(p->checkpoint, &p->step, err);
    if (st || (st = me_model_build(&p->model, &p->cfg, err))) return st;
    if ((st = me_checkpoint_load(p->checkpoint, &p->model.params, NULL, NULL, err))) me_model_free(&p->model);
    return st;
}

me_status me_predictor_open(me_predictor *p, const char *run_or_checkpoint, me_error *err) {
    memset(p, 0, sizeof *p);
    me_status st = me_checkpoint_locate(run_or_checkpoint, p->checkpoint, sizeof p->checkpoint, err);
    if (st || (st = me_checkpoint_read_config(p->checkpoint, &p->cfg, err))) return st;
    return load_model(p, err);
}

me_status me_predictor_open_config(me_predictor *p, const char *checkpoint, const me_config *cfg, me_error *err) {
    memset(p, 0, sizeof *p);
    me_status st = me_checkpoint_locate(checkpoint, p->checkpoint, sizeof p->checkpoint, err);
    if (st) return st;
    me_config stored;
    me_error ignored;
    if (me_checkpoint_read_config(p->checkpoint, &stored, &ignored) == ME_OK &&
        (st = me_checkpoint_check_config(p->checkpoint, &stored, cfg, err)))
        return st;
    p->cfg = *cfg;
    return load_model(p, err);
}

void me_predictor_free(me_predictor *p) {
    me_model_free(&p->model);
    memset(p, 0, sizeof *p);
}

me_status me_predictor_load_data(const me_predictor *p, me_dataset *ds, const char *path, unsigned flags,
                                 me_error *err) {
    const me_model_config *c = &p->cfg.model;
    if (strcmp(path, "-") == 0)
        return me_dataset_read(ds, stdin, "stdin", p->cfg.data.task, c->vocab_size, c->n_classes, c->max_len, flags,
                               err);
    return me_dataset_load_flags(ds, path, p->cfg.data.task, c->vocab_size, c->n_classes, c->max_len, flags, err);
}

me_status me_predict(me_predictor *p, const me_dataset *ds, const me_predict_options *o, me_predictions *out,
                     me_error *err) {
    int b = p->cfg.train.batch_size;
    if (p->alloc_s == 0) {
        me_status st = me_model_alloc(&p->model, b, ds->max_len_seen, err);
        if (st) return st;
        p->alloc_s = ds->max_len_seen;
    } else if (ds->max_len_seen > p->alloc_s) {
        return me_error_set(err, ME_ERR_USAGE, "predict: inputs of %d tokens after a first call sized for %d",
                            ds->max_len_seen, p->alloc_s);
    }
    return me_predict_model(&p->model, ds, b, o, out, NULL, err);
}

/* ---- text ---------------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
} text;

static void put(text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void put(text *t, const char *fmt, ...) {
    if (t->len >= t->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

static void put_tokens(text *t, const int32_t *v, size_t n) {
    for (size_t j = 0; j < n; j++) put(t, "%s%" PRId32, j ? " " : "", v[j]);
}

char *me_predict_describe(const me_predictions *p, const me_dataset *ds, size_t i, int verdict, char *buf,
                          size_t cap) {
    text t = {buf, cap, 0};
    if (cap) buf[0] = '\0';
    const int32_t *pred = p->pred + p->row[i];
    put_tokens(&t, ds->tokens + ds->offsets[i], me_dataset_len(ds, i));
    put(&t, " -> ");
    if (p->task == ME_TASK_TAG)
        put_tokens(&t, pred, p->row[i + 1] - p->row[i]);
    else
        put(&t, "class %" PRId32 " (p %.2f)", pred[0], (double)p->pred_p[p->row[i]]);
    if (!verdict || !me_dataset_has_targets(ds, i)) return buf;
    const int32_t *tg = ds->targets + ds->target_offsets[i];
    size_t nt = ds->target_offsets[i + 1] - ds->target_offsets[i];
    if (p->correct[i]) {
        put(&t, "  right");
        return buf;
    }
    put(&t, "  wrong");
    if (p->task == ME_TASK_TAG) {
        put(&t, " at");
        int first = 1;
        for (size_t j = 0; j < nt; j++)
            if (pred[j] != tg[j]) {
                put(&t, "%s %zu", first ? "" : ",", j + 1);
                first = 0;
            }
    }
    put(&t, " (target ");
    put_tokens(&t, tg, nt);
    put(&t, ")");
    return buf;
}

/* ---- the run's chart ----------------------------------------------------------------------------- */

me_status me_predict_plot_run(const char *run_dir, int *written, me_error *err) {
    char path[ME_PATH_MAX + 64], title[2048], line[1536];
    struct stat sb;
    *written = 0;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run_dir);
    if (stat(path, &sb) != 0) return ME_OK;
    me_predictor p;
    me_dataset ds;
    me_predictions out;
    memset(&ds, 0, sizeof ds);
    memset(&out, 0, sizeof out);
    me_status st = me_predictor_open(&p, path, err);
    if (st) return st;
    if (!p.cfg.data.valid[0]) goto done;
    if ((st = me_predictor_load_data(&p, &ds, p.cfg.data.valid, 0, err))) goto done;
    /* one thread: a matmul split across threads can round differently, and a redraw by `minienc plot`
     * must give the same bytes as the chart training drew */
    int threads = me_ops_threads();
    me_ops_set_threads(1);
    me_predict_options o = {.top_k = 0, .attention = 1, .max_examples = 1};
    st = me_predict(&p, &ds, &o, &out, err);
    me_ops_set_threads(threads);
    if (st) goto done;
    snprintf(path, sizeof path, "%s/plots", run_dir);
    if ((st = me_file_mkdir_p(path, err))) goto done;
    snprintf(title, sizeof title, "first validation example, step %" PRId64 ": %s", p.step,
             me_predict_describe(&out, &ds, 0, 1, line, sizeof line));
    snprintf(path, sizeof path, "%s/plots/attention.png", run_dir);
    if ((st = me_attention_png(&out.attention, 0, title, path, err)) == ME_OK) *written = 1;
done:
    me_predictions_free(&out);
    me_dataset_free(&ds);
    me_predictor_free(&p);
    return st;
}
