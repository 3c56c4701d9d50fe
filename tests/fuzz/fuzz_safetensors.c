/* Fuzzes everything that reads a safetensors file: the reader itself (me_st_parse on the bytes and
 * me_st_read on the same bytes as a file), the history reader, the checkpoint's stored config, a
 * checkpoint load into the model that config describes (when it is small), and the config inference
 * `minienc count` uses on files without a stored config. */
#include "fuzz_util.h"

#include <stdint.h>
#include <string.h>

#include "minienc/checkpoint.h"
#include "minienc/count.h"
#include "minienc/history.h"
#include "minienc/model.h"
#include "minienc/optim.h"
#include "minienc/safetensors.h"

/* Checks what the reader promises about an accepted file. */
static void check_file(const me_st_file *f) {
    size_t at = 0;
    const unsigned char *end = f->buf + f->size;
    for (int i = 0; i < f->n; i++) {
        const me_st_tensor *t = &f->tensors[i];
        FUZZ_CHECK(t->name && t->ndim >= 0 && t->ndim <= ME_ST_MAX_DIMS);
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= t->shape[d];
        FUZZ_CHECK(count == t->count);
        FUZZ_CHECK(t->nbytes == t->count * me_dtype_size(t->dtype));
        const unsigned char *p = t->data;
        FUZZ_CHECK(p >= f->buf && p <= end && t->nbytes <= (size_t)(end - p));
        /* tensors are in data order and tile the region */
        if (i > 0) FUZZ_CHECK(p == (const unsigned char *)f->tensors[i - 1].data + f->tensors[i - 1].nbytes);
        at = (size_t)(p - f->buf) + t->nbytes;
        FUZZ_CHECK(me_st_find(f, t->name) == t);
        float *dst = malloc(t->count ? t->count * sizeof *dst : 1);
        FUZZ_CHECK(dst);
        me_st_to_f32(t, dst);
        free(dst);
    }
    if (f->n > 0) FUZZ_CHECK(at == f->size);
    for (int i = 0; i < f->n_meta; i++) FUZZ_CHECK(me_st_meta(f, f->meta_keys[i]) != NULL);
}

static void fuzz_count(const me_st_file *f) {
    me_count_tensor *t = calloc((size_t)f->n + 1, sizeof *t);
    FUZZ_CHECK(t);
    int n = me_count_tensors_of_file(t, f);
    me_model_config mc;
    me_error err;
    if (me_count_infer_config(&mc, t, n, &err) == ME_OK) {
        me_count_report rep;
        memset(&rep, 0, sizeof rep);
        if (me_count_build(&rep, t, n, &mc, &err) == ME_OK) me_count_free(&rep);
    }
    free(t);
}

/* A checkpoint load into the model its stored config describes, when that model is small. */
static void fuzz_checkpoint(const char *path) {
    me_config cfg;
    me_error err;
    if (me_checkpoint_read_config(path, &cfg, &err) != ME_OK) return;
    size_t count = me_model_param_count(&cfg.model);
    if (count == 0 || count > 100000) return;
    me_model m;
    if (me_model_build(&m, &cfg, &err) != ME_OK) return;
    me_optim o;
    memset(&o, 0, sizeof o);
    if (me_optim_init(&o, &m.params, &cfg.train, &err) == ME_OK) {
        me_train_state s;
        memset(&s, 0, sizeof s);
        (void)me_checkpoint_load(path, &m.params, &o, &s, &err);
        me_optim_free(&o);
    }
    me_model_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    me_st_file f;
    me_error err;
    me_status st = me_st_parse(&f, data, size, "fuzz", &err);
    if (st == ME_OK) {
        check_file(&f);
        fuzz_count(&f);
    } else {
        FUZZ_CHECK(f.n == 0 && f.buf == NULL && err.msg[0] != '\0');
    }
    me_st_free(&f);

    const char *path = fuzz_put_file(data, size);
    me_st_file g;
    me_status st2 = me_st_read(&g, path, &err);
    FUZZ_CHECK(st2 == st); /* the same bytes read from a file give the same verdict */
    me_st_free(&g);
    if (st != ME_OK) return 0;

    me_history h;
    if (me_history_read(&h, path, &err) == ME_OK) {
        /* touch every value, so that a short buffer shows up under AddressSanitizer */
        volatile float sink = 0;
        for (int i = 0; i < h.n; i++)
            for (size_t k = 0; k < h.n_snap; k++)
                for (size_t j = 0; j < h.dim[i]; j++) sink += me_history_at(&h, i, k)[j];
        for (size_t k = 0; k < h.n_snap; k++) sink += (float)h.steps[k];
        (void)sink;
        me_history_free(&h);
    }
    fuzz_checkpoint(path);
    return 0;
}
