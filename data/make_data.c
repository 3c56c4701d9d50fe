/* Regenerates the shipped toy data sets in data/ with me_data_generate_file.
 * Not part of the build; from the repository root:
 *   cc -std=c11 -D_XOPEN_SOURCE=700 -Iinclude -Isrc data/make_data.c src/data.c src/file.c src/rng.c src/status.c \
 *      src/util.c -lm \
 *      -o /tmp/make_data && /tmp/make_data
 * tests/test_data.c regenerates every file from its header line and checks the bytes are identical. */
#include <stdio.h>

#include "minienc/data.h"

static const struct {
    const char *task, *path;
    size_t n;
    int min_len, max_len, vocab;
    unsigned seed;
} sets[] = {
    {"reverse", "data/reverse/train.txt", 2000, 2, 10, 8, 11},
    {"reverse", "data/reverse/valid.txt", 200, 2, 10, 8, 12},
    {"sort", "data/sort/train.txt", 2000, 2, 10, 8, 21},
    {"sort", "data/sort/valid.txt", 200, 2, 10, 8, 22},
    {"histogram", "data/histogram/train.txt", 2000, 2, 10, 8, 31},
    {"histogram", "data/histogram/valid.txt", 200, 2, 10, 8, 32},
    {"parity", "data/parity/train.txt", 2000, 2, 10, 2, 41},
    {"parity", "data/parity/valid.txt", 200, 2, 10, 2, 42},
};

int main(void) {
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        me_error err;
        if (me_data_generate_file(sets[i].path, sets[i].task, sets[i].n, sets[i].min_len, sets[i].max_len,
                                  sets[i].vocab, sets[i].seed, &err) != ME_OK) {
            fprintf(stderr, "make_data: %s\n", err.msg);
            return 1;
        }
        printf("wrote %s\n", sets[i].path);
    }
    return 0;
}
