/* safetensors reader and writer (the format alone; files are read and written by src/file.c).
 *
 * Layout of a file: u64 little-endian N | N bytes of JSON header | data region.
 * The reader trusts nothing: every number in the header is checked before it is used as a size or an
 * offset, and the tensors must tile the data region exactly (sorted by begin offset, no gap, no
 * overlap, nothing left over). */
#include "minienc/safetensors.h"

#include "file.h"
#include "internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The data region is copied byte for byte into host floats/ints, so the host must be little-endian
 * like the format. Every platform minienc targets is; a big-endian port would need byte swaps in
 * me_st_to_f32 and in the writer. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors code assumes a little-endian host");
#endif

/* Headers above this are refused before any allocation (the reference implementation uses the same
 * 100 MB bound); a real header is a few kilobytes. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Integers in the header are JSON numbers, parsed by cJSON into doubles: exact up to 2^53. */
#define ST_MAX_EXACT_INT 9007199254740992.0
#define ST_SUPPORTED "F32, F64, I64, I32, U8, BOOL"

/* ------------------------------------------------------------------------------------------------ */
/* dtypes */

size_t me_dtype_size(me_dtype dt) {
    switch (dt) {
    case ME_DT_F32: return 4;
    case ME_DT_F64: return 8;
    case ME_DT_I64: return 8;
    case ME_DT_I32: return 4;
    case ME_DT_U8: return 1;
    case ME_DT_BOOL: return 1;
    }
    return 0;
}

const char *me_dtype_name(me_dtype dt) {
    switch (dt) {
    case ME_DT_F32: return "F32";
    case ME_DT_F64: return "F64";
    case ME_DT_I64: return "I64";
    case ME_DT_I32: return "I32";
    case ME_DT_U8: return "U8";
    case ME_DT_BOOL: return "BOOL";
    }
    return "?";
}

static int dtype_valid(me_dtype dt) { return me_dtype_size(dt) != 0; }

static int dtype_from_name(const char *s, me_dtype *out) {
    static const me_dtype all[] = {ME_DT_F32, ME_DT_F64, ME_DT_I64, ME_DT_I32, ME_DT_U8, ME_DT_BOOL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, me_dtype_name(all[i])) == 0) {
            *out = all[i];
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* small helpers */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static me_status st_fail(me_error *err, me_status st, const char *where, const char *fmt, ...) {
    if (!err) return st;
    char what[ME_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return me_error_set(err, st, "%s: %s", where, what);
}

static const char *json_kind(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsObject(j)) return "object";
    if (cJSON_IsArray(j)) return "array";
    if (cJSON_IsString(j)) return "string";
    if (cJSON_IsNumber(j)) return "number";
    if (cJSON_IsBool(j)) return "boolean";
    if (cJSON_IsNull(j)) return "null";
    return "value";
}

/* A JSON number that is a non-negative integer cJSON represents exactly. */
static int json_size(const cJSON *j, size_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0.0 || v > ST_MAX_EXACT_INT || floor(v) != v) return 0;
    if (v > (double)SIZE_MAX) return 0;
    *out = (size_t)v;
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------------------------------------ */
/* reader */

typedef struct {
    size_t begin, end;
    int order; /* position in the header, to keep ties deterministic */
    me_st_tensor t;
} st_entry;

static int cmp_entry_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds a repeated string among names[n] (sorted in place); returns it or NULL. */
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static void free_entries(st_entry *e, int n) {
    if (!e) return;
    for (int i = 0; i < n; i++) free(e[i].t.name);
    free(e);
}

static me_status parse_metadata(me_st_file *f, const cJSON *meta, const char *where, me_error *err) {
    if (!cJSON_IsObject(meta))
        return st_fail(err, ME_ERR_FORMAT, where, "__metadata__ is a JSON %s, expected an object of strings",
                       json_kind(meta));
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return ME_OK;
    f->meta_keys = calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return st_fail(err, ME_ERR_NOMEM, where, "out of memory for %d metadata entries", n);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        if (!cJSON_IsString(kv))
            return st_fail(err, ME_ERR_FORMAT, where, "__metadata__ '%s': value is a JSON %s, expected a string",
                           kv->string, json_kind(kv));
        int i = f->n_meta;
        f->meta_keys[i] = dup_str(kv->string);
        f->meta_values[i] = dup_str(kv->valuestring);
        f->n_meta++; /* counted now so that me_st_free releases whatever was copied */
        if (!f->meta_keys[i] || !f->meta_values[i])
            return st_fail(err, ME_ERR_NOMEM, where, "out of memory copying metadata");
    }
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (!keys) return st_fail(err, ME_ERR_NOMEM, where, "out of memory checking metadata keys");
    memcpy(keys, f->meta_keys, (size_t)n * sizeof *keys);
    const char *dup = find_duplicate(keys, n);
    me_status st = ME_OK;
    if (dup) st = st_fail(err, ME_ERR_FORMAT, where, "__metadata__ key '%s' appears more than once", dup);
    free(keys);
    return st;
}

/* Checks one tensor entry of the header against the data region size. */
static me_status parse_tensor(st_entry *e, const cJSON *j, size_t region, const char *where, me_error *err) {
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return st_fail(err, ME_ERR_FORMAT, where,
                       "tensor '%s': entry is a JSON %s, expected an object with dtype, shape and data_offsets",
                       name, json_kind(j));
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(jd))
        return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': \"dtype\" is %s%s, expected a string (one of %s)",
                       name, jd ? "a JSON " : "missing", jd ? json_kind(jd) : "", ST_SUPPORTED);
    if (!dtype_from_name(jd->valuestring, &e->t.dtype))
        return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': dtype '%s' is not supported (supported: %s)", name,
                       jd->valuestring, ST_SUPPORTED);

    if (!cJSON_IsArray(js))
        return st_fail(err, ME_ERR_FORMAT, where,
                       "tensor '%s': \"shape\" is %s%s, expected an array of non-negative integers", name,
                       js ? "a JSON " : "missing", js ? json_kind(js) : "");
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ME_ST_MAX_DIMS)
        return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': shape has %d dimensions, at most %d are supported",
                       name, ndim, ME_ST_MAX_DIMS);
    e->t.ndim = ndim;
    size_t count = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, js) {
        if (!json_size(dim, &e->t.shape[d])) {
            char *text = cJSON_PrintUnformatted(dim);
            me_status st = st_fail(err, ME_ERR_FORMAT, where,
                                   "tensor '%s': shape[%d] is %s, expected a non-negative integer", name, d,
                                   text ? text : json_kind(dim));
            free(text);
            return st;
        }
        if (!me_mul_ok(count, e->t.shape[d], &count))
            return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': element count of the shape overflows size_t",
                           name);
        d++;
    }
    e->t.count = count;
    char shp[256];
    if (!me_mul_ok(count, me_dtype_size(e->t.dtype), &e->t.nbytes))
        return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': byte size of shape %s %s overflows size_t", name,
                       me_shape_string(shp, sizeof shp, ndim, e->t.shape), me_dtype_name(e->t.dtype));

    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_size(cJSON_GetArrayItem(jo, 0), &e->begin) ||
        !json_size(cJSON_GetArrayItem(jo, 1), &e->end)) {
        char *text = jo ? cJSON_PrintUnformatted(jo) : NULL;
        me_status st = st_fail(err, ME_ERR_FORMAT, where,
                               "tensor '%s': \"data_offsets\" is %s, expected [begin, end] with non-negative integers",
                               name, text ? text : "missing");
        free(text);
        return st;
    }
    if (e->end < e->begin)
        return st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': data_offsets [%zu, %zu] end before they begin",
                       name, e->begin, e->end);
    if (e->end > region)
        return st_fail(err, ME_ERR_FORMAT, where,
                       "tensor '%s': data_offsets [%zu, %zu] run past the end of the %zu-byte data region", name,
                       e->begin, e->end, region);
    if (e->end - e->begin != e->t.nbytes)
        return st_fail(err, ME_ERR_FORMAT, where,
                       "tensor '%s': data_offsets [%zu, %zu] span %zu bytes but shape %s %s needs %zu", name,
                       e->begin, e->end, e->end - e->begin, me_shape_string(shp, sizeof shp, ndim, e->t.shape),
                       me_dtype_name(e->t.dtype), e->t.nbytes);
    e->t.name = dup_str(name);
    if (!e->t.name) return st_fail(err, ME_ERR_NOMEM, where, "out of memory copying tensor name '%s'", name);
    return ME_OK;
}

/* The sorted tensors must tile [0, region) exactly. */
static me_status check_coverage(const st_entry *e, int n, size_t region, const char *where, me_error *err) {
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].begin < at)
            return st_fail(err, ME_ERR_FORMAT, where,
                           "tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s', which ends at %zu", e[i].t.name,
                           e[i].begin, e[i].end, e[i - 1].t.name, at);
        if (e[i].begin > at) {
            if (i == 0)
                return st_fail(err, ME_ERR_FORMAT, where,
                               "tensor '%s': data_offsets [%zu, %zu] leave a gap of %zu bytes at the start of the "
                               "data region; the first tensor must begin at 0",
                               e[i].t.name, e[i].begin, e[i].end, e[i].begin);
            return st_fail(err, ME_ERR_FORMAT, where,
                           "tensor '%s': data_offsets [%zu, %zu] leave a gap of %zu bytes after tensor '%s', which "
                           "ends at %zu",
                           e[i].t.name, e[i].begin, e[i].end, e[i].begin - at, e[i - 1].t.name, at);
        }
        at = e[i].end;
    }
    if (at != region) {
        if (n == 0)
            return st_fail(err, ME_ERR_FORMAT, where, "%zu data bytes after the header but no tensors", region);
        return st_fail(err, ME_ERR_FORMAT, where,
                       "%zu trailing bytes of the %zu-byte data region are not covered by any tensor (last tensor "
                       "'%s' ends at %zu)",
                       region - at, region, e[n - 1].t.name, at);
    }
    return ME_OK;
}

static me_status parse_header(me_st_file *f, const cJSON *root, size_t header_len, const char *where,
                              me_error *err) {
    if (!cJSON_IsObject(root))
        return st_fail(err, ME_ERR_FORMAT, where, "header is a JSON %s, expected an object", json_kind(root));
    size_t region = f->size - 8 - header_len;
    const unsigned char *data = f->buf + 8 + header_len;

    int n = 0, n_meta_objects = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (++n_meta_objects > 1)
                return st_fail(err, ME_ERR_FORMAT, where, "__metadata__ appears more than once");
            me_status st = parse_metadata(f, item, where, err);
            if (st != ME_OK) return st;
        } else {
            n++;
        }
    }

    st_entry *e = calloc(n ? (size_t)n : 1, sizeof *e);
    const char **names = malloc((n ? (size_t)n : 1) * sizeof *names);
    me_status st = ME_OK;
    int k = 0;
    if (!e || !names) {
        st = st_fail(err, ME_ERR_NOMEM, where, "out of memory for %d tensor entries", n);
        goto done;
    }
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        e[k].order = k;
        st = parse_tensor(&e[k], item, region, where, err);
        if (st != ME_OK) goto done;
        names[k] = e[k].t.name;
        k++;
    }
    const char *dup = find_duplicate(names, n);
    if (dup) {
        st = st_fail(err, ME_ERR_FORMAT, where, "tensor '%s': name appears more than once in the header", dup);
        goto done;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_entry_offset);
    st = check_coverage(e, n, region, where, err);
    if (st != ME_OK) goto done;

    f->tensors = malloc((n ? (size_t)n : 1) * sizeof *f->tensors);
    if (!f->tensors) {
        st = st_fail(err, ME_ERR_NOMEM, where, "out of memory for %d tensors", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        f->tensors[i] = e[i].t;
        f->tensors[i].data = data + e[i].begin;
        e[i].t.name = NULL; /* moved */
    }
    f->n = n;
done:
    free(names);
    free_entries(e, k);
    return st;
}

/* Takes ownership of buf (size bytes) whatever the outcome. */
static me_status parse_owned(me_st_file *f, unsigned char *buf, size_t size, const char *where, me_error *err) {
    memset(f, 0, sizeof *f);
    f->buf = buf;
    f->size = size;
    me_status st = ME_OK;
    char *header = NULL;
    cJSON *root = NULL;
    if (size < 8) {
        st = st_fail(err, ME_ERR_FORMAT, where, "file is %zu bytes, too short for the 8-byte header length", size);
        goto done;
    }
    uint64_t n64 = 0;
    for (int i = 7; i >= 0; i--) n64 = (n64 << 8) | buf[i];
    if (n64 > ST_MAX_HEADER) {
        st = st_fail(err, ME_ERR_FORMAT, where, "header length %llu exceeds the limit of %llu bytes",
                     (unsigned long long)n64, (unsigned long long)ST_MAX_HEADER);
        goto done;
    }
    if (n64 > size - 8) {
        st = st_fail(err, ME_ERR_FORMAT, where,
                     "header length %llu runs past the end of the file (%zu bytes, so at most %zu after the length)",
                     (unsigned long long)n64, size, size - 8);
        goto done;
    }
    size_t n = (size_t)n64;
    /* cJSON gets its own NUL-terminated copy: the header is followed by binary data, not a NUL. */
    header = malloc(n + 1);
    if (!header) {
        st = st_fail(err, ME_ERR_NOMEM, where, "out of memory for a %zu-byte header", n);
        goto done;
    }
    memcpy(header, buf + 8, n);
    header[n] = '\0';
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(header, n, &end, 0);
    if (!root) {
        size_t at = end && end >= header && end <= header + n ? (size_t)(end - header) : 0;
        st = st_fail(err, ME_ERR_FORMAT, where, "header is not valid JSON (error near byte %zu of %zu)", at, n);
        goto done;
    }
    /* Anything after the JSON value must be padding. */
    for (const char *p = end; p < header + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = st_fail(err, ME_ERR_FORMAT, where,
                         "header has unexpected bytes after the JSON object at byte %zu of %zu (only spaces may "
                         "pad it)",
                         (size_t)(p - header), n);
            goto done;
        }
    }
    st = parse_header(f, root, n, where, err);
done:
    cJSON_Delete(root);
    free(header);
    if (st != ME_OK) me_st_free(f);
    return st;
}

me_status me_st_parse(me_st_file *f, const void *bytes, size_t size, const char *name, me_error *err) {
    memset(f, 0, sizeof *f);
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return st_fail(err, ME_ERR_NOMEM, name, "out of memory copying %zu bytes", size);
    if (size) memcpy(copy, bytes, size);
    return parse_owned(f, copy, size, name, err);
}

me_status me_st_read(me_st_file *f, const char *path, me_error *err) {
    memset(f, 0, sizeof *f);
    char *buf;
    size_t size;
    me_status st = me_file_read_all(path, "a safetensors file", &buf, &size, err);
    if (st) return st;
    return parse_owned(f, (unsigned char *)buf, size, path, err);
}

const me_st_tensor *me_st_find(const me_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *me_st_meta(const me_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

void me_st_to_f32(const me_st_tensor *t, float *dst) {
    /* t->data may sit at any byte offset: copy each element out with memcpy, never dereference a cast. */
    const unsigned char *p = t->data;
    size_t n = t->count;
    switch (t->dtype) {
    case ME_DT_F32:
        if (n) memcpy(dst, p, n * sizeof(float));
        break;
    case ME_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + i * 8, 8);
            dst[i] = (float)v;
        }
        break;
    case ME_DT_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + i * 8, 8);
            dst[i] = (float)v;
        }
        break;
    case ME_DT_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + i * 4, 4);
            dst[i] = (float)v;
        }
        break;
    case ME_DT_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
        break;
    case ME_DT_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = p[i] ? 1.0f : 0.0f;
        break;
    }
}

void me_st_free(me_st_file *f) {
    if (!f) return;
    if (f->tensors)
        for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------------------------------ */
/* writer */

struct me_st_wtensor {
    char *name; /* owned copy */
    me_dtype dtype;
    int ndim;
    size_t shape[ME_ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed */
};

void me_st_writer_init(me_st_writer *w) { memset(w, 0, sizeof *w); }

me_status me_st_writer_add(me_st_writer *w, const char *name, me_dtype dtype, int ndim, const size_t *shape,
                           const void *data, me_error *err) {
    assert(name);
    if (name[0] == '\0')
        return me_error_set(err, ME_ERR_FORMAT, "safetensors writer: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return me_error_set(err, ME_ERR_FORMAT, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->items[i].name, name) == 0)
            return me_error_set(err, ME_ERR_FORMAT, "safetensors writer: tensor '%s' added twice", name);
    if (!dtype_valid(dtype))
        return me_error_set(err, ME_ERR_FORMAT, "safetensors writer: tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ME_ST_MAX_DIMS)
        return me_error_set(err, ME_ERR_SHAPE, "safetensors writer: tensor '%s': %d dimensions, expected 0 to %d",
                            name, ndim, ME_ST_MAX_DIMS);
    size_t count = 1, nbytes;
    for (int d = 0; d < ndim; d++)
        if (!me_mul_ok(count, shape[d], &count))
            return me_error_set(err, ME_ERR_SHAPE, "safetensors writer: tensor '%s': element count overflows size_t",
                                name);
    if (!me_mul_ok(count, me_dtype_size(dtype), &nbytes))
        return me_error_set(err, ME_ERR_SHAPE, "safetensors writer: tensor '%s': byte size overflows size_t", name);
    assert(data || nbytes == 0);
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        struct me_st_wtensor *items = realloc(w->items, (size_t)cap * sizeof *items);
        if (!items) return me_error_set(err, ME_ERR_NOMEM, "safetensors writer: out of memory adding '%s'", name);
        w->items = items;
        w->cap = cap;
    }
    struct me_st_wtensor *t = &w->items[w->n];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    if (!t->name) return me_error_set(err, ME_ERR_NOMEM, "safetensors writer: out of memory adding '%s'", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = nbytes;
    t->data = data;
    w->n++;
    return ME_OK;
}

me_status me_st_writer_meta(me_st_writer *w, const char *key, const char *value, me_error *err) {
    assert(key && value);
    char *v = dup_str(value);
    if (!v) return me_error_set(err, ME_ERR_NOMEM, "safetensors writer: out of memory for metadata '%s'", key);
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) { /* setting a key again replaces its value */
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return ME_OK;
        }
    if (w->n_meta == w->meta_cap) {
        int cap = w->meta_cap ? w->meta_cap * 2 : 8;
        char **k = realloc(w->meta_keys, (size_t)cap * sizeof *k);
        if (k) w->meta_keys = k;
        char **vs = k ? realloc(w->meta_values, (size_t)cap * sizeof *vs) : NULL;
        if (vs) w->meta_values = vs;
        if (!k || !vs) {
            free(v);
            return me_error_set(err, ME_ERR_NOMEM, "safetensors writer: out of memory for metadata '%s'", key);
        }
        w->meta_cap = cap;
    }
    char *kc = dup_str(key);
    if (!kc) {
        free(v);
        return me_error_set(err, ME_ERR_NOMEM, "safetensors writer: out of memory for metadata '%s'", key);
    }
    w->meta_keys[w->n_meta] = kc;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return ME_OK;
}

/* "[a, b, ...]" of size_t values, written as plain integers (raw JSON: exact for any size_t, whereas a
 * cJSON number is a double). */
static void raw_ints(char *buf, size_t cap, int n, const size_t *v) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && used < cap; i++) used += (size_t)snprintf(buf + used, cap - used, i ? ",%zu" : "%zu", v[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* Builds the header JSON (unpadded) into *out, a cJSON-allocated string (free with cJSON_free). */
static me_status build_header(const me_st_writer *w, const char *path, char **out, me_error *err) {
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->n_meta; i++)
            ok = cJSON_AddStringToObject(m, w->meta_keys[i], w->meta_values[i]) != NULL;
    }
    size_t offset = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const struct me_st_wtensor *t = &w->items[i];
        if (t->nbytes > SIZE_MAX - offset) {
            cJSON_Delete(root);
            return st_fail(err, ME_ERR_SHAPE, path, "total tensor data overflows size_t at tensor '%s'", t->name);
        }
        size_t offs[2] = {offset, offset + t->nbytes};
        char shape[ME_ST_MAX_DIMS * 24 + 4], range[64];
        raw_ints(shape, sizeof shape, t->ndim, t->shape);
        raw_ints(range, sizeof range, 2, offs);
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        ok = o && cJSON_AddStringToObject(o, "dtype", me_dtype_name(t->dtype)) &&
             cJSON_AddRawToObject(o, "shape", shape) && cJSON_AddRawToObject(o, "data_offsets", range);
        offset += t->nbytes;
    }
    *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!*out) return st_fail(err, ME_ERR_NOMEM, path, "out of memory building the safetensors header");
    return ME_OK;
}

me_status me_st_writer_write(const me_st_writer *w, const char *path, me_error *err) {
    char *json;
    me_status st = build_header(w, path, &json, err);
    if (st != ME_OK) return st;
    size_t len = strlen(json);
    /* Pad with spaces so the data region starts at a multiple of 8 bytes from the start of the file. */
    size_t n = len + (8 - len % 8) % 8;
    unsigned char *head = malloc(8 + n);
    if (!head) {
        cJSON_free(json);
        return st_fail(err, ME_ERR_NOMEM, path, "out of memory for the safetensors header");
    }
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(head + 8, json, len);
    memset(head + 8 + len, ' ', n - len);
    cJSON_free(json);

    me_file_chunk *chunks = malloc(((size_t)w->n + 1) * sizeof *chunks);
    if (!chunks) {
        free(head);
        return st_fail(err, ME_ERR_NOMEM, path, "out of memory");
    }
    chunks[0] = (me_file_chunk){head, 8 + n};
    for (int i = 0; i < w->n; i++) chunks[i + 1] = (me_file_chunk){w->items[i].data, w->items[i].nbytes};
    st = me_file_write_chunks(path, chunks, w->n + 1, err);
    free(chunks);
    free(head);
    return st;
}

void me_st_writer_free(me_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}
