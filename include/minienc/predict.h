/* Using a trained model: predictions on inputs (the most probable classes at every position or for
 * every sequence), loss and accuracy against targets when they are given, and the attention
 * probabilities every layer's forward pass used. Eval mode (no dropout), in batches, with the kernel
 * threads the caller set (me_ops_set_threads).
 *
 * Life cycle:
 *   me_predictor_open(&p, "runs/default", err);          config and parameters from the checkpoint
 *   me_predictor_load_data(&p, &ds, "in.txt", ME_DATA_TARGETS_OPTIONAL, err);   or me_dataset_init +
 *                                                        me_dataset_add_line with p.cfg's sizes
 *   me_predict(&p, &ds, &opts, &preds, err);             activations sized at the first call
 *   me_predictions_free(&preds); me_dataset_free(&ds); me_predictor_free(&p);
 * Prints nothing. */
#ifndef MINIENC_PREDICT_H
#define MINIENC_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/attention.h"
#include "minienc/config.h"
#include "minienc/data.h"
#include "minienc/model.h"

#define ME_PREDICT_DEFAULT_TOP 3

/* Loss and accuracy of a model over a data set. accuracy is per target: per token for tag, per
 * sequence for classify; seq_accuracy per sequence (exact match: every target of the example right;
 * the same as accuracy for classify). Examples without targets count in neither. */
typedef struct {
    double loss, accuracy, seq_accuracy; /* NaN when nothing counts */
    size_t examples, tokens, targets;    /* examples, their input tokens, counted targets */
    size_t sequences;                    /* examples with targets */
    size_t right, seq_right;             /* targets right, sequences right */
} me_eval_result;

typedef struct {
    int top_k;            /* classes kept per output row, 1..n_classes (0: none kept) */
    int attention;        /* 1: keep every layer's attention probabilities */
    size_t max_examples;  /* 0: all; else only the first max_examples */
} me_predict_options;

/* Output rows: one per input token for tag, one per sequence for classify. */
typedef struct {
    size_t n;            /* examples predicted */
    me_task task;
    int top_k;
    size_t *row;         /* [n + 1] example i owns rows row[i] .. row[i+1]-1 */
    int32_t *pred;       /* [row[n]] most probable class (ties to the lower class) */
    float *pred_p;       /* [row[n]] its probability */
    int32_t *top;        /* [row[n] * top_k] classes, most probable first (NULL when top_k = 0) */
    float *top_p;        /* [row[n] * top_k] their probabilities */
    uint8_t *correct;    /* [n] 1 when example i has targets and every one is right */
    me_eval_result eval; /* over the examples with targets */
    me_attention attention; /* when asked; else zeroed */
} me_predictions;

void me_predictions_free(me_predictions *p);

/* Predicts with an allocated model (max batch >= batch_size, max seq >= the longest input) over the
 * first examples of ds (o may be NULL: no top classes, no attention, all examples); out (may be NULL)
 * gets the predictions, ev (may be NULL) the loss and accuracies. */
me_status me_predict_model(me_model *m, const me_dataset *ds, int batch_size, const me_predict_options *o,
                           me_predictions *out, me_eval_result *ev, me_error *err);

/* me_predict_model without predictions: what training reports at each evaluation. */
me_status me_evaluate(me_model *m, const me_dataset *ds, int batch_size, me_eval_result *out, me_error *err);

/* A model loaded from a checkpoint for prediction. */
typedef struct {
    me_config cfg;                /* the checkpoint's stored config */
    char checkpoint[ME_PATH_MAX]; /* the file read */
    int64_t step;                 /* updates done when it was saved */
    me_model model;
    int alloc_s;                  /* activations are sized for train.batch_size x alloc_s (0: not yet) */
} me_predictor;

/* Opens a checkpoint file, or a run directory's checkpoint.safetensors: the config stored in it
 * (refused if absent: only checkpoints minienc train wrote carry one, with ME_ERR_FORMAT), a full model
 * (vocab_size > 0, else ME_ERR_CONFIG) and its parameters. A missing file is ME_ERR_NOFILE. */
me_status me_predictor_open(me_predictor *p, const char *run_or_checkpoint, me_error *err);
/* The same with the given config instead of the stored one (`eval CONFIG --checkpoint FILE`): a
 * checkpoint that stores a config must have cfg's architecture (me_checkpoint_check_config); one
 * without is checked by its tensor shapes alone. */
me_status me_predictor_open_config(me_predictor *p, const char *checkpoint, const me_config *cfg, me_error *err);
void me_predictor_free(me_predictor *p);

/* Loads a data file ("-": standard input, named "stdin" in messages) with the predictor's task and
 * sizes. flags: ME_DATA_* (ME_DATA_TARGETS_OPTIONAL for inputs that may lack targets). */
me_status me_predictor_load_data(const me_predictor *p, me_dataset *ds, const char *path, unsigned flags,
                                 me_error *err);

/* me_predict_model over ds with the predictor's model in batches of its train.batch_size; allocates
 * the activations at the first call (a later call with longer inputs is refused, ME_ERR_USAGE). */
me_status me_predict(me_predictor *p, const me_dataset *ds, const me_predict_options *o, me_predictions *out,
                     me_error *err);

/* One example as text: "3 1 2 -> 2 1 3" (tag) or "0 1 1 0 -> class 0 (p 0.97)" (classify); with
 * verdict and targets: "  right", or "  wrong at 2, 5 (target 2 1 3)" (1-based positions) /
 * "  wrong (target 1)". Truncated to fit buf[cap]; returns buf. */
char *me_predict_describe(const me_predictions *p, const me_dataset *ds, size_t i, int verdict, char *buf,
                          size_t cap);

/* Draws RUN_DIR/plots/attention.png: the attention of the first example of the stored config's
 * validation set under the run's checkpoint. Skipped (ME_OK, *written = 0) when the run has no
 * checkpoint or its config no validation set. Runs single-threaded, so that a redraw gives the same
 * bytes whatever thread count the caller uses. */
me_status me_predict_plot_run(const char *run_dir, int *written, me_error *err);

#endif
