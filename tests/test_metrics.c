/* Tests for metrics.csv: the writer's exact text (header, %.9g / %.6g fields, empty validation fields),
 * the strict reader (values, NaN for empty fields, refusals with file and line), and that what the
 * writer writes reads back and is written again byte for byte (what a resumed run relies on). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minienc/metrics.h"

/* The folder every test writes its files into, made by main. */
static char dir[512];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    assert_true(n < (1 << 16) - 1);
    fclose(f);
    return buf;
}

/* ---- writer ---- */

static void log_should_write_the_header_and_rows_in_the_documented_format(void **state) {
    (void)state;
    me_metrics_log log;
    me_error err = {0};
    assert_int_equal(me_metrics_log_init(&log, &err), ME_OK);
    const me_metrics_row rows[] = {
        {1, 2.0794415416798357, 0.001, 1.25, 12345.678, NAN, NAN},
        {2, 1.5, 0.0005, 0.333333333333, 987654.321, 1.75, 0.125},
        {10, 1e-12, 0, 3e20, 0.5, NAN, 0.5},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(me_metrics_log_append(&log, &rows[i], &err), ME_OK);
    /* Written out by hand from the format: %.9g, tokens_per_s %.6g, NaN validation as an empty field. */
    const char *want = "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n"
                       "1,2.07944154,0.001,1.25,12345.7,,\n"
                       "2,1.5,0.0005,0.333333333,987654,1.75,0.125\n"
                       "10,1e-12,0,3e+20,0.5,,0.5\n";
    assert_string_equal(log.text, want);
    assert_int_equal(log.len, strlen(want));
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    assert_int_equal(me_metrics_log_write(&log, path, &err), ME_OK);
    char *text = read_text(path);
    assert_string_equal(text, want);
    free(text);
    me_metrics_log_free(&log);
}

static void written_rows_should_read_back_and_write_again_byte_for_byte(void **state) {
    (void)state;
    me_metrics_log log;
    me_error err = {0};
    assert_int_equal(me_metrics_log_init(&log, &err), ME_OK);
    me_rng rng;
    me_rng_seed(&rng, 3);
    enum { N = 500 };
    for (int i = 1; i <= N; i++) {
        double u = me_rng_uniform(&rng);
        me_metrics_row r = {i, 3.0 * exp(-i / 100.0) + 0.01 * u, 1e-3 * (1 + u), 10.0 * u, 1e5 * (1 + u), NAN, NAN};
        if (i % 50 == 0) r.valid_loss = r.loss + 0.1 * u, r.valid_acc = 1.0 - exp(-i / 200.0);
        assert_int_equal(me_metrics_log_append(&log, &r, &err), ME_OK);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/roundtrip.csv", dir);
    assert_int_equal(me_metrics_log_write(&log, path, &err), ME_OK);
    me_metrics m;
    if (me_metrics_read(&m, path, &err) != ME_OK) fail_msg("%s", err.msg);
    assert_int_equal(m.n, N);
    me_metrics_log again;
    assert_int_equal(me_metrics_log_init(&again, &err), ME_OK);
    for (size_t i = 0; i < m.n; i++) {
        me_metrics_row r = me_metrics_row_at(&m, i);
        assert_int_equal(r.step, (int64_t)i + 1);
        assert_int_equal(isnan(r.valid_loss), (i + 1) % 50 != 0);
        assert_int_equal(me_metrics_log_append(&again, &r, &err), ME_OK);
    }
    assert_int_equal(again.len, log.len);
    assert_string_equal(again.text, log.text);
    me_metrics_free(&m);
    me_metrics_log_free(&again);
    me_metrics_log_free(&log);
}

/* ---- reader ---- */

static void metrics_reader_should_read_rows_and_leave_missing_validation_nan(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/ok.csv", dir);
    write_text(path, "step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\r\n"
                     "1,2.5,0.001,1.25,1000,,\r\n"
                     "2,2.25,0.002,1e-3,2000,2.75,0.125\n"
                     "7,nan,0,-inf,1.5E+3,,0.5");
    me_metrics m;
    me_error err = {0};
    if (me_metrics_read(&m, path, &err) != ME_OK) fail_msg("%s", err.msg);
    assert_int_equal(m.n, 3);
    assert_true(m.step[0] == 1 && m.step[1] == 2 && m.step[2] == 7);
    assert_true(m.loss[0] == 2.5 && m.loss[1] == 2.25 && isnan(m.loss[2]));
    assert_true(m.lr[1] == 0.002 && m.grad_norm[1] == 1e-3 && m.tokens_per_s[1] == 2000);
    assert_true(isinf(m.grad_norm[2]) && m.grad_norm[2] < 0 && m.tokens_per_s[2] == 1500);
    assert_true(isnan(m.valid_loss[0]) && isnan(m.valid_acc[0]));
    assert_true(m.valid_loss[1] == 2.75 && m.valid_acc[1] == 0.125);
    assert_true(isnan(m.valid_loss[2]) && m.valid_acc[2] == 0.5);
    me_metrics_free(&m);
}

static void metrics_reader_should_refuse_malformed_rows_with_file_and_line(void **state) {
    (void)state;
    static const struct {
        const char *text, *where, *what;
    } cases[] = {
        {"step,loss,lr\n1,2,3\n", ":1:", "header"},
        {"", ":1:", "empty file"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,2,3,4,5,,\n2,2,3,4,5,\n", ":3:", "6 fields"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,2,3,4,5,,\n2,2,3,4,5,,,\n", ":3:", "8 fields"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,abc,3,4,5,,\n", ":2:", "loss 'abc'"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,1,,4,5,,\n", ":2:", "lr ''"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,1,3,4,5,0.5x,\n", ":2:", "valid_loss"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1.5,1,3,4,5,,\n", ":2:", "step '1.5'"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n5,1,3,4,5,,\n5,1,3,4,5,,\n", ":3:", "increasing"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,1,3,4,5,,\n\n2,1,3,4,5,,\n", ":3:", "empty line"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1, 1,3,4,5,,\n", ":2:", "loss ' 1'"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,0x1p3,3,4,5,,\n", ":2:", "loss '0x1p3'"},
        {"step,loss,lr,grad_norm,tokens_per_s,valid_loss,valid_acc\n1,1,3,4,5,,infinity\n", ":2:", "valid_acc"},
    };
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(path, cases[i].text);
        me_metrics m;
        me_error err = {0};
        assert_int_equal(me_metrics_read(&m, path, &err), ME_ERR_FORMAT);
        char where[1100];
        snprintf(where, sizeof where, "%s%s", path, cases[i].where);
        if (strncmp(err.msg, where, strlen(where)) != 0 || !strstr(err.msg, cases[i].what))
            fail_msg("case %zu: message '%s', expected it to start with '%s' and mention '%s'", i, err.msg, where,
                     cases[i].what);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_should_write_the_header_and_rows_in_the_documented_format),
        cmocka_unit_test(written_rows_should_read_back_and_write_again_byte_for_byte),
        cmocka_unit_test(metrics_reader_should_read_rows_and_leave_missing_validation_nan),
        cmocka_unit_test(metrics_reader_should_refuse_malformed_rows_with_file_and_line),
    };
    me_make_temp_dir(dir, sizeof dir);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    me_remove_tree(dir);
    return failed;
}
