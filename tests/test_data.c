/* Tests for the toy data module: loader (exact values and every refusal with FILE:LINE:COLUMN),
 * batching, the resumable sampler, the generators (checked by independent definitions) and the
 * shipped data/ files. */
#include "test_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minienc/data.h"

static char tmp_dir[512];

static int setup_dir(void **state) {
    (void)state;
    me_make_temp_dir(tmp_dir, sizeof tmp_dir);
    return 0;
}

static int teardown_dir(void **state) {
    (void)state;
    me_remove_tree(tmp_dir);
    return 0;
}

/* Writes len bytes into tmp_dir/name; path receives the full path. */
static void write_bytes(const char *name, const char *bytes, size_t len, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into a malloc'd NUL-terminated buffer. */
static char *read_all(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) b = realloc(b, cap *= 2);
    }
    fclose(f);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

/* ---------------------------------------------------------------------------------------------- */

static void load_should_parse_comments_blank_lines_and_crlf_to_exact_values(void **state) {
    (void)state;
    static const char text[] = "# a comment\n"
                               "\n"
                               "3 1 4\t1 4 3\r\n"
                               "\r\n"
                               "#another\t comment  with odd spacing \n"
                               "0\t7\n"
                               "12 0 5 7 2\t0 1 2 3 4"; /* no final line end */
    char path[600];
    write_bytes("ok.txt", text, sizeof text - 1, path, sizeof path);
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_TAG, 13, 8, 5, &err), ME_OK);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.task, ME_TASK_TAG);
    assert_int_equal(ds.max_len_seen, 5);
    const size_t off[] = {0, 3, 4, 9};
    const int32_t tok[] = {3, 1, 4, 0, 12, 0, 5, 7, 2};
    const int32_t tgt[] = {1, 4, 3, 7, 0, 1, 2, 3, 4};
    const size_t lines[] = {3, 6, 7};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ds.offsets[i], off[i]);
        assert_int_equal(ds.target_offsets[i], off[i]);
    }
    for (size_t i = 0; i < 9; i++) {
        assert_int_equal(ds.tokens[i], tok[i]);
        assert_int_equal(ds.targets[i], tgt[i]);
    }
    for (size_t i = 0; i < 3; i++) assert_int_equal(ds.lines[i], lines[i]);
    assert_int_equal(me_dataset_len(&ds, 2), 5);
    me_dataset_free(&ds);
    assert_null(ds.tokens);
    me_dataset_free(&ds); /* twice is harmless */
}

static void load_should_parse_a_classify_file_with_one_target_per_line(void **state) {
    (void)state;
    static const char text[] = "0 1 1\t0\r\n1\t1\r\n0000 1 0 1 1\t1\r\n";
    char path[600];
    write_bytes("cls.txt", text, sizeof text - 1, path, sizeof path);
    me_dataset ds;
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_CLASSIFY, 2, 2, 8, NULL), ME_OK);
    assert_int_equal(ds.n, 3);
    const int32_t tgt[] = {0, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ds.target_offsets[i], i);
        assert_int_equal(ds.targets[i], tgt[i]);
    }
    assert_int_equal(ds.offsets[3], 9);
    assert_int_equal(ds.tokens[4], 0); /* "0000" reads as 0 */
    assert_int_equal(ds.max_len_seen, 5);
    me_dataset_free(&ds);
}

typedef struct {
    const char *bytes;
    size_t len;
    me_task task;
    int max_len;
    const char *where;  /* "LINE:COL" */
    const char *phrase; /* must appear in the message */
} bad_case;

#define BAD(lit, task, max_len, where, phrase) {lit, sizeof lit - 1, task, max_len, where, phrase}
#define TAG ME_TASK_TAG
#define CLS ME_TASK_CLASSIFY

/* vocab_size 8 and n_classes 8 throughout. */
static const bad_case bad_cases[] = {
    BAD("1 99999999999\t1 1\n", TAG, 9, "1:3", "does not fit in 32 bits"),
    BAD("1 4294967297\t1 1\n", TAG, 9, "1:3", "does not fit in 32 bits"),
    BAD("1 2147483647\t1 1\n", TAG, 9, "1:3", "input token 2147483647 is out of range; expected 0 <= input token < vocab_size=8"),
    BAD("1 8\t1 1\n", TAG, 9, "1:3", "input token 8 is out of range"),
    BAD("1 2\t1 9\n", TAG, 9, "1:7", "target 9 is out of range; expected 0 <= target < n_classes=8"),
    BAD("+1\t1\n", TAG, 9, "1:1", "sign '+'"),
    BAD("1\t-1\n", TAG, 9, "1:3", "sign '-'"),
    BAD("1  2\t1 2\n", TAG, 9, "1:3", "two spaces in a row"),
    BAD("1 2\t1  2\n", TAG, 9, "1:7", "two spaces in a row"),
    BAD("1 2 \t1 2\n", TAG, 9, "1:4", "trailing space"),
    BAD("1 2\t1 2 \n", TAG, 9, "1:8", "trailing space"),
    BAD("1 2\t1 2 \r\n", TAG, 9, "1:8", "trailing space"),
    BAD(" 1\t1\n", TAG, 9, "1:1", "unexpected space at the start"),
    BAD("1\t 1\n", TAG, 9, "1:3", "unexpected space at the start"),
    BAD("   \n", TAG, 9, "1:1", "unexpected space at the start"),
    BAD("1 2 3\n", TAG, 9, "1:6", "missing tab"),
    BAD("1 2\t1 2\t\n", TAG, 9, "1:8", "a second tab"),
    BAD("1\t\t1\n", TAG, 9, "1:3", "a second tab"),
    BAD("1 2\t1\0002\n", TAG, 9, "1:6", "NUL byte"),
    BAD("#ab\000c\n1\t1\n", TAG, 9, "1:4", "NUL byte"),
    BAD("\t1\n", TAG, 9, "1:1", "no input tokens"),
    BAD("1 2 3 4\t1 2 3 4\n", TAG, 3, "1:7", "more than max_len=3 input tokens"),
    BAD("1 2 3\t1 2\n", TAG, 9, "1:10", "only 2 targets for 3 input tokens"),
    BAD("1 2\t1 2 3\n", TAG, 9, "1:9", "more targets than the 2 input tokens"),
    BAD("1 2\t1 0\n", CLS, 9, "1:7", "more than 1 target; task classify"),
    BAD("1 2\t\n", TAG, 9, "1:5", "no targets after the tab"),
    BAD("1 2\t\r\n", CLS, 9, "1:5", "no targets after the tab; expected one class label"),
    BAD("1 x\t1 1\n", TAG, 9, "1:3", "unexpected 'x'"),
    BAD("1 7a\t1\n", CLS, 9, "1:4", "unexpected 'a' after a number"),
    BAD("1\r2\t1\n", CLS, 9, "1:2", "carriage return"),
    BAD("1\t1\r\r\n", CLS, 9, "1:4", "carriage return"),
    BAD("\xff\t1\n", CLS, 9, "1:1", "byte 0xff"),
    BAD("# c\r\n\r\n1\t1\r\n2 x\t1\r\n", CLS, 9, "4:3", "unexpected 'x'"),
    BAD("", TAG, 9, "1:1", "no examples"),
    BAD("# only a comment\n\n", TAG, 9, "3:1", "no examples"),
};

static void load_should_refuse_each_malformed_file_naming_line_and_column(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        const bad_case *c = &bad_cases[k];
        char name[32], path[600], want[700];
        snprintf(name, sizeof name, "bad%zu.txt", k);
        write_bytes(name, c->bytes, c->len, path, sizeof path);
        me_dataset ds;
        me_error err = {0};
        me_status st = me_dataset_load(&ds, path, c->task, 8, 8, c->max_len, &err);
        snprintf(want, sizeof want, "%s:%s: ", path, c->where);
        if (st != ME_ERR_DATA || strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, c->phrase)) {
            print_error("case %zu: status %d, message '%s'; want prefix '%s' and phrase '%s'\n", k, (int)st,
                        err.msg, want, c->phrase);
            fail();
        }
        assert_int_equal(err.status, ME_ERR_DATA);
        assert_int_equal(ds.n, 0);
        assert_null(ds.tokens);
        assert_null(ds.offsets);
    }
}

static void load_should_report_a_missing_file_as_bad_input(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.txt", tmp_dir);
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_TAG, 8, 8, 8, &err), ME_ERR_NOFILE);
    assert_non_null(strstr(err.msg, "does-not-exist.txt: cannot open"));
    assert_int_equal(me_status_exit_code(ME_ERR_NOFILE), 2);
    /* a folder opens but is not a data file */
    assert_int_equal(me_dataset_load(&ds, tmp_dir, ME_TASK_TAG, 8, 8, 8, &err), ME_ERR_NOFILE);
    assert_non_null(strstr(err.msg, "is a directory"));
}

static void load_should_refuse_nonpositive_sizes_as_config_errors(void **state) {
    (void)state;
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_load(&ds, "data/reverse/train.txt", ME_TASK_TAG, 0, 8, 8, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "vocab_size=0"));
    assert_int_equal(me_dataset_load(&ds, "data/reverse/train.txt", ME_TASK_TAG, 8, 8, 0, &err), ME_ERR_CONFIG);
}

static void load_should_accept_a_line_at_the_limit_and_refuse_one_byte_more(void **state) {
    (void)state;
    size_t L = ME_DATA_LINE_MAX;
    char *b = malloc(L + 16);
    /* a comment of exactly L bytes ending in CRLF, then one example: accepted */
    memset(b, 'c', L);
    b[0] = '#';
    memcpy(b + L, "\r\n1\t1\n", 6);
    char path[600];
    write_bytes("limit.txt", b, L + 6, path, sizeof path);
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_CLASSIFY, 2, 2, 4, &err), ME_OK);
    assert_int_equal(ds.n, 1);
    assert_int_equal(ds.lines[0], 2);
    me_dataset_free(&ds);
    /* an example line of L + 1 bytes: refused at column L + 1, whatever its content */
    for (size_t i = 0; i + 1 < L + 1; i += 2) memcpy(b + i, "1 ", 2);
    b[L - 1] = '\t';
    b[L] = '1';
    b[L + 1] = '\n';
    write_bytes("long.txt", b, L + 2, path, sizeof path);
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_TAG, 2, 2, 4, &err), ME_ERR_DATA);
    char want[700];
    snprintf(want, sizeof want, "%s:1:%d: line longer than %d bytes", path, ME_DATA_LINE_MAX + 1, ME_DATA_LINE_MAX);
    if (strncmp(err.msg, want, strlen(want)) != 0) {
        print_error("got '%s', want prefix '%s'\n", err.msg, want);
        fail();
    }
    free(b);
}

/* ---------------------------------------------------------------------------------------------- */

static void batch_should_pad_with_zeros_mask_padding_and_ignore_padded_targets(void **state) {
    (void)state;
    static const char text[] = "5 6 7\t1 2 3\n4\t0\n1 2\t3 4\n";
    char path[600];
    write_bytes("batch.txt", text, sizeof text - 1, path, sizeof path);
    me_dataset ds;
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_TAG, 8, 8, 6, NULL), ME_OK);
    int32_t tok[2 * 6], tgt[2 * 6];
    uint8_t mask[2 * 6];
    memset(tok, 0x55, sizeof tok);
    memset(tgt, 0x55, sizeof tgt);
    memset(mask, 0x55, sizeof mask);
    const size_t idx[] = {1, 2};
    assert_int_equal(me_dataset_batch(&ds, idx, 2, tok, mask, tgt), 2); /* longest of lengths 1 and 2 */
    const int32_t want_tok[] = {4, 0, 1, 2};
    const uint8_t want_mask[] = {0, 1, 0, 0};
    const int32_t want_tgt[] = {0, -1, 3, 4};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok[i], want_tok[i]);
        assert_int_equal(mask[i], want_mask[i]);
        assert_int_equal(tgt[i], want_tgt[i]);
    }
    const size_t idx3[] = {2, 0, 1};
    int32_t tok3[3 * 6], tgt3[3 * 6];
    uint8_t mask3[3 * 6];
    assert_int_equal(me_dataset_batch(&ds, idx3, 3, tok3, mask3, tgt3), 3);
    const int32_t w_tok3[] = {1, 2, 0, 5, 6, 7, 4, 0, 0};
    const uint8_t w_mask3[] = {0, 0, 1, 0, 0, 0, 0, 1, 1};
    const int32_t w_tgt3[] = {3, 4, -1, 1, 2, 3, 0, -1, -1};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(tok3[i], w_tok3[i]);
        assert_int_equal(mask3[i], w_mask3[i]);
        assert_int_equal(tgt3[i], w_tgt3[i]);
    }
    me_dataset_free(&ds);
}

static void batch_should_give_one_label_per_example_for_classify(void **state) {
    (void)state;
    static const char text[] = "1 0 1\t0\n1\t1\n";
    char path[600];
    write_bytes("batchc.txt", text, sizeof text - 1, path, sizeof path);
    me_dataset ds;
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_CLASSIFY, 2, 2, 4, NULL), ME_OK);
    int32_t tok[6], tgt[3] = {9, 9, 9};
    uint8_t mask[6];
    const size_t idx[] = {1, 0};
    assert_int_equal(me_dataset_batch(&ds, idx, 2, tok, mask, tgt), 3);
    const int32_t want_tok[] = {1, 0, 0, 1, 0, 1};
    const uint8_t want_mask[] = {0, 1, 1, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tok[i], want_tok[i]);
        assert_int_equal(mask[i], want_mask[i]);
    }
    assert_int_equal(tgt[0], 1);
    assert_int_equal(tgt[1], 0);
    assert_int_equal(tgt[2], 9); /* untouched beyond [B] */
    me_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------------- */

static void sampler_should_repeat_the_same_order_for_the_same_seed(void **state) {
    (void)state;
    me_sampler a, b, c;
    assert_int_equal(me_sampler_init(&a, 37, 5, NULL), ME_OK);
    assert_int_equal(me_sampler_init(&b, 37, 5, NULL), ME_OK);
    assert_int_equal(me_sampler_init(&c, 37, 6, NULL), ME_OK);
    size_t ia[100], ib[100], ic[100];
    me_sampler_next_batch(&a, ia, 100);
    for (int k = 0; k < 10; k++) me_sampler_next_batch(&b, ib + 10 * k, 10);
    me_sampler_next_batch(&c, ic, 100);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_not_equal(ia, ic, sizeof ia);
    me_sampler_free(&a);
    me_sampler_free(&b);
    me_sampler_free(&c);
}

static void sampler_should_visit_every_example_exactly_once_per_epoch(void **state) {
    (void)state;
    enum { N = 23, B = 7, EPOCHS = 5 };
    me_sampler s;
    assert_int_equal(me_sampler_init(&s, N, 42, NULL), ME_OK);
    size_t all[N * EPOCHS + B];
    size_t got = 0;
    while (got < N * EPOCHS) {
        me_sampler_next_batch(&s, all + got, B); /* batches straddle epoch ends */
        got += B;
    }
    int differs = 0;
    for (int e = 0; e < EPOCHS; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) {
            assert_true(all[e * N + i] < N);
            seen[all[e * N + i]]++;
        }
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
        if (e > 0 && memcmp(all + e * N, all, N * sizeof all[0]) != 0) differs = 1;
    }
    assert_true(differs); /* epochs are reshuffled */
    me_sampler_free(&s);
}

static void sampler_should_resume_the_same_sequence_after_state_restore(void **state) {
    (void)state;
    me_sampler s, r;
    assert_int_equal(me_sampler_init(&s, 10, 99, NULL), ME_OK);
    size_t head[26], tail[40], resumed[40];
    me_sampler_next_batch(&s, head, 26); /* into epoch 2 */
    uint64_t seed, epoch, pos;
    me_sampler_get_state(&s, &seed, &epoch, &pos);
    assert_int_equal(seed, 99);
    assert_int_equal(epoch, 2);
    assert_int_equal(pos, 6);
    me_sampler_next_batch(&s, tail, 40);

    assert_int_equal(me_sampler_init(&r, 10, 1234, NULL), ME_OK); /* different seed, fresh */
    assert_int_equal(me_sampler_set_state(&r, seed, epoch, pos, NULL), ME_OK);
    me_sampler_next_batch(&r, resumed, 40);
    assert_memory_equal(tail, resumed, sizeof tail);

    /* a state at the very end of an epoch resumes too */
    me_sampler_get_state(&s, &seed, &epoch, &pos); /* 66 drawn: epoch 6, pos 6 */
    assert_int_equal(me_sampler_set_state(&r, 99, 0, 10, NULL), ME_OK);
    size_t x[10], y[10];
    me_sampler_next_batch(&r, x, 10);
    me_sampler t;
    assert_int_equal(me_sampler_init(&t, 10, 99, NULL), ME_OK);
    me_sampler_next_batch(&t, y, 10);
    me_sampler_next_batch(&t, y, 10); /* epoch 1 of a fresh sampler */
    assert_memory_equal(x, y, sizeof x);

    me_error err = {0};
    assert_int_equal(me_sampler_set_state(&r, 99, 0, 11, &err), ME_ERR_DATA);
    assert_non_null(strstr(err.msg, "position 11"));
    me_sampler_free(&s);
    me_sampler_free(&r);
    me_sampler_free(&t);
}

/* ---------------------------------------------------------------------------------------------- */

static void task_info_should_give_each_tasks_sizes_and_refuse_unknown_names(void **state) {
    (void)state;
    static const struct {
        const char *task;
        int vs, nc;
        me_task kind;
    } want[] = {{"reverse", 8, 8, ME_TASK_TAG},     {"sort", 8, 8, ME_TASK_TAG},
                {"histogram", 8, 13, ME_TASK_TAG},  {"copy", 8, 8, ME_TASK_TAG},
                {"parity", 8, 2, ME_TASK_CLASSIFY}, {"majority", 8, 8, ME_TASK_CLASSIFY}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int vs = -1, nc = -1;
        me_task kind = (me_task)-1;
        assert_int_equal(me_data_task_info(want[i].task, 8, 12, &vs, &nc, &kind, NULL), ME_OK);
        assert_int_equal(vs, want[i].vs);
        assert_int_equal(nc, want[i].nc);
        assert_int_equal(kind, want[i].kind);
    }
    me_error err = {0};
    assert_int_equal(me_data_task_info("revers", 8, 12, NULL, NULL, NULL, &err), ME_ERR_CONFIG);
    assert_string_equal(err.msg,
                        "task 'revers': unknown; expected one of reverse, sort, histogram, copy, parity, majority");
    assert_int_equal(me_data_task_info("parity", 1, 12, NULL, NULL, NULL, &err), ME_ERR_CONFIG);
    assert_int_equal(me_data_task_info("parity", 2, 0, NULL, NULL, NULL, &err), ME_ERR_CONFIG);
    assert_int_equal(me_data_task_info("parity", 2, ME_DATA_GEN_MAX_LEN + 1, NULL, NULL, NULL, &err),
                     ME_ERR_CONFIG);
}

/* Independent check of one generated example against its task's definition. */
static int example_is_correct(const char *task, const int32_t *x, size_t l, const int32_t *y, size_t ny, int vocab) {
    int *cnt = calloc((size_t)vocab, sizeof *cnt);
    for (size_t j = 0; j < l; j++) cnt[x[j]]++;
    int ok = 1;
    if (!strcmp(task, "reverse") || !strcmp(task, "copy") || !strcmp(task, "sort") || !strcmp(task, "histogram")) {
        ok = ny == l;
        for (size_t j = 0; ok && j < l; j++) {
            if (!strcmp(task, "reverse")) ok = y[j] == x[l - 1 - j];
            if (!strcmp(task, "copy")) ok = y[j] == x[j];
            if (!strcmp(task, "histogram")) ok = y[j] == cnt[x[j]];
            if (!strcmp(task, "sort")) ok = j == 0 || y[j - 1] <= y[j];
        }
        if (ok && !strcmp(task, "sort")) { /* same multiset: removing y's tokens empties the counts */
            for (size_t j = 0; j < l; j++) cnt[y[j]]--;
            for (int v = 0; v < vocab; v++) ok = ok && cnt[v] == 0;
        }
    } else if (!strcmp(task, "parity")) {
        ok = ny == 1 && y[0] == cnt[1] % 2;
    } else if (!strcmp(task, "majority")) {
        int best = 0;
        for (int v = 1; v < vocab; v++)
            if (cnt[v] > cnt[best]) best = v; /* strict: the smallest token wins ties */
        ok = ny == 1 && y[0] == best;
    } else {
        ok = 0;
    }
    free(cnt);
    return ok;
}

static void generators_should_write_lines_that_satisfy_each_tasks_definition(void **state) {
    (void)state;
    static const char *tasks[] = {"reverse", "sort", "histogram", "copy", "parity", "majority"};
    for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++) {
        const int vocab = t == 4 ? 2 : 5, min_len = 1, max_len = 9;
        const size_t n = 300;
        char path[600];
        snprintf(path, sizeof path, "%s/gen-%s.txt", tmp_dir, tasks[t]);
        me_error err = {0};
        assert_int_equal(me_data_generate_file(path, tasks[t], n, min_len, max_len, vocab, 7 + t, &err), ME_OK);
        int vs, nc;
        me_task kind;
        assert_int_equal(me_data_task_info(tasks[t], vocab, max_len, &vs, &nc, &kind, NULL), ME_OK);
        me_dataset ds;
        if (me_dataset_load(&ds, path, kind, vs, nc, max_len, &err) != ME_OK) {
            print_error("%s: %s\n", tasks[t], err.msg);
            fail();
        }
        assert_int_equal(ds.n, n);
        int lens_seen[16] = {0}, ties = 0;
        for (size_t i = 0; i < ds.n; i++) {
            size_t l = me_dataset_len(&ds, i);
            size_t ny = ds.target_offsets[i + 1] - ds.target_offsets[i];
            assert_true(l >= (size_t)min_len && l <= (size_t)max_len);
            lens_seen[l]++;
            const int32_t *x = ds.tokens + ds.offsets[i], *y = ds.targets + ds.target_offsets[i];
            if (!example_is_correct(tasks[t], x, l, y, ny, vocab)) {
                print_error("%s: example on line %zu breaks the task's definition\n", tasks[t], ds.lines[i]);
                fail();
            }
            if (t == 5 && l == 2 && x[0] != x[1]) ties++;
        }
        for (int l = min_len; l <= max_len; l++) assert_true(lens_seen[l] > 0);
        if (t == 5) assert_true(ties > 0); /* the tie rule was exercised */
        me_dataset_free(&ds);

        size_t len;
        char *text = read_all(path, &len);
        char head[256];
        snprintf(head, sizeof head,
                 "# minienc data: task=%s n=300 min_len=1 max_len=9 vocab=%d seed=%zu vocab_size=%d n_classes=%d "
                 "kind=%s\n",
                 tasks[t], vocab, 7 + t, vs, nc, kind == ME_TASK_TAG ? "tag" : "classify");
        assert_memory_equal(text, head, strlen(head));
        free(text);
    }
}

static void generators_should_be_deterministic_in_the_seed(void **state) {
    (void)state;
    char p1[600], p2[600], p3[600];
    snprintf(p1, sizeof p1, "%s/s1.txt", tmp_dir);
    snprintf(p2, sizeof p2, "%s/s2.txt", tmp_dir);
    snprintf(p3, sizeof p3, "%s/s3.txt", tmp_dir);
    assert_int_equal(me_data_generate_file(p1, "sort", 50, 2, 6, 9, 3, NULL), ME_OK);
    assert_int_equal(me_data_generate_file(p2, "sort", 50, 2, 6, 9, 3, NULL), ME_OK);
    assert_int_equal(me_data_generate_file(p3, "sort", 50, 2, 6, 9, 4, NULL), ME_OK);
    size_t l1, l2, l3;
    char *a = read_all(p1, &l1), *b = read_all(p2, &l2), *c = read_all(p3, &l3);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    assert_true(l1 != l3 || memcmp(a, c, l1) != 0);
    free(a);
    free(b);
    free(c);
    /* no temporary file is left behind */
    char out[4096];
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c tmp || true", tmp_dir);
    me_run_capture(cmd, out, sizeof out);
    assert_string_equal(out, "0\n");
}

static void generators_should_refuse_bad_arguments(void **state) {
    (void)state;
    me_error err = {0};
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(me_data_generate(f, "sort", 0, 2, 6, 9, 3, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "n=0"));
    assert_int_equal(me_data_generate(f, "sort", 5, 7, 6, 9, 3, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "min_len=7 max_len=6"));
    assert_int_equal(me_data_generate(f, "sort", 5, 0, 6, 9, 3, &err), ME_ERR_CONFIG);
    assert_int_equal(me_data_generate(f, "bogus", 5, 1, 6, 9, 3, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ME_DATA_TASK_NAMES));
    assert_int_equal(ftell(f), 0); /* nothing written on refusal */
    fclose(f);
    char path[600];
    snprintf(path, sizeof path, "%s/no-such-dir/x.txt", tmp_dir);
    assert_int_equal(me_data_generate_file(path, "sort", 5, 1, 6, 9, 3, &err), ME_ERR_IO);
}

/* ---------------------------------------------------------------------------------------------- */

/* Input i of ds as text (for comparing inputs across files). */
static void input_text(const me_dataset *ds, size_t i, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t j = 0; j < me_dataset_len(ds, i) && used < cap; j++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId32, j ? " " : "", ds->tokens[ds->offsets[i] + j]);
}

static void split_should_share_no_input_between_train_and_valid_and_follow_the_task(void **state) {
    (void)state;
    static const char *tasks[] = {"reverse", "parity", "histogram"};
    for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++) {
        char dir[600], path[700];
        snprintf(dir, sizeof dir, "%s/split-%s/sub", tmp_dir, tasks[t]); /* parents made too */
        int vocab = me_data_default_vocab(tasks[t]), vs, nc;
        me_task kind;
        me_error err = {0};
        /* a small input space (vocab^2 + ... + vocab^6), so that repeats are likely */
        assert_int_equal(me_data_generate_split_dir(dir, tasks[t], 600, 120, 2, 6, vocab, 3, &err), ME_OK);
        assert_int_equal(me_data_task_info(tasks[t], vocab, 6, &vs, &nc, &kind, NULL), ME_OK);
        me_dataset tr, va;
        snprintf(path, sizeof path, "%s/train.txt", dir);
        assert_int_equal(me_dataset_load(&tr, path, kind, vs, nc, 6, &err), ME_OK);
        snprintf(path, sizeof path, "%s/valid.txt", dir);
        assert_int_equal(me_dataset_load(&va, path, kind, vs, nc, 6, &err), ME_OK);
        assert_int_equal(tr.n, 600);
        assert_int_equal(va.n, 120);
        size_t repeats = 0;
        for (size_t i = 0; i < tr.n; i++) {
            char a[64], b[64];
            input_text(&tr, i, a, sizeof a);
            assert_true(example_is_correct(tasks[t], tr.tokens + tr.offsets[i], me_dataset_len(&tr, i),
                                           tr.targets + tr.target_offsets[i],
                                           tr.target_offsets[i + 1] - tr.target_offsets[i], vocab));
            for (size_t j = 0; j < va.n; j++) {
                input_text(&va, j, b, sizeof b);
                if (strcmp(a, b) == 0) {
                    print_error("%s: training line %zu and validation line %zu hold the same input %s\n", tasks[t],
                                tr.lines[i], va.lines[j], a);
                    fail();
                }
            }
            for (size_t k = 0; k < i && !repeats; k++) { /* the space is small enough that training repeats */
                char c[64];
                input_text(&tr, k, c, sizeof c);
                repeats += strcmp(a, c) == 0;
            }
        }
        assert_true(repeats > 0 || t == 0); /* parity and histogram have few inputs: repeats happen */
        me_dataset_free(&tr);
        me_dataset_free(&va);
    }
    /* the same arguments, the same bytes; a different seed, different bytes */
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/split-a", tmp_dir);
    snprintf(b, sizeof b, "%s/split-b", tmp_dir);
    assert_int_equal(me_data_generate_split_dir(a, "sort", 50, 20, 2, 5, 6, 9, NULL), ME_OK);
    assert_int_equal(me_data_generate_split_dir(b, "sort", 50, 20, 2, 5, 6, 9, NULL), ME_OK);
    for (int k = 0; k < 2; k++) {
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/%s", a, k ? "valid.txt" : "train.txt");
        snprintf(pb, sizeof pb, "%s/%s", b, k ? "valid.txt" : "train.txt");
        size_t la, lb;
        char *ta = read_all(pa, &la), *tb = read_all(pb, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ta, tb, la);
        free(ta), free(tb);
    }
}

static void split_should_refuse_a_validation_set_that_leaves_no_training_input(void **state) {
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/split-full", tmp_dir);
    me_error err = {0};
    /* parity of 1 or 2 tokens: 2 + 4 = 6 inputs, all drawn by 200 validation examples */
    assert_int_equal(me_data_generate_split_dir(dir, "parity", 10, 200, 1, 2, 2, 0, &err), ME_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "6 possible inputs"));
    char path[700];
    snprintf(path, sizeof path, "%s/train.txt", dir);
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
}

static void data_command_should_write_to_stdout_and_default_parity_to_tokens_0_and_1(void **state) {
    (void)state;
    char cmd[1200], out[1 << 14];
    snprintf(cmd, sizeof cmd, "%s data parity --out - --n 40 2>/dev/null", me_test_bin());
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 0);
    /* data/README.md: parity over tokens 0 and 1 (vocab 2), lengths 2..10 */
    assert_non_null(strstr(out, "# minienc data: task=parity n=40 min_len=2 max_len=10 vocab=2 "));
    char path[700];
    snprintf(path, sizeof path, "%s/stdout.txt", tmp_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_CLASSIFY, 2, 2, 10, &err), ME_OK); /* tokens < 2 */
    assert_int_equal(ds.n, 40);
    me_dataset_free(&ds);
    snprintf(cmd, sizeof cmd, "%s data reverse --out - --valid 3", me_test_bin());
    assert_int_equal(me_run_capture(cmd, out, sizeof out), 2);
}

static void inputs_should_take_optional_targets_and_refuse_with_name_line_and_column(void **state) {
    (void)state;
    me_dataset ds;
    me_error err = {0};
    assert_int_equal(me_dataset_init(&ds, ME_TASK_TAG, 8, 8, 6, ME_DATA_TARGETS_OPTIONAL, "--input", &err), ME_OK);
    const char *a = "3 1 2", *b = "4 5\t5 4";
    assert_int_equal(me_dataset_add_line(&ds, a, strlen(a), "--input", 1, &err), ME_OK);
    assert_int_equal(me_dataset_add_line(&ds, b, strlen(b), "--input", 2, &err), ME_OK);
    assert_int_equal(ds.n, 2);
    assert_false(me_dataset_has_targets(&ds, 0));
    assert_true(me_dataset_has_targets(&ds, 1));
    int32_t tokens[12], targets[12];
    uint8_t pad[12];
    size_t idx[2] = {0, 1};
    assert_int_equal(me_dataset_batch(&ds, idx, 2, tokens, pad, targets), 3);
    for (int j = 0; j < 3; j++) assert_int_equal(targets[j], -1); /* no targets: nothing counts */
    assert_int_equal(targets[3], 5);
    assert_int_equal(targets[4], 4);
    assert_int_equal(targets[5], -1);
    static const struct {
        const char *text, *where, *phrase;
    } bad_inputs[] = {
        {"1 9", "--input:3:3: ", "out of range"},
        {"", "--input:3:1: ", "no input tokens"},
        {"1  2", "--input:3:3: ", "two spaces"},
        {"1 2 3 4 5 6 7", "--input:3:13: ", "max_len"},
        {"1 2\t", "--input:3:5: ", "no targets after the tab"},
        {"# 1", "--input:3:1: ", "unexpected '#'"},
        {"1\n2", "--input:3:2: ", "byte 0x0a"},
    };
    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        me_status st = me_dataset_add_line(&ds, bad_inputs[i].text, strlen(bad_inputs[i].text), "--input", 3, &err);
        if (st != ME_ERR_DATA || strncmp(err.msg, bad_inputs[i].where, strlen(bad_inputs[i].where)) != 0 ||
            !strstr(err.msg, bad_inputs[i].phrase)) {
            print_error("input '%s': status %d, message '%s'; want '%s...%s'\n", bad_inputs[i].text, (int)st, err.msg,
                        bad_inputs[i].where, bad_inputs[i].phrase);
            fail();
        }
    }
    assert_int_equal(ds.n, 2); /* refused lines add nothing */
    me_dataset_free(&ds);
    /* a file of inputs, some with targets */
    char path[700];
    static const char text[] = "# inputs\n1 2 3\n3 2\t2 3\n\n0\n";
    write_bytes("inputs.txt", text, sizeof text - 1, path, sizeof path);
    assert_int_equal(me_dataset_load_flags(&ds, path, ME_TASK_TAG, 8, 8, 6, ME_DATA_TARGETS_OPTIONAL, &err), ME_OK);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.lines[2], 5);
    me_dataset_free(&ds);
    /* without the flag, targets are required as before */
    assert_int_equal(me_dataset_load(&ds, path, ME_TASK_TAG, 8, 8, 6, &err), ME_ERR_DATA);
    assert_non_null(strstr(err.msg, ":2:6: missing tab"));
}

static void shipped_data_should_load_with_its_stated_sizes_and_match_the_generator(void **state) {
    (void)state;
    static const char *files[] = {"reverse/train.txt",   "reverse/valid.txt", "sort/train.txt",
                                  "sort/valid.txt",      "histogram/train.txt", "histogram/valid.txt",
                                  "parity/train.txt",    "parity/valid.txt"};
    long total = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char path[1200], regen[700];
        snprintf(path, sizeof path, "%s/data/%s", me_test_source_dir(), files[k]);
        size_t len;
        char *text = read_all(path, &len);
        if (!text) {
            print_error("cannot read %s\n", path);
            fail();
        }
        total += (long)len;
        char task[32], kind[16];
        size_t n;
        int min_len, max_len, vocab, vs, nc;
        uint64_t seed;
        int got = sscanf(text,
                         "# minienc data: task=%31s n=%zu min_len=%d max_len=%d vocab=%d seed=%" SCNu64
                         " vocab_size=%d n_classes=%d kind=%15s",
                         task, &n, &min_len, &max_len, &vocab, &seed, &vs, &nc, kind);
        assert_int_equal(got, 9);
        me_task t = strcmp(kind, "tag") == 0 ? ME_TASK_TAG : ME_TASK_CLASSIFY;
        me_dataset ds;
        me_error err = {0};
        if (me_dataset_load(&ds, path, t, vs, nc, max_len, &err) != ME_OK) {
            print_error("%s\n", err.msg);
            fail();
        }
        assert_int_equal(ds.n, n);
        assert_true(ds.max_len_seen <= max_len);
        for (size_t i = 0; i < ds.n; i++)
            assert_true(example_is_correct(task, ds.tokens + ds.offsets[i], me_dataset_len(&ds, i),
                                           ds.targets + ds.target_offsets[i],
                                           ds.target_offsets[i + 1] - ds.target_offsets[i], vocab));
        me_dataset_free(&ds);
        /* the file is exactly what the generator makes from its header */
        snprintf(regen, sizeof regen, "%s/regen.txt", tmp_dir);
        assert_int_equal(me_data_generate_file(regen, task, n, min_len, max_len, vocab, seed, NULL), ME_OK);
        size_t rlen;
        char *again = read_all(regen, &rlen);
        assert_int_equal(rlen, len);
        assert_memory_equal(again, text, len);
        free(again);
        free(text);
    }
    assert_true(total < 500 * 1024);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_should_parse_comments_blank_lines_and_crlf_to_exact_values),
        cmocka_unit_test(load_should_parse_a_classify_file_with_one_target_per_line),
        cmocka_unit_test(load_should_refuse_each_malformed_file_naming_line_and_column),
        cmocka_unit_test(load_should_report_a_missing_file_as_bad_input),
        cmocka_unit_test(load_should_refuse_nonpositive_sizes_as_config_errors),
        cmocka_unit_test(load_should_accept_a_line_at_the_limit_and_refuse_one_byte_more),
        cmocka_unit_test(batch_should_pad_with_zeros_mask_padding_and_ignore_padded_targets),
        cmocka_unit_test(batch_should_give_one_label_per_example_for_classify),
        cmocka_unit_test(sampler_should_repeat_the_same_order_for_the_same_seed),
        cmocka_unit_test(sampler_should_visit_every_example_exactly_once_per_epoch),
        cmocka_unit_test(sampler_should_resume_the_same_sequence_after_state_restore),
        cmocka_unit_test(task_info_should_give_each_tasks_sizes_and_refuse_unknown_names),
        cmocka_unit_test(generators_should_write_lines_that_satisfy_each_tasks_definition),
        cmocka_unit_test(generators_should_be_deterministic_in_the_seed),
        cmocka_unit_test(generators_should_refuse_bad_arguments),
        cmocka_unit_test(split_should_share_no_input_between_train_and_valid_and_follow_the_task),
        cmocka_unit_test(split_should_refuse_a_validation_set_that_leaves_no_training_input),
        cmocka_unit_test(data_command_should_write_to_stdout_and_default_parity_to_tokens_0_and_1),
        cmocka_unit_test(inputs_should_take_optional_targets_and_refuse_with_name_line_and_column),
        cmocka_unit_test(shipped_data_should_load_with_its_stated_sizes_and_match_the_generator),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
