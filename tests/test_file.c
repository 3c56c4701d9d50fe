/* Tests for the file module (src/file.c): whole-file reads, path probing, mkdir -p. The atomic writer
 * has its own tests in test_safetensors.c (written before the module existed) and test_hardening.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#include "file.h"

static void tmp_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "/tmp/minienc-test-file-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

static void read_all_should_return_the_bytes_with_a_terminating_nul(void **state) {
    (void)state;
    char dir[64], path[128];
    tmp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/f.bin", dir);
    me_error err = {0};
    const char bytes[5] = {'a', '\0', 'b', '\n', 'c'};
    assert_int_equal(me_file_write_atomic(path, bytes, sizeof bytes, &err), ME_OK);
    char *got = NULL;
    size_t n = 0;
    assert_int_equal(me_file_read_all(path, "a test file", &got, &n, &err), ME_OK);
    assert_int_equal(n, sizeof bytes);
    assert_memory_equal(got, bytes, sizeof bytes);
    assert_int_equal(got[n], '\0');
    free(got);
    /* an empty file is 0 bytes, still terminated */
    assert_int_equal(me_file_write_atomic(path, "", 0, &err), ME_OK);
    assert_int_equal(me_file_read_all(path, "a test file", &got, &n, &err), ME_OK);
    assert_int_equal(n, 0);
    assert_int_equal(got[0], '\0');
    free(got);
    unlink(path);
    rmdir(dir);
}

static void read_all_should_refuse_missing_files_and_directories_naming_the_path(void **state) {
    (void)state;
    char dir[64], path[128];
    tmp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/absent", dir);
    me_error err = {0};
    char *got = (char *)1;
    size_t n = 7;
    assert_int_equal(me_file_read_all(path, "a test file", &got, &n, &err), ME_ERR_NOFILE);
    assert_null(got);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_int_equal(me_file_read_all(dir, "a test file", &got, &n, &err), ME_ERR_NOFILE);
    assert_non_null(strstr(err.msg, "cannot read"));
    rmdir(dir);
}

static void read_all_should_refuse_an_endless_stream_after_one_gib(void **state) {
    (void)state;
    me_error err = {0};
    char *got = NULL;
    size_t n = 0;
    assert_int_equal(me_file_read_all("/dev/zero", "a test file", &got, &n, &err), ME_ERR_FORMAT);
    assert_null(got);
    assert_non_null(strstr(err.msg, "/dev/zero: not a regular file and still going after 1 GiB, expected a test file"));
}

static void probe_should_tell_absent_empty_nonempty_and_other(void **state) {
    (void)state;
    char dir[64], path[128];
    tmp_dir(dir, sizeof dir);
    assert_int_equal(me_file_probe(dir), ME_PATH_EMPTY_DIR);
    snprintf(path, sizeof path, "%s/x", dir);
    assert_int_equal(me_file_probe(path), ME_PATH_ABSENT);
    me_error err = {0};
    assert_int_equal(me_file_write_atomic(path, "1", 1, &err), ME_OK);
    assert_int_equal(me_file_probe(dir), ME_PATH_NONEMPTY_DIR);
    assert_int_equal(me_file_probe(path), ME_PATH_OTHER);
    unlink(path);
    rmdir(dir);
}

static void mkdir_p_should_make_every_missing_parent_and_refuse_a_file_in_the_way(void **state) {
    (void)state;
    char dir[64], deep[192], file[128], under[192];
    tmp_dir(dir, sizeof dir);
    snprintf(deep, sizeof deep, "%s/a/b/c", dir);
    me_error err = {0};
    assert_int_equal(me_file_mkdir_p(deep, &err), ME_OK);
    struct stat sb;
    assert_int_equal(stat(deep, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(me_file_mkdir_p(deep, &err), ME_OK); /* existing: fine */
    snprintf(file, sizeof file, "%s/f", dir);
    assert_int_equal(me_file_write_atomic(file, "1", 1, &err), ME_OK);
    snprintf(under, sizeof under, "%s/g", file);
    assert_int_equal(me_file_mkdir_p(under, &err), ME_ERR_IO);
    assert_non_null(strstr(err.msg, under));
    assert_int_equal(me_file_mkdir_p(file, &err), ME_ERR_IO);
    assert_non_null(strstr(err.msg, "not a directory"));
    unlink(file);
    char p[192];
    snprintf(p, sizeof p, "%s/a/b/c", dir), rmdir(p);
    snprintf(p, sizeof p, "%s/a/b", dir), rmdir(p);
    snprintf(p, sizeof p, "%s/a", dir), rmdir(p);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_all_should_return_the_bytes_with_a_terminating_nul),
        cmocka_unit_test(read_all_should_refuse_missing_files_and_directories_naming_the_path),
        cmocka_unit_test(read_all_should_refuse_an_endless_stream_after_one_gib),
        cmocka_unit_test(probe_should_tell_absent_empty_nonempty_and_other),
        cmocka_unit_test(mkdir_p_should_make_every_missing_parent_and_refuse_a_file_in_the_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
