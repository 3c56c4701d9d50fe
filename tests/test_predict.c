/* Tests for predictions, evaluation and attention maps (predict.h, attention.h) and the commands that
 * use them (predict, eval, count RUN_DIR, plot, the end of train). Predictions are checked against
 * each example run alone with a naive softmax in double; accuracies against counts made here; the
 * attention file by a round trip; charts by decoding the PNG. The commands run on two small runs
 * trained once in the group setup (reverse: tag; parity: classify). Set MINIENC_KEEP_PLOTS=DIR to keep
 * the charts for viewing. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include "minienc/attention.h"
#include "minienc/predict.h"
#include "minienc/safetensors.h"

typedef struct {
    char root[512];        /* temporary folder */
    char tag_run[600];     /* runs trained in setup */
    char cls_run[600];
    char train_log[16384]; /* stderr of the tag run's training */
} fixture;

static fixture fx;

/* Runs `minienc ARGS` capturing stdout+stderr into out; returns the exit status. */
static int run_bin(char *out, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int run_bin(char *out, size_t cap, const char *fmt, ...) {
    char args[4096], cmd[5000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", me_test_bin(), args);
    return me_run_capture(cmd, out, cap);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
    (void)state;
    me_make_temp_dir(fx.root, sizeof fx.root);
    const char *src = me_test_source_dir();
    /* parity first, so that the log kept is the reverse run's */
    static const char *tasks[2][3] = {{"classify", "parity", "2"}, {"tag", "reverse", "8"}};
    for (int k = 0; k < 2; k++) {
        char ini[700], text[2048];
        snprintf(ini, sizeof ini, "%s/%s.ini", fx.root, tasks[k][1]);
        snprintf(text, sizeof text,
                 "[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\nn_layers = 2\ndropout = 0\nvocab_size = %s\n"
                 "max_len = 16\n[data]\ntask = %s\ntrain = %s/data/%s/train.txt\nvalid = %s/data/%s/valid.txt\n"
                 "[train]\nsteps = %d\nbatch_size = 16\nseed = 3\neval_every = 30\nthreads = 1\nlr = 3e-3\n"
                 "[log]\nhistory_every = 10\n",
                 tasks[k][2], tasks[k][0], src, tasks[k][1], src, tasks[k][1], k == 0 ? 30 : 120);
        write_text(ini, text);
        char *run = k == 0 ? fx.cls_run : fx.tag_run;
        snprintf(run, sizeof fx.tag_run, "%s/run-%s", fx.root, tasks[k][1]);
        int rc = run_bin(fx.train_log, sizeof fx.train_log, "train '%s' --set log.out_dir='%s'", ini, run);
        if (rc != 0) {
            fprintf(stderr, "training %s failed (%d): %s\n", tasks[k][1], rc, fx.train_log);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    me_remove_tree(fx.root);
    return 0;
}

/* ---- top classes ------------------------------------------------------------------------------- */

static void top_k_should_order_classes_by_probability_with_ties_to_the_lower_class(void **state) {
    (void)state;
    me_model m;
    memset(&m, 0, sizeof m);
    enum { C = 6, ROWS = 3, K = 4 };
    float probs[ROWS * C] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f,  /* a tie for first: class 1 before 3 */
                             0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f,    /* ties among zeros */
                             0.2f, 0.2f, 0.2f, 0.2f, 0.1f, 0.1f};
    m.cfg.n_classes = C;
    m.task = ME_TASK_CLASSIFY;
    m.b = ROWS;
    m.s = 1;
    m.probs = probs;
    int32_t idx[ROWS * K];
    float p[ROWS * K];
    me_model_top_k(&m, K, idx, p);
    static const int32_t want[ROWS * K] = {1, 3, 4, 0, 4, 0, 1, 2, 0, 1, 2, 3};
    for (int i = 0; i < ROWS * K; i++) {
        assert_int_equal(idx[i], want[i]);
        assert_true(p[i] == probs[(i / K) * C + want[i]]);
    }
}

/* ---- predictions against each example alone -------------------------------------------------- */

/* Softmax of logits[c] in double into p[c]; returns the argmax (first of equals). */
static int naive_softmax(const float *logits, int c, double *p) {
    int arg = 0;
    for (int j = 1; j < c; j++)
        if (logits[j] > logits[arg]) arg = j;
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)logits[j] - logits[arg]);
    for (int j = 0; j < c; j++) p[j] = exp((double)logits[j] - logits[arg]) / sum;
    return arg;
}

static void check_predictions_against_single_examples(const char *run) {
    me_error err = {0};
    me_predictor batched, single;
    assert_int_equal(me_predictor_open(&batched, run, &err), ME_OK);
    assert_int_equal(me_predictor_open(&single, run, &err), ME_OK);
    me_dataset ds;
    assert_int_equal(me_predictor_load_data(&batched, &ds, batched.cfg.data.valid, 0, &err), ME_OK);
    int c = batched.cfg.model.n_classes, k = c < 3 ? c : 3;
    me_predict_options o = {.top_k = k};
    me_predictions out;
    assert_int_equal(me_predict(&batched, &ds, &o, &out, &err), ME_OK);
    assert_int_equal(out.n, ds.n);
    me_model *m = &single.model;
    assert_int_equal(me_model_alloc(m, 1, ds.max_len_seen, &err), ME_OK);
    double *p = malloc((size_t)c * sizeof *p), loss_sum = 0;
    size_t targets = 0, right = 0, seq_right = 0, tokens = 0;
    for (size_t i = 0; i < ds.n; i++) {
        int32_t tok[64], tg[64];
        uint8_t pad[64];
        size_t len = me_dataset_len(&ds, i), nr = out.row[i + 1] - out.row[i];
        int s = (int)me_dataset_batch(&ds, &i, 1, tok, pad, tg);
        me_model_forward(m, tok, pad, tg, 1, s, 0, NULL, NULL);
        const int32_t *want = ds.targets + ds.target_offsets[i];
        assert_int_equal(nr, ds.task == ME_TASK_TAG ? len : 1);
        int all = 1;
        for (size_t r = 0; r < nr; r++) {
            int arg = naive_softmax(m->logits + r * (size_t)c, c, p);
            size_t row = out.row[i] + r;
            /* a batch pads to its longest input, which may round differently: compare probabilities with a
             * tolerance and the argmax only where it is clear */
            if (!(fabs((double)out.pred_p[row] - p[out.pred[row]]) <= 1e-5)) {
                print_error("%s example %zu row %zu: p %.9g, alone %.9g\n", run, i, r, (double)out.pred_p[row],
                            p[out.pred[row]]);
                fail();
            }
            if (p[arg] - p[out.pred[row]] > 1e-5) {
                print_error("%s example %zu row %zu: predicted %d, alone the argmax is %d\n", run, i, r,
                            out.pred[row], arg);
                fail();
            }
            for (int j = 0; j + 1 < k; j++) /* top classes in descending order */
                assert_true(out.top_p[row * (size_t)k + (size_t)j] >= out.top_p[row * (size_t)k + (size_t)j + 1]);
            assert_int_equal(out.top[row * (size_t)k], out.pred[row]);
            loss_sum += -log(p[want[r]]);
            targets++;
            right += out.pred[row] == want[r];
            all &= out.pred[row] == want[r];
        }
        seq_right += (size_t)all;
        tokens += len;
        assert_int_equal(out.correct[i], all);
    }
    const me_eval_result *e = &out.eval;
    assert_int_equal(e->examples, ds.n);
    assert_int_equal(e->sequences, ds.n);
    assert_int_equal(e->tokens, tokens);
    assert_int_equal(e->targets, targets);
    assert_int_equal(e->right, right);
    assert_int_equal(e->seq_right, seq_right);
    assert_true(e->accuracy == (double)right / (double)targets);
    assert_true(e->seq_accuracy == (double)seq_right / (double)ds.n);
    double want_loss = loss_sum / (double)targets;
    if (!(fabs(e->loss - want_loss) <= 1e-5 * want_loss + 1e-7)) {
        print_error("%s: loss %.9g, naive %.9g\n", run, e->loss, want_loss);
        fail();
    }
    /* training's evaluation is the same computation */
    me_eval_result ev;
    assert_int_equal(me_evaluate(&batched.model, &ds, batched.cfg.train.batch_size, &ev, &err), ME_OK);
    assert_true(ev.loss == e->loss && ev.seq_right == e->seq_right && ev.right == e->right);
    printf("  %s: %zu examples, token accuracy %.4f, sequence accuracy %.4f, loss %.5f\n", run, ds.n, e->accuracy,
           e->seq_accuracy, e->loss);
    free(p);
    me_predictions_free(&out);
    me_dataset_free(&ds);
    me_predictor_free(&batched);
    me_predictor_free(&single);
}

static void predictions_should_match_each_example_run_alone(void **state) {
    (void)state;
    check_predictions_against_single_examples(fx.tag_run);
    check_predictions_against_single_examples(fx.cls_run);
}

/* ---- the attention file ------------------------------------------------------------------------ */

static void attention_file_should_read_back_what_was_written_and_refuse_gaps(void **state) {
    (void)state;
    me_attention a, b;
    me_error err = {0};
    assert_int_equal(me_attention_alloc(&a, 3, 2, 2, 4, &err), ME_OK);
    for (size_t i = 0; i < 2 * 3 * 2 * 4 * 4; i++) a.weights[i] = (float)i / 100.0f;
    int64_t tok[12] = {1, 2, 3, 4, 5, 6, -1, -1, 7, -1, -1, -1};
    memcpy(a.tokens, tok, sizeof tok);
    assert_int_equal(me_attention_len(&a, 0), 4);
    assert_int_equal(me_attention_len(&a, 1), 2);
    assert_int_equal(me_attention_len(&a, 2), 1);
    char path[700];
    snprintf(path, sizeof path, "%s/attention.safetensors", fx.root);
    assert_int_equal(me_attention_write(&a, path, "ck.safetensors", 42, &err), ME_OK);
    assert_int_equal(me_attention_read(&b, path, &err), ME_OK);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.layers, 2);
    assert_int_equal(b.heads, 2);
    assert_int_equal(b.s, 4);
    assert_memory_equal(b.weights, a.weights, 2 * 3 * 2 * 4 * 4 * sizeof(float));
    assert_memory_equal(b.tokens, a.tokens, sizeof tok);
    me_st_file f;
    assert_int_equal(me_st_read(&f, path, &err), ME_OK);
    assert_string_equal(me_st_meta(&f, "format"), ME_ATTENTION_FORMAT);
    assert_string_equal(me_st_meta(&f, "step"), "42");
    const me_st_tensor *t = me_st_find(&f, "encoder.layers.1.self_attn.weights");
    assert_non_null(t);
    assert_int_equal(t->dtype, ME_DT_F32);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(me_st_find(&f, "tokens")->dtype, ME_DT_I64);
    me_st_free(&f);
    me_attention_free(&b);
    /* layers 0 and 2 without 1: refused */
    me_st_writer w;
    me_st_writer_init(&w);
    size_t shape[4] = {3, 2, 4, 4}, tshape[2] = {3, 4};
    assert_int_equal(me_st_writer_add(&w, "encoder.layers.0.self_attn.weights", ME_DT_F32, 4, shape, a.weights, &err),
                     ME_OK);
    assert_int_equal(me_st_writer_add(&w, "encoder.layers.2.self_attn.weights", ME_DT_F32, 4, shape, a.weights, &err),
                     ME_OK);
    assert_int_equal(me_st_writer_add(&w, "tokens", ME_DT_I64, 2, tshape, a.tokens, &err), ME_OK);
    assert_int_equal(me_st_writer_write(&w, path, &err), ME_OK);
    me_st_writer_free(&w);
    assert_int_equal(me_attention_read(&b, path, &err), ME_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "without gaps"));
    me_attention_free(&a);
}

/* ---- the chart --------------------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Pixels of exactly colour (r, g, b). */
static size_t count_color(const unsigned char *img, int w, int h, int r, int g, int b) {
    size_t n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) n += img[3 * i] == r && img[3 * i + 1] == g && img[3 * i + 2] == b;
    return n;
}

static void attention_chart_should_draw_one_square_cell_per_weight_and_be_deterministic(void **state) {
    (void)state;
    char dir[512], p1[700], p2[700];
    int keep = me_make_output_dir(dir, sizeof dir);
    me_attention a;
    me_error err = {0};
    /* 2 layers x 3 heads, input of 5 tokens padded to 7: weight 1 on the anti-diagonal (the darkest
     * colour), 0 elsewhere (the lightest) */
    assert_int_equal(me_attention_alloc(&a, 1, 2, 3, 7, &err), ME_OK);
    for (int j = 0; j < 5; j++) a.tokens[j] = 10 + j;
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 3; h++)
            for (int q = 0; q < 5; q++) me_attention_at(&a, l, 0)[(h * 7 + q) * 7 + (4 - q)] = 1.0f;
    snprintf(p1, sizeof p1, "%s/attention_chart_a.png", dir);
    snprintf(p2, sizeof p2, "%s/attention_chart_b.png", dir);
    assert_int_equal(me_attention_png(&a, 0, "input 0: 10 11 12 13 14 -> 14 13 12 11 10", p1, &err), ME_OK);
    assert_int_equal(me_attention_png(&a, 0, "input 0: 10 11 12 13 14 -> 14 13 12 11 10", p2, &err), ME_OK);
    size_t n1, n2;
    unsigned char *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    assert_non_null(b1);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1), free(b2);
    int w, h, comp;
    unsigned char *img = stbi_load(p1, &w, &h, &comp, 3);
    assert_non_null(img);
    /* 2 x 3 panels of 5 dark cells each (the padding left out): the dark pixels are 30 equal squares, plus
     * the top of the colour bar; the white-ish cells 2 x 3 x 20 squares of the same size */
    size_t dark = count_color(img, w, h, 8, 48, 107), light = count_color(img, w, h, 247, 251, 255);
    assert_true(dark > 0);
    size_t per_bar_row = 18; /* the bar's top row is the darkest colour too (BAR_W pixels wide) */
    size_t cells_dark = dark - per_bar_row, cell_area = cells_dark / 30;
    assert_int_equal(cells_dark % 30, 0);
    int side = (int)lround(sqrt((double)cell_area));
    assert_int_equal((size_t)side * (size_t)side, cell_area); /* square cells */
    assert_true(side >= 5);
    /* the light cells: 20 per panel, minus the bar's bottom row */
    assert_int_equal((light - per_bar_row) % cell_area, 0);
    assert_int_equal((light - per_bar_row) / cell_area, 120);
    stbi_image_free(img);
    if (!keep) me_remove_tree(dir);
    me_attention_free(&a);
}

/* ---- the commands ------------------------------------------------------------------------------ */

static void predict_command_should_answer_inputs_in_text_and_json(void **state) {
    (void)state;
    char out[1 << 16];
    int rc = run_bin(out, sizeof out, "predict '%s' --input '1 2 3 4 5' --input '3 1 2\t2 1 3' 2>&1", fx.tag_run);
    assert_int_equal(rc, 0);
    /* the same answers as the library gives (checked against single examples above) */
    me_error err = {0};
    me_predictor p;
    me_dataset ds;
    me_predictions pr;
    assert_int_equal(me_predictor_open(&p, fx.tag_run, &err), ME_OK);
    assert_int_equal(me_dataset_init(&ds, ME_TASK_TAG, 8, 8, 16, ME_DATA_TARGETS_OPTIONAL, "t", &err), ME_OK);
    assert_int_equal(me_dataset_add_line(&ds, "1 2 3 4 5", 9, "t", 1, &err), ME_OK);
    assert_int_equal(me_dataset_add_line(&ds, "3 1 2\t2 1 3", 11, "t", 2, &err), ME_OK);
    me_predict_options o = {.top_k = 3};
    assert_int_equal(me_predict(&p, &ds, &o, &pr, &err), ME_OK);
    char line[512], want[2048];
    snprintf(want, sizeof want, "%s\n", me_predict_describe(&pr, &ds, 0, 1, line, sizeof line));
    size_t used = strlen(want);
    snprintf(want + used, sizeof want - used, "%s\n", me_predict_describe(&pr, &ds, 1, 1, line, sizeof line));
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "1 2 3 4 5 -> "));
    assert_non_null(strstr(out, pr.correct[1] ? "3 1 2 -> 2 1 3  right" : "  wrong at"));
    assert_non_null(strstr(out, "token accuracy"));
    assert_non_null(strstr(out, "sequence accuracy"));
    assert_non_null(strstr(out, "over the inputs with targets")); /* one of two inputs had targets */
    /* JSON Lines: one object per input, target and correct only where given, top-3 per position */
    rc = run_bin(out, sizeof out, "predict '%s' --input '1 2 3 4 5' --input '3 1 2\t2 1 3' --json", fx.tag_run);
    assert_int_equal(rc, 0);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_non_null(strstr(out, "{\"input\":[1,2,3,4,5],\"prediction\":["));
    assert_null(strstr(out, "\"target\""));
    assert_non_null(strstr(second, "{\"input\":[3,1,2],\"prediction\":["));
    assert_non_null(strstr(second, "\"target\":[2,1,3],\"correct\":"));
    size_t tops = 0;
    for (const char *q = out; (q = strstr(q, "{\"token\":")); q++) tops++;
    assert_int_equal(tops, 5 * 3);
    me_predictions_free(&pr);
    me_dataset_free(&ds);
    me_predictor_free(&p);
    /* classify: one class and its probability */
    rc = run_bin(out, sizeof out, "predict '%s' --input '0 1 1 0' --top 1 --json", fx.cls_run);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"prediction\":["));
    assert_non_null(strstr(out, "\"top\":[[{\"token\":"));
    rc = run_bin(out, sizeof out, "predict '%s' --input '0 1 1 0' 2>&1", fx.cls_run);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "0 1 1 0 -> class "));
    assert_non_null(strstr(out, " (p "));
}

static void predict_command_should_read_stdin_and_refuse_bad_input_with_exit_2(void **state) {
    (void)state;
    char out[1 << 14], cmd[2048];
    snprintf(cmd, sizeof cmd, "printf '1 2 3\\n# a comment\\n4 5\\t5 4\\n' | %s predict '%s' --data - 2>&1",
             me_test_bin(), fx.tag_run);
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "1 2 3 -> "));
    assert_non_null(strstr(out, "4 5 -> "));
    static const struct {
        const char *args, *phrase;
    } bad[] = {
        {"--input '1 2' --input '1 9'", "--input:2:3: input token 9 is out of range"},
        {"--input '1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1'", "--input:1:33: more than max_len=16"},
        {"--input '1,2'", "--input:1:2: "},
        {"--input '1 2' --top 9", "--top 9 is more than the model's 8 classes"},
        {"--data /nonexistent/in.txt", "/nonexistent/in.txt: cannot open"},
        {"", "expected inputs"},
        {"--input 1 --data -", "exclude each other"},
        {"--input 1 --set train.steps=3", "--set does not apply"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run_bin(out, sizeof out, "predict '%s' %s 2>&1", fx.tag_run, bad[i].args);
        if (rc != 2 || !strstr(out, bad[i].phrase) || !strstr(out, "minienc: error: ")) {
            print_error("predict %s: exit %d, output '%s'; want exit 2 and '%s'\n", bad[i].args, rc, out,
                        bad[i].phrase);
            fail();
        }
    }
    /* a missing run directory or checkpoint is bad input too */
    int rc = run_bin(out, sizeof out, "predict /nonexistent/run --input 1 2>&1");
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "/nonexistent/run"));
    rc = run_bin(out, sizeof out, "predict '%s' --input 1 2>&1", fx.root); /* a folder without a checkpoint */
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "no checkpoint.safetensors"));
}

static void predict_attention_should_write_the_file_and_a_chart_per_input(void **state) {
    (void)state;
    char out[1 << 14], dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/att/deeper", fx.root);
    int rc = run_bin(out, sizeof out, "predict '%s' --input '1 2 3 4 5' --input '7 6' --attention '%s' 2>&1",
                     fx.tag_run, dir);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/attention.safetensors", dir);
    me_attention a;
    me_error err = {0};
    assert_int_equal(me_attention_read(&a, path, &err), ME_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.layers, 2);
    assert_int_equal(a.heads, 2);
    assert_int_equal(a.s, 5);
    assert_int_equal(me_attention_len(&a, 1), 2);
    assert_true(a.tokens[5] == 7 && a.tokens[6] == 6 && a.tokens[7] == -1);
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < 2; i++) {
            int len = me_attention_len(&a, i);
            const float *w = me_attention_at(&a, l, i);
            for (int h = 0; h < 2; h++)
                for (int q = 0; q < 5; q++) {
                    double sum = 0;
                    for (int k = 0; k < 5; k++) {
                        float v = w[(h * 5 + q) * 5 + k];
                        if (q >= len || k >= len) assert_true(v == 0.0f);
                        sum += v;
                    }
                    if (q < len) assert_true(fabs(sum - 1.0) < 1e-5); /* rows of real queries are distributions */
                }
        }
    me_attention_free(&a);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/attention_%d.png", dir, i);
        int w, h, comp;
        unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
        assert_non_null(img);
        assert_true(w >= 640 && h >= 200);
        stbi_image_free(img);
    }
    snprintf(path, sizeof path, "%s/attention_2.png", dir);
    assert_int_equal(access(path, F_OK), -1);
}

static void eval_command_should_report_token_and_sequence_accuracy_and_list_errors(void **state) {
    (void)state;
    char out[1 << 16];
    me_error err = {0};
    me_predictor p;
    me_dataset ds;
    me_predictions pr;
    assert_int_equal(me_predictor_open(&p, fx.tag_run, &err), ME_OK);
    assert_int_equal(me_predictor_load_data(&p, &ds, p.cfg.data.valid, 0, &err), ME_OK);
    me_predict_options o = {0};
    assert_int_equal(me_predict(&p, &ds, &o, &pr, &err), ME_OK);
    const me_eval_result *e = &pr.eval;
    int rc = run_bin(out, sizeof out, "eval '%s' --errors 2", fx.tag_run);
    assert_int_equal(rc, 0);
    char want[512];
    snprintf(want, sizeof want, "token accuracy %.2f%% (%zu/%zu), sequence accuracy %.2f%% (%zu/%zu)",
             100.0 * e->accuracy, e->right, e->targets, 100.0 * e->seq_accuracy, e->seq_right, e->sequences);
    assert_non_null(strstr(out, want));
    size_t wrong = e->sequences - e->seq_right, listed = 0;
    for (const char *q = out; (q = strstr(q, "  wrong at")); q++) listed++;
    assert_int_equal(listed, wrong < 2 ? wrong : 2);
    rc = run_bin(out, sizeof out, "eval '%s/checkpoint.safetensors' --json --errors 1", fx.tag_run);
    assert_int_equal(rc, 0);
    static const char *keys[] = {"\"checkpoint\":", "\"step\":120", "\"data\":", "\"task\":\"tag\"", "\"examples\":200",
                                 "\"loss\":", "\"token_accuracy\":", "\"sequence_accuracy\":", "\"errors\":["};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!strstr(out, keys[k])) {
            print_error("eval --json lacks %s: %s\n", keys[k], out);
            fail();
        }
    rc = run_bin(out, sizeof out, "eval '%s' --json", fx.cls_run);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"task\":\"classify\""));
    assert_non_null(strstr(out, "\"accuracy\":"));
    assert_null(strstr(out, "token_accuracy"));
    rc = run_bin(out, sizeof out, "eval '%s' --data /nonexistent.txt 2>&1", fx.tag_run);
    assert_int_equal(rc, 2);
    me_predictions_free(&pr);
    me_dataset_free(&ds);
    me_predictor_free(&p);
}

static void training_should_end_with_three_validation_examples_and_named_figures(void **state) {
    (void)state;
    const char *log = fx.train_log;
    assert_non_null(strstr(log, "minienc: the first 3 validation examples (input -> prediction):"));
    const char *q = strstr(log, "(input -> prediction):\n");
    for (int i = 0; i < 3; i++) {
        q = strchr(q, '\n');
        assert_non_null(q);
        q++;
        assert_true(strncmp(q, "  ", 2) == 0 && strstr(q, " -> ") && (strstr(q, "right") || strstr(q, "wrong")));
    }
    /* progress lines name the validation figures, and only at evaluations */
    assert_non_null(strstr(log, "valid loss "));
    assert_non_null(strstr(log, "token acc "));
    assert_non_null(strstr(log, "seq acc "));
    for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "step ", 5) != 0) continue;
        long step = strtol(line + 5, NULL, 10);
        const char *end = strchr(line, '\n'), *v = strstr(line, "valid loss");
        int has = v && (!end || v < end);
        if (has != (step % 30 == 0)) { /* eval_every 30; the last step, 120, is one of them */
            print_error("step %ld: validation figures %s: %.200s\n", step, has ? "shown" : "missing", line);
            fail();
        }
    }
    assert_non_null(strstr(log, "token accuracy"));
}

static void plot_should_redraw_the_attention_chart_byte_identically(void **state) {
    (void)state;
    char path[800], out[1 << 14];
    snprintf(path, sizeof path, "%s/plots/attention.png", fx.tag_run);
    size_t n1, n2;
    unsigned char *before = slurp(path, &n1);
    assert_non_null(before);
    assert_int_equal(remove(path), 0);
    int rc = run_bin(out, sizeof out, "plot '%s'", fx.tag_run);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "plots/attention.png"));
    unsigned char *after = slurp(path, &n2);
    assert_non_null(after);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before), free(after);
}

static void count_should_take_a_run_directory(void **state) {
    (void)state;
    char a[1 << 15], b[1 << 15], path[800];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", fx.tag_run);
    assert_int_equal(run_bin(a, sizeof a, "count '%s' --json", fx.tag_run), 0);
    assert_int_equal(run_bin(b, sizeof b, "count '%s' --json", path), 0);
    assert_string_equal(a, b);
    assert_int_equal(run_bin(a, sizeof a, "count '%s' 2>&1", fx.root), 2); /* no checkpoint there */
    assert_non_null(strstr(a, "no checkpoint.safetensors"));
}

static void train_outside_the_repository_should_say_where_it_looked(void **state) {
    (void)state;
    char dir[700], cmd[2048], out[4096];
    snprintf(dir, sizeof dir, "%s/elsewhere/bin", fx.root);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/minienc'", dir, me_test_bin(), dir);
    assert_int_equal(me_run_capture(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "cd '%s/..' && ./bin/minienc train 2>&1", dir);
    int rc = me_run_capture(cmd, out, sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "configs/default.ini: not found"));
    assert_non_null(strstr(out, "elsewhere/configs/default.ini")); /* the working directory and the binary's */
    assert_non_null(strstr(out, "give a config"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(top_k_should_order_classes_by_probability_with_ties_to_the_lower_class),
        cmocka_unit_test(predictions_should_match_each_example_run_alone),
        cmocka_unit_test(attention_file_should_read_back_what_was_written_and_refuse_gaps),
        cmocka_unit_test(attention_chart_should_draw_one_square_cell_per_weight_and_be_deterministic),
        cmocka_unit_test(predict_command_should_answer_inputs_in_text_and_json),
        cmocka_unit_test(predict_command_should_read_stdin_and_refuse_bad_input_with_exit_2),
        cmocka_unit_test(predict_attention_should_write_the_file_and_a_chart_per_input),
        cmocka_unit_test(eval_command_should_report_token_and_sequence_accuracy_and_list_errors),
        cmocka_unit_test(training_should_end_with_three_validation_examples_and_named_figures),
        cmocka_unit_test(plot_should_redraw_the_attention_chart_byte_identically),
        cmocka_unit_test(count_should_take_a_run_directory),
        cmocka_unit_test(train_outside_the_repository_should_say_where_it_looked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
