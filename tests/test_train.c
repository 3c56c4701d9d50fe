/* Training runs end to end, mostly through me_train_run with tiny models (d_model 16, 2 heads, d_ff 32)
 * on generated data in a temporary folder, and a few through the minienc binary:
 *   - the loss falls on a learnable task;
 *   - determinism: the same seed gives bit-identical run files;
 *   - resume (after a finished run, an interruption, or files left ahead of the checkpoint) gives the
 *     same files as an uninterrupted run, for AdamW and SGD with momentum;
 *   - refusals: a non-empty run directory, a diverging run, bad data and config files;
 *   - checkpoints load back to the same model and the same evaluation, in process and via `minienc eval`;
 *   - history.safetensors and layernorm.csv against the initial values and the checkpoint. */
#include "test_util.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "minienc/checkpoint.h"
#include "minienc/config.h"
#include "minienc/data.h"
#include "minienc/history.h"
#include "minienc/metrics.h"
#include "minienc/model.h"
#include "minienc/optim.h"
#include "minienc/safetensors.h"
#include "minienc/train.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define PATH_CAP (ME_PATH_MAX + 64)

/* ---- fixture: a temporary folder with copy-task data ---- */

typedef struct {
    char root[256];
    char train[PATH_CAP], valid[PATH_CAP];
} fixture;

static void fixture_init(fixture *f, size_t n_train) {
    me_make_temp_dir(f->root, sizeof f->root);
    snprintf(f->train, sizeof f->train, "%s/train.txt", f->root);
    snprintf(f->valid, sizeof f->valid, "%s/valid.txt", f->root);
    me_error err = {0};
    assert_int_equal(me_data_generate_file(f->train, "copy", n_train, 2, 6, 6, 11, &err), ME_OK);
    assert_int_equal(me_data_generate_file(f->valid, "copy", 40, 2, 6, 6, 12, &err), ME_OK);
}

static void fixture_path(const fixture *f, const char *name, char *out) {
    snprintf(out, PATH_CAP, "%s/%s", f->root, name);
}

static void set_or_fail(me_config *c, const char *assignment) {
    me_error err = {0};
    if (me_config_set(c, assignment, &err) != ME_OK) {
        print_error("me_config_set(%s): %s\n", assignment, err.msg);
        fail();
    }
}

/* The tiny model on the fixture's data, writing into root/out_name, with extra overrides last. */
static void tiny_config(me_config *c, const fixture *f, const char *out_name, const char *const *extra,
                        size_t n_extra) {
    static const char *const base[] = {
        "model.d_model=16",  "model.n_heads=2",     "model.d_ff=32",       "model.n_layers=2",
        "model.vocab_size=6", "model.max_len=8",    "model.dropout=0",     "data.task=tag",
        "train.steps=20",    "train.batch_size=8",  "train.lr=3e-3",       "train.seed=3",
        "train.eval_every=10", "train.threads=1",   "log.history_every=10",
    };
    me_config_defaults(c);
    for (size_t i = 0; i < N_OF(base); i++) set_or_fail(c, base[i]);
    char buf[PATH_CAP + 32], out[PATH_CAP];
    snprintf(buf, sizeof buf, "data.train=%s", f->train);
    set_or_fail(c, buf);
    snprintf(buf, sizeof buf, "data.valid=%s", f->valid);
    set_or_fail(c, buf);
    fixture_path(f, out_name, out);
    snprintf(buf, sizeof buf, "log.out_dir=%s", out);
    set_or_fail(c, buf);
    for (size_t i = 0; i < n_extra; i++) set_or_fail(c, extra[i]);
    me_error err = {0};
    if (me_config_validate(c, &err) != ME_OK) {
        print_error("me_config_validate: %s\n", err.msg);
        fail();
    }
}

static void train_ok(const me_config *c, int resume, const me_train_hooks *hooks, me_train_result *res) {
    me_error err = {0};
    me_train_result local;
    me_status st = me_train_run(c, resume, 0, hooks, res ? res : &local, &err);
    if (st != ME_OK) {
        print_error("me_train_run(%s, resume %d): %s: %s\n", c->log.out_dir, resume, me_status_string(st), err.msg);
        fail();
    }
}

/* A resume that must continue from the checkpoint's step `from` (not retrain from 0): the first step
 * reported is from + 1, and every report names `from` as its start. */
typedef struct {
    long first, start, reports;
} resume_probe;

static void resume_probe_hook(void *user, const me_train_progress *p) {
    resume_probe *r = user;
    if (r->reports++ == 0) r->first = p->step;
    if (p->start_step != r->start) r->start = -1; /* set to `from` before the run */
}

static void resume_ok(const me_config *c, long from, long steps) {
    resume_probe r = {.first = -1, .start = from};
    me_train_hooks hooks = {.progress = resume_probe_hook, .user = &r};
    me_train_result res;
    train_ok(c, 1, &hooks, &res);
    assert_int_equal(res.steps_done, steps);
    assert_int_equal(r.first, from + 1);
    assert_int_equal(r.start, from);
    assert_int_equal(r.reports, steps - from);
}

/* ---- files ---- */

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s\n", path);
        fail();
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void assert_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[PATH_CAP], pb[PATH_CAP];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    size_t na, nb;
    unsigned char *a = slurp(pa, &na), *b = slurp(pb, &nb);
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    if (na != nb || i < na) {
        print_error("%s: %s (%zu bytes) and %s (%zu bytes) first differ at byte %zu\n", name, pa, na, pb, nb, i);
        fail();
    }
    free(a), free(b);
}

/* metrics.csv as text fields: rows[i][c], c = step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc */
#define M_COLS 7
typedef struct {
    int n;
    char (*rows)[M_COLS][48];
} metrics;

static metrics read_metrics(const char *dir) {
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    size_t len;
    char *text = (char *)slurp(path, &len);
    metrics m = {0, NULL};
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    m.rows = calloc((size_t)lines + 1, sizeof *m.rows);
    assert_non_null(m.rows);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc");
    while ((line = strtok_r(NULL, "\n", &save))) {
        int c = 0;
        const char *p = line;
        while (c < M_COLS) {
            const char *comma = strchr(p, ',');
            size_t w = comma ? (size_t)(comma - p) : strlen(p);
            assert_true(w < 48);
            memcpy(m.rows[m.n][c], p, w);
            m.rows[m.n][c][w] = '\0';
            c++;
            if (!comma) break;
            p = comma + 1;
        }
        if (c != M_COLS) {
            print_error("%s: row '%s' has %d fields, expected %d\n", path, line, c, M_COLS);
            fail();
        }
        m.n++;
    }
    free(text);
    return m;
}

/* Rows must match field by field except tokens_per_s, and except the valid columns of step skip_step. */
static void assert_same_metrics(const char *dir_a, const char *dir_b, long skip_step) {
    metrics a = read_metrics(dir_a), b = read_metrics(dir_b);
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        assert_int_equal(atol(a.rows[i][0]), i + 1);
        for (int c = 0; c < M_COLS; c++) {
            if (c == 4 || (c >= 5 && atol(a.rows[i][0]) == skip_step)) continue;
            if (strcmp(a.rows[i][c], b.rows[i][c]) != 0) {
                print_error("metrics row %d column %d: '%s' in %s vs '%s' in %s\n", i + 1, c, a.rows[i][c], dir_a,
                            b.rows[i][c], dir_b);
                fail();
            }
        }
    }
    free(a.rows), free(b.rows);
}

static void assert_same_run(const char *dir_a, const char *dir_b, long skip_step) {
    assert_same_file(dir_a, dir_b, "checkpoint.safetensors");
    assert_same_file(dir_a, dir_b, "history.safetensors");
    assert_same_file(dir_a, dir_b, "layernorm.csv");
    assert_same_metrics(dir_a, dir_b, skip_step);
}

/* ---- tests ---- */

static void loss_should_fall_by_half_on_the_copy_task_in_150_steps(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 400);
    const char *extra[] = {"train.steps=150", "train.eval_every=50"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    train_ok(&c, 0, NULL, NULL);
    metrics m = read_metrics(c.log.out_dir);
    assert_int_equal(m.n, 150);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        first += atof(m.rows[i][1]) / 10;
        last += atof(m.rows[140 + i][1]) / 10;
    }
    if (!(last < 0.5 * first)) {
        print_error("mean loss of steps 141..150 is %.4f, of steps 1..10 %.4f: expected less than half\n", last, first);
        fail();
    }
    free(m.rows);
    me_remove_tree(f.root);
}

static void the_same_seed_should_give_bit_identical_run_files(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *extra[] = {"model.dropout=0.1", "train.steps=25", "log.history_every=5"};
    me_config a, b;
    tiny_config(&a, &f, "a", extra, N_OF(extra));
    tiny_config(&b, &f, "b", extra, N_OF(extra));
    train_ok(&a, 0, NULL, NULL);
    train_ok(&b, 0, NULL, NULL);
    assert_same_run(a.log.out_dir, b.log.out_dir, -1);
    /* and the comparison is not vacuous: another seed changes the checkpoint */
    const char *other[] = {"model.dropout=0.1", "train.steps=25", "log.history_every=5", "train.seed=4"};
    me_config c;
    tiny_config(&c, &f, "c", other, N_OF(other));
    train_ok(&c, 0, NULL, NULL);
    char pa[PATH_CAP], pc[PATH_CAP];
    snprintf(pa, sizeof pa, "%s/checkpoint.safetensors", a.log.out_dir);
    snprintf(pc, sizeof pc, "%s/checkpoint.safetensors", c.log.out_dir);
    size_t na, nc;
    unsigned char *ba = slurp(pa, &na), *bc = slurp(pc, &nc);
    assert_true(na != nc || memcmp(ba, bc, na) != 0);
    free(ba), free(bc);
    me_remove_tree(f.root);
}

/* loss (and valid_loss where evaluated) of two metrics.csv files: within rtol, or the same bits (rtol 0) */
static void assert_same_losses(const char *dir_a, const char *dir_b, double rtol) {
    char pa[PATH_CAP], pb[PATH_CAP];
    snprintf(pa, sizeof pa, "%s/metrics.csv", dir_a);
    snprintf(pb, sizeof pb, "%s/metrics.csv", dir_b);
    me_metrics a, b;
    me_error err = {0};
    assert_int_equal(me_metrics_read(&a, pa, &err), ME_OK);
    assert_int_equal(me_metrics_read(&b, pb, &err), ME_OK);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        double pairs[2][2] = {{a.loss[i], b.loss[i]}, {a.valid_loss[i], b.valid_loss[i]}};
        for (int k = 0; k < 2; k++) {
            double x = pairs[k][0], y = pairs[k][1];
            if (isnan(x) && isnan(y)) continue;
            if (rtol == 0 ? memcmp(&x, &y, sizeof x) != 0 : !(fabs(x - y) <= rtol * fabs(x))) {
                print_error("step %.0f: %s %.9g in %s, %.9g in %s (tolerance %g)\n", a.step[i],
                            k ? "valid_loss" : "loss", x, dir_a, y, dir_b, rtol);
                fail();
            }
        }
    }
    me_metrics_free(&a);
    me_metrics_free(&b);
}

/* train.thread_shards: each thread runs whole forward and backward passes on its shard (here 3, 3 and 2
 * of 8 examples) and the gradients are summed once: the losses are the unsplit step's up to summation
 * order, and the same bits with 1 or 2 threads (the kernels inside a shard run alone). */
static void thread_shards_should_match_the_unsplit_step_whatever_the_thread_count(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *whole[] = {"model.dropout=0.1", "train.steps=20"};
    const char *one[] = {"model.dropout=0.1", "train.steps=20", "train.thread_shards=3", "train.threads=1"};
    const char *two[] = {"model.dropout=0.1", "train.steps=20", "train.thread_shards=3", "train.threads=2"};
    me_config w, a, b;
    tiny_config(&w, &f, "whole", whole, N_OF(whole));
    tiny_config(&a, &f, "one", one, N_OF(one));
    tiny_config(&b, &f, "two", two, N_OF(two));
    train_ok(&w, 0, NULL, NULL);
    train_ok(&a, 0, NULL, NULL);
    train_ok(&b, 0, NULL, NULL);
    assert_same_losses(w.log.out_dir, a.log.out_dir, 1e-5);
    assert_same_losses(a.log.out_dir, b.log.out_dir, 0);
    assert_same_file(a.log.out_dir, b.log.out_dir, "layernorm.csv");
    /* the checkpoints' tensors (their metadata name the thread counts, which differ) */
    const char *files[] = {"checkpoint.safetensors", "history.safetensors"};
    for (size_t k = 0; k < N_OF(files); k++) {
        char pa[PATH_CAP], pb[PATH_CAP];
        snprintf(pa, sizeof pa, "%s/%s", a.log.out_dir, files[k]);
        snprintf(pb, sizeof pb, "%s/%s", b.log.out_dir, files[k]);
        me_st_file fa, fb;
        me_error err = {0};
        assert_int_equal(me_st_read(&fa, pa, &err), ME_OK);
        assert_int_equal(me_st_read(&fb, pb, &err), ME_OK);
        assert_int_equal(fa.n, fb.n);
        for (int i = 0; i < fa.n; i++) {
            const me_st_tensor *tb = me_st_find(&fb, fa.tensors[i].name);
            assert_non_null(tb);
            assert_int_equal(fa.tensors[i].nbytes, tb->nbytes);
            if (memcmp(fa.tensors[i].data, tb->data, tb->nbytes) != 0) {
                print_error("%s: tensor %s differs between 1 and 2 threads\n", files[k], fa.tensors[i].name);
                fail();
            }
        }
        me_st_free(&fa);
        me_st_free(&fb);
    }
    me_remove_tree(f.root);
}

/* 60 steps straight vs 30 steps then a resume to 60. */
static void check_resume_equivalence(const char *optimizer_sets[], size_t n_opt) {
    fixture f;
    fixture_init(&f, 100);
    const char *extra[8];
    size_t n = 0;
    extra[n++] = "model.dropout=0.1";
    extra[n++] = "train.eval_every=20";
    extra[n++] = "log.history_every=7"; /* the first run's last step, 30, is off this grid */
    for (size_t i = 0; i < n_opt; i++) extra[n++] = optimizer_sets[i];
    extra[n] = "train.steps=60";
    me_config straight;
    tiny_config(&straight, &f, "straight", extra, n + 1);
    train_ok(&straight, 0, NULL, NULL);
    extra[n] = "train.steps=30";
    me_config part;
    tiny_config(&part, &f, "resumed", extra, n + 1);
    train_ok(&part, 0, NULL, NULL);
    set_or_fail(&part, "train.steps=60");
    resume_ok(&part, 30, 60);
    /* the 30-step run evaluated at its last step, step 30 */
    assert_same_run(straight.log.out_dir, part.log.out_dir, 30);
    me_remove_tree(f.root);
}

static void resuming_adamw_at_step_30_should_reproduce_the_60_step_run_byte_for_byte(void **state) {
    (void)state;
    const char *opt[] = {"train.optimizer=adamw", "train.weight_decay=0.05"};
    check_resume_equivalence(opt, N_OF(opt));
}

static void resuming_sgd_with_momentum_at_step_30_should_reproduce_the_60_step_run_byte_for_byte(void **state) {
    (void)state;
    const char *opt[] = {"train.optimizer=sgd", "train.momentum=0.9", "train.lr=0.05", "train.weight_decay=0.01"};
    check_resume_equivalence(opt, N_OF(opt));
}

typedef struct {
    long stop_at;
    volatile sig_atomic_t flag;
} stopper;

static void stop_hook(void *user, const me_train_progress *p) {
    stopper *s = user;
    if (p->step == s->stop_at) s->flag = 1;
}

static void resuming_an_interrupted_run_should_reproduce_the_uninterrupted_run(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *extra[] = {"model.dropout=0.1", "train.steps=40", "log.history_every=10"};
    me_config straight;
    tiny_config(&straight, &f, "straight", extra, N_OF(extra));
    train_ok(&straight, 0, NULL, NULL);
    me_config c;
    tiny_config(&c, &f, "interrupted", extra, N_OF(extra));
    stopper s = {23, 0};
    me_train_hooks hooks = {.progress = stop_hook, .user = &s, .stop = &s.flag};
    me_train_result res;
    me_error err = {0};
    assert_int_equal(me_train_run(&c, 0, 0, &hooks, &res, &err), ME_ERR_INTERRUPTED);
    assert_int_equal(res.steps_done, 23);
    assert_non_null(strstr(err.msg, "23"));
    /* the interrupted run's history ends with a snapshot of the checkpoint's values at step 23 */
    char hpath[PATH_CAP + 32], cpath[PATH_CAP + 32];
    snprintf(hpath, sizeof hpath, "%s/history.safetensors", c.log.out_dir);
    snprintf(cpath, sizeof cpath, "%s/checkpoint.safetensors", c.log.out_dir);
    me_history h;
    me_st_file ck;
    assert_int_equal(me_history_read(&h, hpath, &err), ME_OK);
    assert_int_equal(me_st_read(&ck, cpath, &err), ME_OK);
    assert_true(h.n_snap >= 2);
    assert_int_equal(h.steps[h.n_snap - 1], 23);
    assert_int_equal(h.steps[h.n_snap - 2], 20);
    for (int i = 0; i < h.n; i++) {
        const me_st_tensor *t = me_st_find(&ck, h.names[i]);
        assert_non_null(t);
        float *live = malloc(t->count * sizeof *live);
        me_st_to_f32(t, live);
        assert_memory_equal(me_history_at(&h, i, h.n_snap - 1), live, t->count * sizeof *live);
        free(live);
    }
    /* the history file names its run: the config it stores is the checkpoint's, and loads back to the
     * run's config (every key but out_dir, which neither file keeps) */
    assert_non_null(h.config);
    assert_string_equal(h.config, me_st_meta(&ck, "config"));
    me_config back;
    me_config_defaults(&back);
    assert_int_equal(me_config_load_string(&back, h.config, hpath, &err), ME_OK);
    assert_int_equal(me_config_validate(&back, &err), ME_OK);
    me_config want = c;
    me_config_absolute_paths(&want);
    assert_null(me_config_first_difference_except(&back, &want, ME_KEY_RUN));
    me_st_free(&ck);
    me_history_free(&h);
    resume_ok(&c, 23, 40);
    assert_same_run(straight.log.out_dir, c.log.out_dir, -1);
    me_remove_tree(f.root);
}

/* Keeps the bytes of checkpoint.safetensors as they are when step `at` is reported (the checkpoint of
 * step at - 1 is then on disk). */
typedef struct {
    long at;
    char path[PATH_CAP];
    unsigned char *bytes;
    size_t n;
} ckpt_grabber;

static void grab_hook(void *user, const me_train_progress *p) {
    ckpt_grabber *g = user;
    if (p->step == g->at) g->bytes = slurp(g->path, &g->n);
}

static void resuming_from_a_checkpoint_behind_the_other_files_should_truncate_them_and_reproduce_the_run(
    void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *extra[] = {"model.dropout=0.1", "train.steps=40", "log.checkpoint_every=10", "log.history_every=10"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    ckpt_grabber g = {.at = 21};
    snprintf(g.path, sizeof g.path, "%s/checkpoint.safetensors", c.log.out_dir);
    me_train_hooks hooks = {.progress = grab_hook, .user = &g};
    train_ok(&c, 0, &hooks, NULL);
    assert_non_null(g.bytes);
    /* keep the finished run, then put the step-20 checkpoint back as if the process had died after
     * writing metrics and history at a later checkpoint but before its checkpoint file */
    char cmd[3 * PATH_CAP], done[PATH_CAP];
    fixture_path(&f, "done", done);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", c.log.out_dir, done);
    assert_int_equal(system(cmd), 0);
    write_bytes(g.path, g.bytes, g.n);
    resume_ok(&c, 20, 40);
    assert_same_run(done, c.log.out_dir, -1);
    free(g.bytes);
    me_remove_tree(f.root);
}

/* ---- refusals ---- */

typedef struct {
    int n;
    char names[16][256];
    struct stat st[16];
    unsigned char *bytes[16];
    size_t size[16];
} dir_snapshot;

static void snapshot_dir(const char *dir, dir_snapshot *s) {
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        assert_true(s->n < 16);
        snprintf(s->names[s->n], sizeof s->names[0], "%s", e->d_name);
        char path[PATH_CAP];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(stat(path, &s->st[s->n]), 0);
        s->bytes[s->n] = slurp(path, &s->size[s->n]);
        s->n++;
    }
    closedir(d);
}

static void assert_dir_unchanged(const char *dir, const dir_snapshot *before) {
    dir_snapshot now;
    snapshot_dir(dir, &now);
    assert_int_equal(now.n, before->n);
    for (int i = 0; i < before->n; i++) {
        int j = 0;
        while (j < now.n && strcmp(now.names[j], before->names[i]) != 0) j++;
        if (j == now.n) {
            print_error("%s/%s disappeared\n", dir, before->names[i]);
            fail();
        }
        if (now.size[j] != before->size[i] || memcmp(now.bytes[j], before->bytes[i], now.size[j]) != 0 ||
            now.st[j].st_mtim.tv_sec != before->st[i].st_mtim.tv_sec ||
            now.st[j].st_mtim.tv_nsec != before->st[i].st_mtim.tv_nsec ||
            now.st[j].st_ino != before->st[i].st_ino) {
            print_error("%s/%s was rewritten\n", dir, before->names[i]);
            fail();
        }
    }
    for (int i = 0; i < now.n; i++) free(now.bytes[i]);
}

static void free_snapshot(dir_snapshot *s) {
    for (int i = 0; i < s->n; i++) free(s->bytes[i]);
}

/* The tiny config as an INI file in the fixture, for the binary. */
static void write_ini(const fixture *f, const char *name, const char *lr, const char *extra_text, char *path) {
    fixture_path(f, name, path);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out,
            "[model]\nd_model = 16\nn_heads = 2\nd_ff = 32\nn_layers = 1\nvocab_size = 6\nmax_len = 8\n"
            "dropout = 0\n[data]\ntask = tag\ntrain = train.txt\nvalid = valid.txt\n"
            "[train]\nsteps = 6\nbatch_size = 8\nlr = %s\nseed = 3\neval_every = 3\nthreads = 1\n%s",
            lr, extra_text);
    assert_int_equal(fclose(out), 0);
}

static int run_bin(char *out, size_t cap, const char *fmt, ...) {
    char args[4 * PATH_CAP], cmd[5 * PATH_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s", me_test_bin(), args);
    return me_run_capture(cmd, out, cap);
}

static void a_non_empty_run_directory_should_be_refused_unchanged_and_replaced_only_with_force(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 60);
    const char *extra[] = {"train.steps=5"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    train_ok(&c, 0, NULL, NULL);
    char note[PATH_CAP];
    snprintf(note, sizeof note, "%s/notes.txt", c.log.out_dir);
    write_bytes(note, "mine\n", 5);
    dir_snapshot before;
    snapshot_dir(c.log.out_dir, &before);
    /* library: ME_ERR_EXISTS naming the folder */
    me_error err = {0};
    me_train_result res;
    set_or_fail(&c, "train.steps=7");
    assert_int_equal(me_train_run(&c, 0, 0, NULL, &res, &err), ME_ERR_EXISTS);
    assert_non_null(strstr(err.msg, c.log.out_dir));
    assert_dir_unchanged(c.log.out_dir, &before);
    /* binary: exit 2 */
    char ini[PATH_CAP], out[8192];
    write_ini(&f, "run.ini", "3e-3", "", ini);
    int code = run_bin(out, sizeof out, "train '%s' --set 'log.out_dir=%s'", ini, c.log.out_dir);
    if (code != 2 || !strstr(out, "not empty")) {
        print_error("exit %d, expected 2 with 'not empty':\n%s\n", code, out);
        fail();
    }
    assert_dir_unchanged(c.log.out_dir, &before);
    free_snapshot(&before);
    /* --force replaces the run (6 steps now) and leaves other files alone */
    code = run_bin(out, sizeof out, "train '%s' --set 'log.out_dir=%s' --force", ini, c.log.out_dir);
    if (code != 0) {
        print_error("--force: exit %d:\n%s\n", code, out);
        fail();
    }
    metrics m = read_metrics(c.log.out_dir);
    assert_int_equal(m.n, 6);
    free(m.rows);
    me_st_file ck;
    char ckp[PATH_CAP];
    snprintf(ckp, sizeof ckp, "%s/checkpoint.safetensors", c.log.out_dir);
    assert_int_equal(me_st_read(&ck, ckp, &err), ME_OK);
    assert_string_equal(me_st_meta(&ck, "step"), "6");
    me_st_free(&ck);
    size_t n;
    unsigned char *kept = slurp(note, &n);
    assert_int_equal(n, 5);
    free(kept);
    me_remove_tree(f.root);
}

static void a_diverging_run_should_stop_with_a_numeric_error_naming_the_step_and_keep_the_last_checkpoint(
    void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 60);
    const char *extra[] = {"train.optimizer=sgd", "train.lr=1e30", "train.steps=10"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    me_error err = {0};
    me_train_result res;
    assert_int_equal(me_train_run(&c, 0, 0, NULL, &res, &err), ME_ERR_NUMERIC);
    /* the step named is the one after the last row written to metrics.csv */
    metrics m = read_metrics(c.log.out_dir);
    char want[32];
    snprintf(want, sizeof want, "step %d:", m.n + 1);
    if (!strstr(err.msg, want)) {
        print_error("expected '%s' in: %s\n", want, err.msg);
        fail();
    }
    assert_true(m.n < 10);
    free(m.rows);
    /* the checkpoint on disk is the step-0 one and holds the initial weights */
    char ckp[PATH_CAP];
    snprintf(ckp, sizeof ckp, "%s/checkpoint.safetensors", c.log.out_dir);
    me_model loaded, init;
    assert_int_equal(me_model_build(&loaded, &c, &err), ME_OK);
    assert_int_equal(me_model_build(&init, &c, &err), ME_OK);
    me_rng rng;
    me_rng_seed(&rng, c.train.seed);
    me_model_init_weights(&init, &rng);
    me_optim o;
    assert_int_equal(me_optim_init(&o, &loaded.params, &c.train, &err), ME_OK);
    me_train_state ts;
    if (me_checkpoint_load(ckp, &loaded.params, &o, &ts, &err) != ME_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(ts.step, 0);
    assert_int_equal(o.step, 0);
    assert_memory_equal(loaded.params.data, init.params.data, init.params.total * sizeof(float));
    me_optim_free(&o);
    me_model_free(&loaded);
    me_model_free(&init);
    me_remove_tree(f.root);
}

static void expect_refusal(const char *what, int code, const char *out, const char *want1, const char *want2) {
    if (code != 2 || !strstr(out, want1) || (want2 && !strstr(out, want2))) {
        print_error("%s: exit %d, expected 2 with '%s'%s%s:\n%s\n", what, code, want1, want2 ? " and " : "",
                    want2 ? want2 : "", out);
        fail();
    }
}

static void bad_data_and_config_files_should_reach_the_user_with_their_location_and_exit_2(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 60);
    char ini[PATH_CAP], bad[PATH_CAP], run[PATH_CAP], out[8192], want[PATH_CAP + 32];
    write_ini(&f, "run.ini", "3e-3", "", ini);
    fixture_path(&f, "run", run);
    /* a letter in a token at line 3, column 5 */
    fixture_path(&f, "bad.txt", bad);
    const char *text = "# comment\n1 2\t1 2\n3 4 x\t3 4 5\n";
    write_bytes(bad, text, strlen(text));
    int code = run_bin(out, sizeof out, "train '%s' --set 'data.train=%s' --set 'log.out_dir=%s'", ini, bad, run);
    snprintf(want, sizeof want, "bad.txt:3:5:");
    expect_refusal("letter in a token", code, out, want, NULL);
    /* a token past the vocabulary in the validation file, line 2 column 3 */
    text = "0 1\t0 1\n2 6\t2 5\n";
    write_bytes(bad, text, strlen(text));
    code = run_bin(out, sizeof out, "train '%s' --set 'data.valid=%s' --set 'log.out_dir=%s' --force", ini, bad, run);
    expect_refusal("token past the vocabulary", code, out, "bad.txt:2:3:", NULL);
    /* an unknown key names the file, its line and the key */
    write_ini(&f, "unknown.ini", "3e-3", "learnig_rate = 0.1\n", ini);
    code = run_bin(out, sizeof out, "train '%s' --set 'log.out_dir=%s' --force", ini, run);
    expect_refusal("unknown key", code, out, "unknown.ini:20", "learnig_rate");
    /* lr = nan in the file and on the command line */
    write_ini(&f, "nan.ini", "nan", "", ini);
    code = run_bin(out, sizeof out, "train '%s' --set 'log.out_dir=%s' --force", ini, run);
    expect_refusal("lr = nan in a file", code, out, "nan.ini:16", "lr");
    write_ini(&f, "run.ini", "3e-3", "", ini);
    code = run_bin(out, sizeof out, "train '%s' --set 'log.out_dir=%s' --force --set train.lr=nan", ini, run);
    expect_refusal("lr = nan on the command line", code, out, "train.lr", NULL);
    me_remove_tree(f.root);
}

/* ---- the config a checkpoint stores and checks ---- */

static void config_or_fail(me_config *c, const char *const *sets, size_t n) {
    me_config_defaults(c);
    for (size_t i = 0; i < n; i++) set_or_fail(c, sets[i]);
    me_error err = {0};
    if (me_config_validate(c, &err) != ME_OK) {
        print_error("me_config_validate: %s\n", err.msg);
        fail();
    }
}

static void checkpoint_check_should_name_the_first_differing_architecture_key_with_both_values(void **state) {
    (void)state;
    static const char *const base[] = {"model.d_model=8", "model.n_heads=2", "model.vocab_size=5"};
    me_config stored, cfg;
    config_or_fail(&stored, base, N_OF(base));
    me_error err = {0};
    static const struct {
        const char *set, *want;
    } cases[] = {
        {"model.activation=gelu", "--set model.activation=gelu: key 'model.activation' is gelu here but the "
                                  "checkpoint ck.safetensors was trained with relu; expected the checkpoint's "
                                  "architecture"},
        {"model.positional=sinusoidal", "key 'model.positional' is sinusoidal here but the checkpoint "
                                        "ck.safetensors was trained with learned"},
        {"data.task=classify", "key 'data.task' is classify here but the checkpoint ck.safetensors was trained with "
                               "tag"},
        {"model.final_norm=on", "key 'model.final_norm' is true here but the checkpoint ck.safetensors was trained "
                                "with false"},
        {"model.d_model=16", "key 'model.d_model' is 16 here but the checkpoint ck.safetensors was trained with 8"},
        {"model.layer_norm_eps=1e-6", "key 'model.layer_norm_eps' is 1e-06 here but the checkpoint ck.safetensors "
                                      "was trained with 1e-05"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        config_or_fail(&cfg, base, N_OF(base));
        set_or_fail(&cfg, cases[i].set);
        assert_int_equal(me_checkpoint_check_config("ck.safetensors", &stored, &cfg, &err), ME_ERR_CONFIG);
        if (!strstr(err.msg, cases[i].want)) {
            print_error("message \"%s\" does not contain \"%s\"\n", err.msg, cases[i].want);
            fail();
        }
    }
    /* what does not change the model may differ */
    static const char *const free_keys[] = {"model.dropout=0.3", "train.lr=0.5", "train.optimizer=sgd",
                                            "log.out_dir=elsewhere", "train.steps=7"};
    config_or_fail(&cfg, base, N_OF(base));
    for (size_t i = 0; i < N_OF(free_keys); i++) set_or_fail(&cfg, free_keys[i]);
    assert_int_equal(me_checkpoint_check_config("ck.safetensors", &stored, &cfg, &err), ME_OK);
}

static void a_checkpoint_should_store_its_config_without_the_run_directory(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 10);
    char out[PATH_CAP], ckp[PATH_CAP + 32], set_out[PATH_CAP + 32];
    fixture_path(&f, "somewhere", out);
    snprintf(set_out, sizeof set_out, "log.out_dir=%s", out);
    snprintf(ckp, sizeof ckp, "%s/ck.safetensors", f.root);
    const char *sets[] = {"model.d_model=8", "model.n_heads=2", "model.vocab_size=5", "model.d_ff=4", set_out};
    me_config cfg, back;
    config_or_fail(&cfg, sets, N_OF(sets));
    me_model m;
    me_error err = {0};
    assert_int_equal(me_model_build(&m, &cfg, &err), ME_OK);
    assert_int_equal(me_checkpoint_save(ckp, &cfg, &m.params, NULL, NULL, &err), ME_OK);
    me_st_file st;
    assert_int_equal(me_st_read(&st, ckp, &err), ME_OK);
    const char *text = me_st_meta(&st, "config");
    assert_non_null(text);
    assert_non_null(strstr(text, "\n; out_dir = (not set)\n"));
    assert_null(strstr(text, out));
    assert_non_null(strstr(text, "\nbeta1 = 0.9\n"));            /* shortest text, not 0.90000000000000002 */
    assert_non_null(strstr(text, "\nlayer_norm_eps = 1e-05\n")); /* not 9.99999975e-06 */
    me_st_free(&st);
    assert_int_equal(me_checkpoint_read_config(ckp, &back, &err), ME_OK);
    assert_int_equal(me_checkpoint_check_config(ckp, &back, &cfg, &err), ME_OK);
    assert_true(back.train.beta1 == cfg.train.beta1 && back.model.layer_norm_eps == cfg.model.layer_norm_eps);
    me_model_free(&m);
    me_remove_tree(f.root);
}

/* ---- checkpoints and histories against the model ---- */

static void checkpoint_should_load_back_to_the_same_model_and_evaluation_with_optimizer_state_for_every_tensor(
    void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *extra[] = {"train.steps=20", "model.dropout=0.1"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    me_train_result res;
    train_ok(&c, 0, NULL, &res);
    char ckp[PATH_CAP], ini[PATH_CAP];
    snprintf(ckp, sizeof ckp, "%s/checkpoint.safetensors", c.log.out_dir);
    snprintf(ini, sizeof ini, "%s/config.ini", c.log.out_dir);
    me_error err = {0};
    /* the stored config rebuilds the model */
    me_config stored;
    assert_int_equal(me_checkpoint_read_config(ckp, &stored, &err), ME_OK);
    assert_int_equal(stored.model.d_model, 16);
    assert_int_equal(stored.train.steps, 20);
    me_model m;
    assert_int_equal(me_model_build(&m, &stored, &err), ME_OK);
    me_optim o;
    assert_int_equal(me_optim_init(&o, &m.params, &stored.train, &err), ME_OK);
    me_train_state ts;
    assert_int_equal(me_checkpoint_load(ckp, &m.params, &o, &ts, &err), ME_OK);
    assert_int_equal(ts.step, 20);
    assert_int_equal(o.step, 20);
    /* every parameter and both AdamW moments, bit for bit as stored, and nothing else */
    me_st_file st;
    assert_int_equal(me_st_read(&st, ckp, &err), ME_OK);
    assert_int_equal(st.n, 3 * m.params.n);
    float *buf = malloc(m.params.total * sizeof *buf);
    for (int i = 0; i < m.params.n; i++) {
        const me_tensor_info *t = &m.params.t[i];
        const char *prefix[3] = {"", "optim.exp_avg.", "optim.exp_avg_sq."};
        const float *live[3] = {me_params_data(&m.params, i), o.m + t->offset, o.v + t->offset};
        for (int k = 0; k < 3; k++) {
            char name[ME_NAME_MAX + 32];
            snprintf(name, sizeof name, "%s%s", prefix[k], t->name);
            const me_st_tensor *x = me_st_find(&st, name);
            if (!x) {
                print_error("checkpoint has no tensor '%s'\n", name);
                fail();
            }
            assert_int_equal(x->dtype, ME_DT_F32);
            assert_int_equal(x->ndim, t->ndim);
            for (int d = 0; d < t->ndim; d++) assert_int_equal(x->shape[d], t->shape[d]);
            me_st_to_f32(x, buf);
            assert_memory_equal(buf, live[k], t->count * sizeof(float));
        }
    }
    const char *keys[] = {"format", "step", "optim_step", "optimizer", "rng", "sampler", "config"};
    for (size_t k = 0; k < N_OF(keys); k++) {
        if (!me_st_meta(&st, keys[k])) {
            print_error("checkpoint metadata lacks '%s'\n", keys[k]);
            fail();
        }
    }
    assert_string_equal(me_st_meta(&st, "format"), "minienc-checkpoint-1");
    assert_string_equal(me_st_meta(&st, "step"), "20");
    assert_string_equal(me_st_meta(&st, "optim_step"), "20");
    assert_string_equal(me_st_meta(&st, "optimizer"), "adamw");
    /* a checkpoint does not depend on the folder it lives in */
    assert_null(strstr(me_st_meta(&st, "config"), c.log.out_dir));
    me_st_free(&st);
    free(buf);
    /* the loaded model evaluates to the run's last validation loss, in process and in the binary */
    me_dataset ds;
    assert_int_equal(me_train_load_data(&ds, stored.data.valid, &stored, &err), ME_OK);
    assert_int_equal(me_model_alloc(&m, stored.train.batch_size, ds.max_len_seen, &err), ME_OK);
    me_eval_result ev;
    assert_int_equal(me_evaluate(&m, &ds, stored.train.batch_size, &ev, &err), ME_OK);
    assert_true(ev.loss == res.valid_loss);
    assert_true(ev.accuracy == res.valid_acc);
    /* the binary, in the older form (CONFIG --checkpoint FILE) and from the checkpoint alone */
    for (int form = 0; form < 2; form++) {
        char out[4096];
        int code = form == 0 ? run_bin(out, sizeof out, "eval '%s' --checkpoint '%s' --json", ini, ckp)
                             : run_bin(out, sizeof out, "eval '%s' --json", ckp);
        assert_int_equal(code, 0);
        const char *lp = strstr(out, "\"loss\":"), *ap = strstr(out, "\"token_accuracy\":");
        const char *sp = strstr(out, "\"sequence_accuracy\":");
        if (!lp || !ap || !sp) {
            print_error("no loss/token_accuracy/sequence_accuracy in: %s\n", out);
            fail();
        }
        double bin_loss = strtod(lp + 7, NULL), bin_acc = strtod(ap + 17, NULL), bin_seq = strtod(sp + 20, NULL);
        if (!(fabs(bin_loss - ev.loss) <= 1e-12 * fabs(ev.loss)) || !(fabs(bin_acc - ev.accuracy) <= 1e-12) ||
            !(fabs(bin_seq - ev.seq_accuracy) <= 1e-12)) {
            print_error("minienc eval: loss %.17g acc %.17g seq %.17g; in process: loss %.17g acc %.17g seq %.17g\n",
                        bin_loss, bin_acc, bin_seq, ev.loss, ev.accuracy, ev.seq_accuracy);
            fail();
        }
    }
    me_dataset_free(&ds);
    me_optim_free(&o);
    me_model_free(&m);
    me_remove_tree(f.root);
}

static void history_should_hold_the_initial_values_the_scheduled_steps_and_the_final_checkpoint(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 100);
    const char *extra[] = {"train.steps=22", "log.history_every=4", "log.checkpoint_every=10", "model.final_norm=true",
                           "model.norm_first=true"};
    me_config c;
    tiny_config(&c, &f, "run", extra, N_OF(extra));
    train_ok(&c, 0, NULL, NULL);
    me_error err = {0};
    char hp[PATH_CAP], ckp[PATH_CAP];
    snprintf(hp, sizeof hp, "%s/history.safetensors", c.log.out_dir);
    snprintf(ckp, sizeof ckp, "%s/checkpoint.safetensors", c.log.out_dir);
    me_history h;
    assert_int_equal(me_history_read(&h, hp, &err), ME_OK);
    /* steps: 0, the multiples of history_every, and the last step */
    const int64_t want_steps[] = {0, 4, 8, 12, 16, 20, 22};
    if (h.n_snap != N_OF(want_steps)) {
        char got[256] = "";
        for (size_t k = 0; k < h.n_snap; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%" PRId64 " ", h.steps[k]);
        print_error("history steps: %s; expected 0 4 8 12 16 20 22\n", got);
        fail();
    }
    for (size_t k = 0; k < h.n_snap; k++) assert_int_equal(h.steps[k], want_steps[k]);
    /* initial values: the model rebuilt from the same seed as src/train.c does */
    me_model init, fin;
    assert_int_equal(me_model_build(&init, &c, &err), ME_OK);
    me_rng rng;
    me_rng_seed(&rng, c.train.seed);
    me_model_init_weights(&init, &rng);
    assert_int_equal(me_model_build(&fin, &c, &err), ME_OK);
    assert_int_equal(me_checkpoint_load(ckp, &fin.params, NULL, NULL, &err), ME_OK);
    int tracked = 0;
    for (int i = 0; i < init.params.n; i++) tracked += (init.params.t[i].flags & ME_PARAM_NORM) != 0;
    assert_int_equal(h.n, tracked);
    assert_int_equal(tracked, 2 * 2 * 2 + 2); /* two norms of two layers, gamma and beta, + final norm */
    /* layernorm.csv, last rows: step 22 */
    char csvp[PATH_CAP];
    snprintf(csvp, sizeof csvp, "%s/layernorm.csv", c.log.out_dir);
    size_t len;
    char *csv = (char *)slurp(csvp, &len);
    for (int i = 0; i < h.n; i++) {
        int pi = me_params_find(&init.params, h.names[i]);
        assert_true(pi >= 0);
        assert_true(init.params.t[pi].flags & ME_PARAM_NORM);
        size_t n = init.params.t[pi].count;
        assert_int_equal(h.dim[i], n);
        assert_memory_equal(me_history_at(&h, i, 0), me_params_data(&init.params, pi), n * sizeof(float));
        const float *last = me_params_data(&fin.params, pi);
        assert_memory_equal(me_history_at(&h, i, h.n_snap - 1), last, n * sizeof(float));
        /* the values moved, so the comparisons above are not of two copies of the initial values */
        assert_true(memcmp(last, me_params_data(&init.params, pi), n * sizeof(float)) != 0);
        double mean = 0, mn = INFINITY, mx = -INFINITY;
        for (size_t k = 0; k < n; k++) {
            mean += last[k];
            mn = fmin(mn, last[k]);
            mx = fmax(mx, last[k]);
        }
        mean /= (double)n;
        char key[ME_NAME_MAX + 16];
        snprintf(key, sizeof key, "\n22,%s,", h.names[i]);
        const char *row = strstr(csv, key);
        if (!row) {
            print_error("layernorm.csv has no row for step 22 and %s\n", h.names[i]);
            fail();
        }
        double v[5];
        assert_int_equal(sscanf(row + strlen(key), "%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4]), 5);
        if (!(fabs(v[0] - mean) <= 1e-6 * (1 + fabs(mean))) || !(fabs(v[2] - mn) <= 1e-6 * (1 + fabs(mn))) ||
            !(fabs(v[3] - mx) <= 1e-6 * (1 + fabs(mx)))) {
            print_error("%s at step 22: csv mean/min/max %.9g %.9g %.9g, checkpoint %.9g %.9g %.9g\n", h.names[i],
                        v[0], v[2], v[3], mean, mn, mx);
            fail();
        }
    }
    free(csv);
    me_model_free(&init);
    me_model_free(&fin);
    me_history_free(&h);
    me_remove_tree(f.root);
}

/* stop_at_accuracy against the same run without it: the stopped run is the unstopped run's first S
 * steps, S being the first evaluation whose accuracy reaches the target. */
static void stop_at_accuracy_should_end_the_run_at_the_first_evaluation_that_reaches_it(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 200);
    const char *full_sets[] = {"train.steps=120", "train.eval_every=10"};
    me_config full;
    tiny_config(&full, &f, "full", full_sets, N_OF(full_sets));
    train_ok(&full, 0, NULL, NULL);
    metrics m = read_metrics(full.log.out_dir);
    /* the target: the best accuracy of the evaluations up to step 80, less a margin below the CSV's
     * nine digits (accuracies are multiples of 1/targets, far coarser) */
    double best = 0.0;
    for (int i = 0; i < 80; i++)
        if (m.rows[i][6][0] && atof(m.rows[i][6]) > best) best = atof(m.rows[i][6]);
    double target = best - 1e-6;
    int stop = -1;
    for (int i = 0; i < m.n && stop < 0; i++)
        if (m.rows[i][6][0] && atof(m.rows[i][6]) >= target) stop = i + 1;
    assert_true(best > 0.0 && stop > 0 && stop <= 80 && stop < m.n);
    char set[64];
    snprintf(set, sizeof set, "train.stop_at_accuracy=%.17g", target);
    const char *stop_sets[] = {"train.steps=120", "train.eval_every=10", set};
    me_config c;
    tiny_config(&c, &f, "stopped", stop_sets, N_OF(stop_sets));
    me_train_result res;
    train_ok(&c, 0, NULL, &res);
    assert_int_equal(res.steps_done, stop);
    metrics s = read_metrics(c.log.out_dir);
    assert_int_equal(s.n, stop);
    for (int i = 0; i < s.n; i++)
        for (int col = 0; col < M_COLS; col++)
            if (col != 4 && strcmp(s.rows[i][col], m.rows[i][col]) != 0) {
                print_error("metrics row %d column %d: '%s' stopped vs '%s' full\n", i + 1, col, s.rows[i][col],
                            m.rows[i][col]);
                fail();
            }
    /* the history ends at the checkpoint's step */
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/history.safetensors", c.log.out_dir);
    me_history h;
    me_error err = {0};
    assert_int_equal(me_history_read(&h, path, &err), ME_OK);
    assert_true(h.n_snap > 0 && h.steps[h.n_snap - 1] == stop);
    me_history_free(&h);
    free(m.rows), free(s.rows);
    me_remove_tree(f.root);
}

/* train.thread_shards: a set count is kept; auto (the default, 0) gives one shard per thread for models
 * up to ME_AUTO_SHARDS_MAX_D on 2..ME_AUTO_SHARDS_MAX_THREADS threads, never more shards than examples. */
static void thread_shards_should_follow_the_setting_and_the_auto_rule(void **state) {
    (void)state;
    me_config c;
    me_config_defaults(&c);
    assert_int_equal(c.train.thread_shards, 0);
    c.model.d_model = 64;
    assert_int_equal(me_train_thread_shards(&c, 32, 2), 2);
    assert_int_equal(me_train_thread_shards(&c, 32, 1), 1);
    assert_int_equal(me_train_thread_shards(&c, 3, 8), 3);
    assert_int_equal(me_train_thread_shards(&c, 1, 2), 1);
    assert_int_equal(me_train_thread_shards(&c, 64, ME_AUTO_SHARDS_MAX_THREADS + 1), 1);
    c.model.d_model = ME_AUTO_SHARDS_MAX_D;
    assert_int_equal(me_train_thread_shards(&c, 32, 2), 2);
    c.model.d_model = 2 * ME_AUTO_SHARDS_MAX_D;
    assert_int_equal(me_train_thread_shards(&c, 32, 2), 1);
    c.train.thread_shards = 3;
    assert_int_equal(me_train_thread_shards(&c, 32, 2), 3);
    c.train.thread_shards = 1;
    c.model.d_model = 64;
    assert_int_equal(me_train_thread_shards(&c, 32, 2), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loss_should_fall_by_half_on_the_copy_task_in_150_steps),
        cmocka_unit_test(thread_shards_should_follow_the_setting_and_the_auto_rule),
        cmocka_unit_test(the_same_seed_should_give_bit_identical_run_files),
        cmocka_unit_test(stop_at_accuracy_should_end_the_run_at_the_first_evaluation_that_reaches_it),
        cmocka_unit_test(thread_shards_should_match_the_unsplit_step_whatever_the_thread_count),
        cmocka_unit_test(resuming_adamw_at_step_30_should_reproduce_the_60_step_run_byte_for_byte),
        cmocka_unit_test(resuming_sgd_with_momentum_at_step_30_should_reproduce_the_60_step_run_byte_for_byte),
        cmocka_unit_test(resuming_an_interrupted_run_should_reproduce_the_uninterrupted_run),
        cmocka_unit_test(
            resuming_from_a_checkpoint_behind_the_other_files_should_truncate_them_and_reproduce_the_run),
        cmocka_unit_test(a_non_empty_run_directory_should_be_refused_unchanged_and_replaced_only_with_force),
        cmocka_unit_test(
            a_diverging_run_should_stop_with_a_numeric_error_naming_the_step_and_keep_the_last_checkpoint),
        cmocka_unit_test(bad_data_and_config_files_should_reach_the_user_with_their_location_and_exit_2),
        cmocka_unit_test(
            checkpoint_should_load_back_to_the_same_model_and_evaluation_with_optimizer_state_for_every_tensor),
        cmocka_unit_test(history_should_hold_the_initial_values_the_scheduled_steps_and_the_final_checkpoint),
        cmocka_unit_test(checkpoint_check_should_name_the_first_differing_architecture_key_with_both_values),
        cmocka_unit_test(a_checkpoint_should_store_its_config_without_the_run_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
