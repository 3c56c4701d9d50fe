/* Tests for the safetensors reader and writer and for me_file_write_atomic (src/file.c).
 *
 * Malformed inputs are built byte by byte here (8-byte length + hand-written JSON + data), never with
 * the writer, so the reader is checked against the format rather than against our own writer. */
#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "minienc/safetensors.h"
#include "file.h"

/* ------------------------------------------------------------------------------------------------ */
/* helpers */

/* A file image: u64 LE header length, the header text as given, then data_len bytes 0, 1, 2, ... */
static unsigned char *make_image(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (unsigned char)i;
    return b;
}

static void assert_file_empty(const me_st_file *f) {
    assert_null(f->tensors);
    assert_int_equal(f->n, 0);
    assert_null(f->meta_keys);
    assert_null(f->meta_values);
    assert_int_equal(f->n_meta, 0);
    assert_null(f->buf);
    assert_int_equal(f->size, 0);
}

static void assert_contains(const char *msg, const char *want) {
    if (!strstr(msg, want)) {
        print_error("message \"%s\"\n  does not contain \"%s\"\n", msg, want);
        fail();
    }
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char *b = malloc(1 << 20);
    assert_non_null(b);
    *n = fread(b, 1, 1 << 20, fp);
    assert_int_equal(fclose(fp), 0);
    return b;
}

/* Number of entries in a directory other than . and .., and the name of the last one seen. */
static int count_entries(const char *dir, char *last, size_t cap) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        n++;
        if (last) snprintf(last, cap, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* malformed files, one table entry per test */

typedef struct {
    const char *header;       /* JSON header text, or NULL to use raw */
    size_t data_len;          /* bytes of data after the header */
    const unsigned char *raw; /* a whole file image, when the length field itself is the point */
    size_t raw_len;
    const char *want[3]; /* substrings the message must contain */
} bad_case;

#define F32_1(off0, off1) "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" #off0 "," #off1 "]}"

static const unsigned char short_file[] = {5, 0, 0, 0, 0};
static const unsigned char long_header_len[] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
static const unsigned char absurd_header_len[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};

static const bad_case bad_short = {.raw = short_file, .raw_len = sizeof short_file, .want = {"5 bytes", "too short"}};
static const bad_case bad_header_past_end = {
    .raw = long_header_len, .raw_len = sizeof long_header_len, .want = {"header length 100", "past the end"}};
static const bad_case bad_header_absurd = {
    .raw = absurd_header_len, .raw_len = sizeof absurd_header_len, .want = {"header length", "exceeds the limit"}};
static const bad_case bad_not_json = {.header = "{\"w\": {\"dtype\": ", .want = {"not valid JSON"}};
static const bad_case bad_not_object = {.header = "[1, 2]", .want = {"header is a JSON array", "expected an object"}};
static const bad_case bad_trailing_header_bytes = {.header = "{}  x", .want = {"unexpected bytes", "byte 4"}};
static const bad_case bad_entry_not_object = {.header = "{\"w\": 3}", .want = {"tensor 'w'", "expected an object"}};
static const bad_case bad_missing_dtype = {.header = "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
                                           .data_len = 4,
                                           .want = {"tensor 'w'", "\"dtype\" is missing"}};
static const bad_case bad_dtype_not_string = {.header = "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}",
                                              .data_len = 4,
                                              .want = {"tensor 'w'", "\"dtype\" is a JSON number"}};
static const bad_case bad_unknown_dtype = {
    .header = "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "dtype 'F16' is not supported", "F32, F64, I64, I32, U8, BOOL"}};
static const bad_case bad_shape_not_array = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}",
    .data_len = 8,
    .want = {"tensor 'w'", "\"shape\" is a JSON string", "array of non-negative integers"}};
static const bad_case bad_shape_missing = {.header = "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
                                           .data_len = 8,
                                           .want = {"tensor 'w'", "\"shape\" is missing"}};
static const bad_case bad_negative_dim = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}",
    .data_len = 8,
    .want = {"tensor 'w'", "shape[1] is -1", "non-negative integer"}};
static const bad_case bad_fractional_dim = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
    .data_len = 8,
    .want = {"tensor 'w'", "shape[0] is 2.5"}};
static const bad_case bad_string_dim = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
    .data_len = 8,
    .want = {"tensor 'w'", "shape[0] is \"2\""}};
static const bad_case bad_too_many_dims = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "9 dimensions", "at most 8"}};
static const bad_case bad_shape_overflow = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "overflows size_t"}};
static const bad_case bad_offsets_not_pair = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "\"data_offsets\" is [0]", "[begin, end]"}};
static const bad_case bad_offsets_fractional = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "data_offsets", "non-negative integers"}};
static const bad_case bad_offsets_missing = {.header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}",
                                             .data_len = 4,
                                             .want = {"tensor 'w'", "\"data_offsets\" is missing"}};
static const bad_case bad_offsets_out_of_range = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    .data_len = 4,
    .want = {"tensor 'w'", "data_offsets [0, 8] run past the end of the 4-byte data region"}};
static const bad_case bad_offsets_reversed = {
    .header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,4]}}",
    .data_len = 8,
    .want = {"tensor 'w'", "[8, 4] end before they begin"}};
static const bad_case bad_overlap = {
    .header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
    .data_len = 12,
    .want = {"tensor 'b'", "overlap tensor 'a'", "ends at 8"}};
static const bad_case bad_gap = {.header = "{\"a\":" F32_1(0, 4) ",\"b\":" F32_1(8, 12) "}",
                                 .data_len = 12,
                                 .want = {"tensor 'b'", "gap of 4 bytes", "after tensor 'a'"}};
static const bad_case bad_gap_at_start = {.header = "{\"a\":" F32_1(4, 8) "}",
                                          .data_len = 8,
                                          .want = {"tensor 'a'", "gap of 4 bytes at the start"}};
static const bad_case bad_span = {
    .header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
    .data_len = 12,
    .want = {"bad.safetensors: tensor 'x': data_offsets [0, 12] span 12 bytes but shape [2, 3] F32 needs 24"}};
static const bad_case bad_trailing_data = {.header = "{\"a\":" F32_1(0, 4) "}",
                                           .data_len = 8,
                                           .want = {"4 trailing bytes", "8-byte data region", "'a' ends at 4"}};
static const bad_case bad_data_without_tensors = {.header = "{}", .data_len = 4, .want = {"4 data bytes", "no tensors"}};
static const bad_case bad_duplicate_names = {.header = "{\"a\":" F32_1(0, 4) ",\"a\":" F32_1(4, 8) "}",
                                             .data_len = 8,
                                             .want = {"tensor 'a'", "more than once"}};
static const bad_case bad_meta_value = {.header = "{\"__metadata__\":{\"step\":\"1\",\"epoch\":3}}",
                                        .want = {"__metadata__ 'epoch'", "JSON number", "expected a string"}};
static const bad_case bad_meta_not_object = {.header = "{\"__metadata__\":\"x\"}",
                                             .want = {"__metadata__ is a JSON string", "object of strings"}};
static const bad_case bad_meta_duplicate_key = {.header = "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}",
                                                .want = {"__metadata__ key 'k'", "more than once"}};
static const bad_case bad_meta_twice = {.header = "{\"__metadata__\":{},\"__metadata__\":{}}",
                                        .want = {"__metadata__ appears more than once"}};

static void reader_rejects_case(void **state) {
    const bad_case *c = *state;
    size_t size;
    unsigned char *img;
    if (c->raw) {
        img = malloc(c->raw_len);
        assert_non_null(img);
        memcpy(img, c->raw, c->raw_len);
        size = c->raw_len;
    } else {
        img = make_image(c->header, c->data_len, &size);
    }
    me_st_file f;
    memset(&f, 0xab, sizeof f); /* garbage in: the parser must leave it empty on failure */
    me_error err = {0};
    me_status st = me_st_parse(&f, img, size, "bad.safetensors", &err);
    free(img);
    if (st != ME_ERR_FORMAT) {
        print_error("status %s, message \"%s\"\n", me_status_string(st), err.msg);
        fail();
    }
    assert_int_equal(err.status, ME_ERR_FORMAT);
    assert_true(strncmp(err.msg, "bad.safetensors: ", 17) == 0);
    for (int i = 0; i < 3 && c->want[i]; i++) assert_contains(err.msg, c->want[i]);
    assert_file_empty(&f);
    me_st_free(&f);
}

#define BAD(label, c) {#label, reader_rejects_case, NULL, NULL, (void *)&(c)}

/* ------------------------------------------------------------------------------------------------ */
/* well-formed files */

static void dtype_size_and_name_follow_the_format(void **state) {
    (void)state;
    assert_int_equal(me_dtype_size(ME_DT_F32), 4);
    assert_int_equal(me_dtype_size(ME_DT_F64), 8);
    assert_int_equal(me_dtype_size(ME_DT_I64), 8);
    assert_int_equal(me_dtype_size(ME_DT_I32), 4);
    assert_int_equal(me_dtype_size(ME_DT_U8), 1);
    assert_int_equal(me_dtype_size(ME_DT_BOOL), 1);
    assert_string_equal(me_dtype_name(ME_DT_F32), "F32");
    assert_string_equal(me_dtype_name(ME_DT_F64), "F64");
    assert_string_equal(me_dtype_name(ME_DT_I64), "I64");
    assert_string_equal(me_dtype_name(ME_DT_I32), "I32");
    assert_string_equal(me_dtype_name(ME_DT_U8), "U8");
    assert_string_equal(me_dtype_name(ME_DT_BOOL), "BOOL");
}

/* {"a": F32 [2] = 1.0, 2.0}, header of 54 bytes without padding (so the data is unaligned). */
static const unsigned char known_file[] = {
    54, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', '"', ':', '{', '"', 'd', 't', 'y', 'p', 'e', '"', ':', '"', 'F', '3',
    '2', '"', ',', '"', 's', 'h', 'a', 'p', 'e', '"', ':', '[', '2', ']', ',', '"', 'd', 'a', 't', 'a', '_', 'o',
    'f', 'f', 's', 'e', 't', 's', '"', ':', '[', '0', ',', '8', ']', '}', '}',
    0x00, 0x00, 0x80, 0x3f, /* 1.0f */
    0x00, 0x00, 0x00, 0x40, /* 2.0f */
};

static void check_known_file(const me_st_file *f) {
    assert_int_equal(f->n, 1);
    assert_int_equal(f->n_meta, 0);
    const me_st_tensor *a = me_st_find(f, "a");
    assert_non_null(a);
    assert_ptr_equal(a, &f->tensors[0]);
    assert_string_equal(a->name, "a");
    assert_int_equal(a->dtype, ME_DT_F32);
    assert_int_equal(a->ndim, 1);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->count, 2);
    assert_int_equal(a->nbytes, 8);
    assert_ptr_equal(a->data, f->buf + 8 + 54);
    float got[2], want[2] = {1.0f, 2.0f};
    me_st_to_f32(a, got);
    assert_tensor_close(got, want, 2, 0.0);
    assert_null(me_st_find(f, "b"));
    assert_null(me_st_meta(f, "anything"));
}

static void known_bytes_of_a_two_float_tensor_parse_to_one_and_two(void **state) {
    (void)state;
    assert_int_equal(sizeof known_file, 8 + 54 + 8);
    me_st_file f;
    me_error err = {0};
    assert_int_equal(me_st_parse(&f, known_file, sizeof known_file, "known", &err), ME_OK);
    check_known_file(&f);
    me_st_free(&f);
    assert_file_empty(&f);
}

static void known_bytes_read_from_disk_parse_to_one_and_two(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/known.safetensors", dir);
    write_bytes(path, known_file, sizeof known_file);
    me_st_file f;
    me_error err = {0};
    me_status st = me_st_read(&f, path, &err);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    assert_int_equal(f.size, sizeof known_file);
    check_known_file(&f);
    me_st_free(&f);
    me_remove_tree(dir);
}

static void writer_output_for_a_two_float_tensor_matches_hand_built_bytes(void **state) {
    (void)state;
    /* Same header as known_file, padded with two spaces so that 8 + 56 is a multiple of 8. */
    static const char header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
    unsigned char want[8 + 56 + 8] = {56, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(strlen(header), 56);
    memcpy(want + 8, header, 56);
    memcpy(want + 64, (const unsigned char[]){0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40}, 8);

    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    me_st_writer w;
    me_st_writer_init(&w);
    const float a[2] = {1.0f, 2.0f};
    const size_t shape[1] = {2};
    me_error err = {0};
    assert_int_equal(me_st_writer_add(&w, "a", ME_DT_F32, 1, shape, a, &err), ME_OK);
    assert_int_equal(me_st_writer_write(&w, path, &err), ME_OK);
    me_st_writer_free(&w);

    size_t n;
    unsigned char *got = slurp(path, &n);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    me_remove_tree(dir);
}

static void reader_orders_tensors_by_data_offset_not_header_order(void **state) {
    (void)state;
    /* b comes first in the header but second in the data; z is an empty tensor at the very end. */
    size_t size;
    unsigned char *img = make_image("{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                                    "\"z\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                                    "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}   ",
                                    8, &size);
    me_st_file f;
    me_error err = {0};
    me_status st = me_st_parse(&f, img, size, "mem", &err);
    free(img);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.tensors[0].name, "a");
    assert_string_equal(f.tensors[1].name, "b");
    assert_string_equal(f.tensors[2].name, "z");
    assert_int_equal(f.tensors[0].ndim, 0);
    assert_int_equal(f.tensors[0].count, 1);
    assert_int_equal(f.tensors[2].count, 0);
    assert_int_equal(f.tensors[2].nbytes, 0);
    /* data bytes are 0, 1, 2, ...: a = bytes 0..3 as I32 LE, b = 4, 5, 6, 7 */
    float got[4];
    me_st_to_f32(&f.tensors[0], got);
    assert_true(got[0] == (float)0x03020100);
    me_st_to_f32(&f.tensors[1], got);
    const float want_b[4] = {4, 5, 6, 7};
    assert_tensor_close(got, want_b, 4, 0.0);
    me_st_free(&f);
}

static void reader_accepts_an_empty_header_object_with_no_data(void **state) {
    (void)state;
    size_t size;
    unsigned char *img = make_image("{}      ", 0, &size);
    me_st_file f;
    assert_int_equal(me_st_parse(&f, img, size, "empty", NULL), ME_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(f.n_meta, 0);
    me_st_free(&f);
    free(img);
}

static void to_f32_converts_every_dtype_from_unaligned_data(void **state) {
    (void)state;
    /* Data region: U8 [1] at 0 so that everything after it is misaligned; then F64, I64, I32, BOOL. */
    const char *header = "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                         "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[1,17]},"
                         "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[17,33]},"
                         "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[33,41]},"
                         "\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[41,44]}}";
    size_t size;
    unsigned char *img = make_image(header, 44, &size);
    unsigned char *data = img + 8 + strlen(header);
    const double d[2] = {-1.5, 1e10};
    const int64_t l[2] = {-7, (int64_t)1 << 40};
    const int32_t i32[2] = {-123456, 42};
    data[0] = 200;
    memcpy(data + 1, d, sizeof d);
    memcpy(data + 17, l, sizeof l);
    memcpy(data + 33, i32, sizeof i32);
    data[41] = 0;
    data[42] = 1;
    data[43] = 1;
    me_st_file f;
    me_error err = {0};
    me_status st = me_st_parse(&f, img, size, "mem", &err);
    free(img);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    float got[3];
    const float want_u[1] = {200.0f}, want_d[2] = {-1.5f, 1e10f}, want_l[2] = {-7.0f, 1099511627776.0f},
                want_i[2] = {-123456.0f, 42.0f}, want_b[3] = {0.0f, 1.0f, 1.0f};
    me_st_to_f32(me_st_find(&f, "u"), got);
    assert_tensor_close(got, want_u, 1, 0.0);
    me_st_to_f32(me_st_find(&f, "d"), got);
    assert_tensor_close(got, want_d, 2, 0.0);
    me_st_to_f32(me_st_find(&f, "l"), got);
    assert_tensor_close(got, want_l, 2, 0.0);
    me_st_to_f32(me_st_find(&f, "i"), got);
    assert_tensor_close(got, want_i, 2, 0.0);
    me_st_to_f32(me_st_find(&f, "b"), got);
    assert_tensor_close(got, want_b, 3, 0.0);
    me_st_free(&f);
}

/* ------------------------------------------------------------------------------------------------ */
/* writer round trips and file handling */

static void round_trip_keeps_every_dtype_a_scalar_an_empty_tensor_and_metadata(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);

    const float w[6] = {0.5f, -1.25f, 3.0f, 1e-8f, -2e6f, 7.0f};
    const double dd[3] = {1.0 / 3.0, -2.5, 1e100};
    const int64_t ll[2] = {-((int64_t)1 << 50), 99};
    const int32_t ii[4] = {1, -2, 3, -4};
    const uint8_t uu[5] = {0, 1, 127, 128, 255};
    const uint8_t bb[3] = {1, 0, 1};
    const float scalar = 42.5f;
    const size_t s_w[2] = {2, 3}, s_d[1] = {3}, s_l[3] = {1, 2, 1}, s_i[2] = {2, 2}, s_u[1] = {5}, s_b[1] = {3},
                 s_e[2] = {0, 4};
    struct {
        const char *name;
        me_dtype dt;
        int ndim;
        const size_t *shape;
        const void *data;
        size_t nbytes;
    } in[] = {
        {"encoder.w", ME_DT_F32, 2, s_w, w, sizeof w},  {"d", ME_DT_F64, 1, s_d, dd, sizeof dd},
        {"l", ME_DT_I64, 3, s_l, ll, sizeof ll},        {"i", ME_DT_I32, 2, s_i, ii, sizeof ii},
        {"u", ME_DT_U8, 1, s_u, uu, sizeof uu},         {"b", ME_DT_BOOL, 1, s_b, bb, sizeof bb},
        {"scalar", ME_DT_F32, 0, NULL, &scalar, 4},     {"empty", ME_DT_F32, 2, s_e, NULL, 0},
    };
    const int n = (int)(sizeof in / sizeof in[0]);

    me_st_writer wr;
    me_st_writer_init(&wr);
    me_error err = {0};
    for (int k = 0; k < n; k++)
        assert_int_equal(me_st_writer_add(&wr, in[k].name, in[k].dt, in[k].ndim, in[k].shape, in[k].data, &err),
                         ME_OK);
    assert_int_equal(me_st_writer_meta(&wr, "format", "pt", &err), ME_OK);
    assert_int_equal(me_st_writer_meta(&wr, "step", "1", &err), ME_OK);
    assert_int_equal(me_st_writer_meta(&wr, "note", "quote \" and \\ and \xc3\xa9", &err), ME_OK);
    assert_int_equal(me_st_writer_meta(&wr, "step", "200", &err), ME_OK); /* replaces */
    assert_int_equal(me_st_writer_write(&wr, path, &err), ME_OK);
    me_st_writer_free(&wr);

    /* Layout: metadata first in the header, and the data region starts at a multiple of 8. */
    size_t size;
    unsigned char *raw = slurp(path, &size);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | raw[k];
    assert_int_equal((8 + hlen) % 8, 0);
    assert_true(memcmp(raw + 8, "{\"__metadata__\":", 16) == 0);
    free(raw);

    me_st_file f;
    me_status st = me_st_read(&f, path, &err);
    if (st != ME_OK) print_error("%s\n", err.msg);
    assert_int_equal(st, ME_OK);
    assert_int_equal(f.n, n);
    for (int k = 0; k < n; k++) {
        const me_st_tensor *t = &f.tensors[k]; /* insertion order == offset order */
        assert_string_equal(t->name, in[k].name);
        assert_int_equal(t->dtype, in[k].dt);
        assert_int_equal(t->ndim, in[k].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], in[k].shape[d]);
        assert_int_equal(t->nbytes, in[k].nbytes);
        assert_int_equal(t->count, in[k].nbytes / me_dtype_size(in[k].dt));
        if (t->nbytes) assert_memory_equal(t->data, in[k].data, t->nbytes);
    }
    assert_int_equal(f.n_meta, 3);
    assert_string_equal(me_st_meta(&f, "format"), "pt");
    assert_string_equal(me_st_meta(&f, "step"), "200");
    assert_string_equal(me_st_meta(&f, "note"), "quote \" and \\ and \xc3\xa9");

    float got[6];
    const float want_d[3] = {(float)(1.0 / 3.0), -2.5f, (float)1e100}; /* 1e100 -> inf in float */
    me_st_to_f32(me_st_find(&f, "encoder.w"), got);
    assert_tensor_close(got, w, 6, 0.0);
    me_st_to_f32(me_st_find(&f, "d"), got);
    assert_tensor_close(got, want_d, 2, 0.0);
    assert_true(got[2] == want_d[2]);
    me_st_to_f32(me_st_find(&f, "scalar"), got);
    assert_true(got[0] == 42.5f);
    me_st_to_f32(me_st_find(&f, "u"), got);
    const float want_u[5] = {0, 1, 127, 128, 255};
    assert_tensor_close(got, want_u, 5, 0.0);
    me_st_free(&f);
    me_remove_tree(dir);
}

static void writer_without_metadata_writes_no_metadata_entry(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    me_st_writer w;
    me_st_writer_init(&w);
    const int32_t v = 5;
    assert_int_equal(me_st_writer_add(&w, "v", ME_DT_I32, 0, NULL, &v, NULL), ME_OK);
    assert_int_equal(me_st_writer_write(&w, path, NULL), ME_OK);
    me_st_writer_free(&w);
    size_t n;
    unsigned char *raw = slurp(path, &n);
    assert_null(strstr((const char *)raw + 8, "__metadata__"));
    assert_true(memcmp(raw + 8, "{\"v\":", 5) == 0);
    free(raw);
    me_remove_tree(dir);
}

static void write_replaces_an_existing_file_and_leaves_no_temporary_files(void **state) {
    (void)state;
    char dir[256], path[512], last[256];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_bytes(path, "old junk that is not a safetensors file", 39);

    me_st_writer w;
    me_st_writer_init(&w);
    const float a[2] = {3.0f, 4.0f};
    const size_t shape[1] = {2};
    assert_int_equal(me_st_writer_add(&w, "a", ME_DT_F32, 1, shape, a, NULL), ME_OK);
    me_error err = {0};
    assert_int_equal(me_st_writer_write(&w, path, &err), ME_OK);
    assert_int_equal(me_st_writer_write(&w, path, &err), ME_OK); /* and again over our own file */
    me_st_writer_free(&w);

    assert_int_equal(count_entries(dir, last, sizeof last), 1);
    assert_string_equal(last, "model.safetensors");
    me_st_file f;
    assert_int_equal(me_st_read(&f, path, &err), ME_OK);
    float got[2];
    me_st_to_f32(me_st_find(&f, "a"), got);
    assert_tensor_close(got, a, 2, 0.0);
    me_st_free(&f);
    me_remove_tree(dir);
}

static void write_file_atomic_writes_the_exact_bytes(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    me_error err = {0};
    assert_int_equal(me_file_write_atomic(path, "hello\0world", 11, &err), ME_OK);
    size_t n;
    unsigned char *got = slurp(path, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(got, "hello\0world", 11);
    free(got);
    assert_int_equal(me_file_write_atomic(path, "", 0, &err), ME_OK);
    got = slurp(path, &n);
    assert_int_equal(n, 0);
    free(got);
    assert_int_equal(count_entries(dir, NULL, 0), 1);
    me_remove_tree(dir);
}

static void write_into_a_missing_folder_is_an_io_error_naming_the_path(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/no/such/dir/out.safetensors", dir);
    me_error err = {0};
    assert_int_equal(me_file_write_atomic(path, "x", 1, &err), ME_ERR_IO);
    assert_int_equal(err.status, ME_ERR_IO);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "No such file or directory");
    assert_int_equal(count_entries(dir, NULL, 0), 0);
    me_remove_tree(dir);
}

static void write_over_a_directory_fails_and_removes_the_temporary_file(void **state) {
    (void)state;
    char dir[256], path[512], last[256];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/target", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    me_error err = {0};
    assert_int_equal(me_file_write_atomic(path, "data", 4, &err), ME_ERR_IO);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "rename");
    assert_int_equal(count_entries(dir, last, sizeof last), 1);
    assert_string_equal(last, "target");
    me_remove_tree(dir);
}

static void read_of_a_missing_file_is_bad_input_naming_the_path(void **state) {
    (void)state;
    me_st_file f;
    me_error err = {0};
    assert_int_equal(me_st_read(&f, "/nonexistent/minienc/x.safetensors", &err), ME_ERR_NOFILE);
    assert_int_equal(err.status, ME_ERR_NOFILE);
    assert_contains(err.msg, "/nonexistent/minienc/x.safetensors");
    assert_contains(err.msg, "No such file or directory");
    assert_file_empty(&f);
    me_st_free(&f);
}

static void read_of_a_directory_is_bad_input(void **state) {
    (void)state;
    char dir[256];
    me_make_temp_dir(dir, sizeof dir);
    me_st_file f;
    me_error err = {0};
    assert_int_equal(me_st_read(&f, dir, &err), ME_ERR_NOFILE);
    assert_contains(err.msg, dir);
    assert_contains(err.msg, "Is a directory");
    assert_file_empty(&f);
    me_remove_tree(dir);
}

static void read_of_a_malformed_file_names_the_path(void **state) {
    (void)state;
    char dir[256], path[512];
    me_make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    size_t size;
    unsigned char *img = make_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12, &size);
    write_bytes(path, img, size);
    free(img);
    me_st_file f;
    me_error err = {0};
    assert_int_equal(me_st_read(&f, path, &err), ME_ERR_FORMAT);
    char want[700];
    snprintf(want, sizeof want, "%s: tensor 'x': data_offsets [0, 12] span 12 bytes but shape [2, 3] F32 needs 24",
             path);
    assert_string_equal(err.msg, want);
    assert_file_empty(&f);
    me_remove_tree(dir);
}

static void writer_add_rejects_bad_names_and_dimension_counts(void **state) {
    (void)state;
    me_st_writer w;
    me_st_writer_init(&w);
    const float v[1] = {1.0f};
    const size_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    me_error err = {0};
    assert_int_equal(me_st_writer_add(&w, "a", ME_DT_F32, 1, shape, v, &err), ME_OK);
    assert_int_equal(me_st_writer_add(&w, "", ME_DT_F32, 1, shape, v, &err), ME_ERR_FORMAT);
    assert_contains(err.msg, "empty tensor name");
    assert_int_equal(me_st_writer_add(&w, "__metadata__", ME_DT_F32, 1, shape, v, &err), ME_ERR_FORMAT);
    assert_contains(err.msg, "'__metadata__' is reserved");
    assert_int_equal(me_st_writer_add(&w, "a", ME_DT_F32, 1, shape, v, &err), ME_ERR_FORMAT);
    assert_contains(err.msg, "'a' added twice");
    assert_int_equal(me_st_writer_add(&w, "deep", ME_DT_F32, 9, shape, v, &err), ME_ERR_SHAPE);
    assert_contains(err.msg, "'deep': 9 dimensions");
    assert_int_equal(me_st_writer_add(&w, "neg", ME_DT_F32, -1, shape, v, &err), ME_ERR_SHAPE);
    assert_int_equal(me_st_writer_add(&w, "odd", (me_dtype)99, 1, shape, v, &err), ME_ERR_FORMAT);
    assert_int_equal(me_st_writer_add(&w, "eight", ME_DT_F32, 8, shape, v, &err), ME_OK);
    assert_int_equal(w.n, 2);
    me_st_writer_free(&w);
}

/* Random byte flips, JSON-ish substitutions and truncations of a valid file: the reader must answer
 * OK or FORMAT, never crash (run under MINIENC_SANITIZE), and when it accepts, the tensors must tile
 * the data region. */
static void reader_survives_random_corruption(void **state) {
    (void)state;
    size_t size;
    unsigned char *good = make_image("{\"__metadata__\":{\"k\":\"v\"},"
                                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
                                     "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
                                     "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[11,19]}}",
                                     19, &size);
    static const char alphabet[] = "{}[]\",:0123456789-.eE \\u";
    unsigned char *img = malloc(size);
    assert_non_null(img);
    me_rng r;
    me_rng_seed(&r, 20240601);
    int accepted = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(img, good, size);
        size_t len = size;
        int edits = 1 + (int)me_rng_below(&r, 3);
        for (int k = 0; k < edits; k++) {
            size_t at = (size_t)me_rng_below(&r, len);
            switch (me_rng_below(&r, 4)) {
            case 0: img[at] ^= (unsigned char)(1u << me_rng_below(&r, 8)); break;
            case 1: img[at] = (unsigned char)alphabet[me_rng_below(&r, sizeof alphabet - 1)]; break;
            case 2: img[at] = (unsigned char)('0' + me_rng_below(&r, 10)); break;
            default: len = at; break;
            }
            if (len == 0) break;
        }
        me_st_file f;
        me_error err = {0};
        me_status st = me_st_parse(&f, img, len, "fuzz", &err);
        if (st != ME_OK && st != ME_ERR_FORMAT) {
            print_error("iteration %d: status %s: %s\n", it, me_status_string(st), err.msg);
            fail();
        }
        if (st == ME_OK) {
            accepted++;
            uint64_t hlen = 0;
            for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | f.buf[k];
            const unsigned char *at = f.buf + 8 + hlen;
            for (int k = 0; k < f.n; k++) {
                const me_st_tensor *t = &f.tensors[k];
                assert_ptr_equal(t->data, at);
                assert_int_equal(t->nbytes, t->count * me_dtype_size(t->dtype));
                at += t->nbytes;
            }
            assert_ptr_equal(at, f.buf + f.size);
        } else {
            assert_file_empty(&f);
        }
        me_st_free(&f);
    }
    assert_true(accepted > 0); /* some edits (inside data or metadata strings) keep the file valid */
    free(img);
    free(good);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dtype_size_and_name_follow_the_format),
        cmocka_unit_test(known_bytes_of_a_two_float_tensor_parse_to_one_and_two),
        cmocka_unit_test(known_bytes_read_from_disk_parse_to_one_and_two),
        cmocka_unit_test(writer_output_for_a_two_float_tensor_matches_hand_built_bytes),
        cmocka_unit_test(reader_orders_tensors_by_data_offset_not_header_order),
        cmocka_unit_test(reader_accepts_an_empty_header_object_with_no_data),
        cmocka_unit_test(to_f32_converts_every_dtype_from_unaligned_data),
        cmocka_unit_test(round_trip_keeps_every_dtype_a_scalar_an_empty_tensor_and_metadata),
        cmocka_unit_test(writer_without_metadata_writes_no_metadata_entry),
        cmocka_unit_test(write_replaces_an_existing_file_and_leaves_no_temporary_files),
        cmocka_unit_test(write_file_atomic_writes_the_exact_bytes),
        cmocka_unit_test(write_into_a_missing_folder_is_an_io_error_naming_the_path),
        cmocka_unit_test(write_over_a_directory_fails_and_removes_the_temporary_file),
        cmocka_unit_test(read_of_a_missing_file_is_bad_input_naming_the_path),
        cmocka_unit_test(read_of_a_directory_is_bad_input),
        cmocka_unit_test(read_of_a_malformed_file_names_the_path),
        cmocka_unit_test(writer_add_rejects_bad_names_and_dimension_counts),
        cmocka_unit_test(reader_survives_random_corruption),
        BAD(reader_rejects_a_file_shorter_than_eight_bytes, bad_short),
        BAD(reader_rejects_a_header_length_beyond_the_end_of_the_file, bad_header_past_end),
        BAD(reader_rejects_an_absurd_header_length, bad_header_absurd),
        BAD(reader_rejects_a_header_that_is_not_json, bad_not_json),
        BAD(reader_rejects_a_header_that_is_not_an_object, bad_not_object),
        BAD(reader_rejects_bytes_after_the_json_header_other_than_spaces, bad_trailing_header_bytes),
        BAD(reader_rejects_a_tensor_entry_that_is_not_an_object, bad_entry_not_object),
        BAD(reader_rejects_a_missing_dtype, bad_missing_dtype),
        BAD(reader_rejects_a_dtype_that_is_not_a_string, bad_dtype_not_string),
        BAD(reader_rejects_an_unknown_dtype_listing_the_supported_ones, bad_unknown_dtype),
        BAD(reader_rejects_a_shape_that_is_not_an_array, bad_shape_not_array),
        BAD(reader_rejects_a_missing_shape, bad_shape_missing),
        BAD(reader_rejects_a_negative_dimension, bad_negative_dim),
        BAD(reader_rejects_a_fractional_dimension, bad_fractional_dim),
        BAD(reader_rejects_a_dimension_given_as_a_string, bad_string_dim),
        BAD(reader_rejects_more_than_eight_dimensions, bad_too_many_dims),
        BAD(reader_rejects_a_shape_whose_size_overflows_size_t, bad_shape_overflow),
        BAD(reader_rejects_data_offsets_that_are_not_a_pair, bad_offsets_not_pair),
        BAD(reader_rejects_fractional_data_offsets, bad_offsets_fractional),
        BAD(reader_rejects_missing_data_offsets, bad_offsets_missing),
        BAD(reader_rejects_data_offsets_beyond_the_data_region, bad_offsets_out_of_range),
        BAD(reader_rejects_data_offsets_that_end_before_they_begin, bad_offsets_reversed),
        BAD(reader_rejects_overlapping_tensors, bad_overlap),
        BAD(reader_rejects_a_gap_between_tensors, bad_gap),
        BAD(reader_rejects_a_gap_at_the_start_of_the_data, bad_gap_at_start),
        BAD(reader_rejects_a_span_that_does_not_match_the_shape, bad_span),
        BAD(reader_rejects_trailing_data_bytes_not_covered_by_a_tensor, bad_trailing_data),
        BAD(reader_rejects_data_bytes_when_there_are_no_tensors, bad_data_without_tensors),
        BAD(reader_rejects_duplicate_tensor_names, bad_duplicate_names),
        BAD(reader_rejects_a_metadata_value_that_is_not_a_string, bad_meta_value),
        BAD(reader_rejects_metadata_that_is_not_an_object, bad_meta_not_object),
        BAD(reader_rejects_a_repeated_metadata_key, bad_meta_duplicate_key),
        BAD(reader_rejects_two_metadata_entries, bad_meta_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
