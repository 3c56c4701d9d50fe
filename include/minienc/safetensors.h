/* safetensors reading and writing.
 *
 * Format: 8-byte little-endian unsigned header length N, then N bytes of JSON:
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [2, 3],
 *    "data_offsets": [begin, end]}, ...}
 * then the raw little-endian data; offsets are relative to the byte after the header.
 * The reader validates everything before use (header length within the file, valid JSON object,
 * known dtype, offsets in range, ordered and non-overlapping with no gaps, byte span equal to the
 * shape's product times the dtype size, no size_t overflow). The writer goes through the file module's
 * atomic writer (temporary name in the same folder, fsync, rename), so a file is never left half-written. */
#ifndef MINIENC_SAFETENSORS_H
#define MINIENC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "minienc/status.h"

#define ME_ST_MAX_DIMS 8

typedef enum { ME_DT_F32 = 0, ME_DT_F64, ME_DT_I64, ME_DT_I32, ME_DT_U8, ME_DT_BOOL } me_dtype;

/* Size in bytes of one element; name as in the format ("F32", ...). */
size_t me_dtype_size(me_dtype dt);
const char *me_dtype_name(me_dtype dt);

typedef struct {
    char *name;
    me_dtype dtype;
    int ndim;
    size_t shape[ME_ST_MAX_DIMS];
    size_t count;      /* product of shape (1 for a scalar, ndim 0) */
    size_t nbytes;     /* count * dtype size */
    const void *data;  /* points into the file buffer; may be unaligned: copy out with me_st_to_f32 */
} me_st_tensor;

typedef struct {
    me_st_tensor *tensors; /* in the order of their data offsets */
    int n;
    char **meta_keys, **meta_values; /* __metadata__ string map */
    int n_meta;
    unsigned char *buf; /* whole file, owned */
    size_t size;
} me_st_file;

/* Reads and validates a file. On failure *f is left empty (safe to me_st_free) and err says
 * "PATH: what is wrong" naming the tensor where there is one. */
me_status me_st_read(me_st_file *f, const char *path, me_error *err);
/* Same, from memory (the bytes are copied); name is used in messages. */
me_status me_st_parse(me_st_file *f, const void *bytes, size_t size, const char *name, me_error *err);

const me_st_tensor *me_st_find(const me_st_file *f, const char *name);
const char *me_st_meta(const me_st_file *f, const char *key); /* NULL if absent */

/* Converts a tensor of any float/int dtype to float, into dst[t->count]. */
void me_st_to_f32(const me_st_tensor *t, float *dst);

void me_st_free(me_st_file *f);

/* Writer: collect tensors (data is borrowed, must stay valid until me_st_write returns) and metadata
 * (copied), then write. Tensors are written in the order they were added. */
typedef struct {
    struct me_st_wtensor *items;
    int n, cap;
    char **meta_keys, **meta_values;
    int n_meta, meta_cap;
} me_st_writer;

void me_st_writer_init(me_st_writer *w);
me_status me_st_writer_add(me_st_writer *w, const char *name, me_dtype dtype, int ndim, const size_t *shape,
                           const void *data, me_error *err);
me_status me_st_writer_meta(me_st_writer *w, const char *key, const char *value, me_error *err);
/* Atomic write: PATH.tmp.<pid> then rename to PATH. Stale PATH.tmp.<pid> files of processes that no
 * longer exist (a writer killed mid-write) are removed on the way. */
me_status me_st_writer_write(const me_st_writer *w, const char *path, me_error *err);
void me_st_writer_free(me_st_writer *w);

#endif
