#include "minienc/checkpoint.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "minienc/safetensors.h"

#include "internal.h"

#define FORMAT "minienc-checkpoint-1"

/* "adamw" or "sgd": the name train.optimizer takes in a config */
static const char *optimizer_name(const me_optim *o) {
    const char *name = me_config_choice_name("train.optimizer", (int)o->kind);
    return name ? name : "unknown";
}

static const char *optim_slot(const me_optim *o, int which) {
    if (o->kind == ME_OPT_ADAMW) return which == 0 ? "optim.exp_avg." : "optim.exp_avg_sq.";
    return which == 0 ? "optim.momentum_buffer." : NULL;
}

me_status me_checkpoint_save(const char *path, const me_config *cfg, const me_params *p, const me_optim *o,
                             const me_train_state *s, me_error *err) {
    me_st_writer w;
    me_st_writer_init(&w);
    me_status st = ME_OK;
    char buf[256];
    char(*names)[ME_NAME_MAX + 32] = NULL;
    char *text = NULL;
    if ((st = me_config_to_string(cfg, ME_KEY_RUN, &text, err))) goto done;
    if ((st = me_st_writer_meta(&w, "format", FORMAT, err)) || (st = me_st_writer_meta(&w, "config", text, err)))
        goto done;
    snprintf(buf, sizeof buf, "%" PRId64, s ? s->step : 0);
    if ((st = me_st_writer_meta(&w, "step", buf, err))) goto done;
    if (s) {
        snprintf(buf, sizeof buf, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64, s->rng.s[0], s->rng.s[1],
                 s->rng.s[2], s->rng.s[3]);
        if ((st = me_st_writer_meta(&w, "rng", buf, err))) goto done;
        snprintf(buf, sizeof buf, "%" PRIu64 ",%" PRIu64 ",%" PRIu64, s->sampler_seed, s->sampler_epoch, s->sampler_pos);
        if ((st = me_st_writer_meta(&w, "sampler", buf, err))) goto done;
        snprintf(buf, sizeof buf, "%d", s->threads);
        if ((st = me_st_writer_meta(&w, "threads", buf, err))) goto done;
        snprintf(buf, sizeof buf, "%d", s->ranks);
        if ((st = me_st_writer_meta(&w, "ranks", buf, err))) goto done;
    }
    for (int i = 0; i < p->n && !st; i++)
        st = me_st_writer_add(&w, p->t[i].name, ME_DT_F32, p->t[i].ndim, p->t[i].shape, me_params_data(p, i), err);
    if (st) goto done;
    if (o) {
        snprintf(buf, sizeof buf, "%ld", o->step);
        if ((st = me_st_writer_meta(&w, "optim_step", buf, err)) ||
            (st = me_st_writer_meta(&w, "optimizer", optimizer_name(o), err)))
            goto done;
        names = calloc((size_t)p->n * 2 + 1, sizeof *names);
        if (!names) {
            st = me_error_set(err, ME_ERR_NOMEM, "out of memory writing %s", path);
            goto done;
        }
        for (int which = 0; which < 2 && !st; which++) {
            const char *slot = optim_slot(o, which);
            const float *state = which == 0 ? o->m : o->v;
            if (!slot) continue;
            for (int i = 0; i < p->n && !st; i++) {
                char *nm = names[which * p->n + i];
                snprintf(nm, sizeof names[0], "%s%s", slot, p->t[i].name);
                st = me_st_writer_add(&w, nm, ME_DT_F32, p->t[i].ndim, p->t[i].shape, state + p->t[i].offset, err);
            }
        }
        if (st) goto done;
    }
    st = me_st_writer_write(&w, path, err);
done:
    free(text);
    free(names);
    me_st_writer_free(&w);
    return st;
}

me_status me_checkpoint_read_config(const char *path, me_config *cfg, me_error *err) {
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    const char *text = me_st_meta(&f, "config");
    me_config_defaults(cfg);
    if (!text)
        st = me_error_set(err, ME_ERR_FORMAT, "%s: no stored config in __metadata__, expected a minienc checkpoint",
                          path);
    else if ((st = me_config_load_string(cfg, text, path, err)) == ME_OK)
        st = me_config_validate(cfg, err);
    me_st_free(&f);
    return st;
}

/* Copies a named F32 tensor of exactly the registry tensor's shape into dst. */
static me_status load_tensor(const me_st_file *f, const char *path, const char *name, const me_tensor_info *ti,
                             float *dst, me_error *err) {
    const me_st_tensor *t = me_st_find(f, name);
    char want[96], got[96];
    me_shape_string(want, sizeof want, ti->ndim, ti->shape);
    if (!t) return me_error_set(err, ME_ERR_SHAPE, "%s: tensor '%s' is missing, expected F32 %s", path, name, want);
    if (t->dtype != ME_DT_F32 || !me_shape_equal(t->ndim, t->shape, ti->ndim, ti->shape))
        return me_error_set(err, ME_ERR_SHAPE, "%s: tensor '%s' is %s %s, the model expects F32 %s", path, name,
                            me_dtype_name(t->dtype), me_shape_string(got, sizeof got, t->ndim, t->shape), want);
    me_st_to_f32(t, dst);
    return ME_OK;
}

/* n comma-separated unsigned integers in base 10 or 16. strtoull alone would take "-3" (as 2^64 - 3),
 * leading spaces and out-of-range values (as ULLONG_MAX): each number must start with a digit and
 * fit in 64 bits. */
static int parse_u64_list(const char *s, uint64_t *out, int n, int base) {
    for (int i = 0; i < n; i++) {
        char *end;
        if (!s || !(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s))) return 0;
        errno = 0;
        out[i] = strtoull(s, &end, base);
        if (errno == ERANGE || end == s || (i + 1 < n ? *end != ',' : *end != '\0')) return 0;
        s = end + 1;
    }
    return 1;
}

me_status me_checkpoint_locate(const char *arg, char *out, size_t cap, me_error *err) {
    struct stat sb;
    int n;
    if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        n = snprintf(out, cap, "%s/checkpoint.safetensors", arg);
        if (n < 0 || (size_t)n >= cap) return me_error_set(err, ME_ERR_USAGE, "%.100s...: path too long", arg);
        if (stat(out, &sb) != 0)
            return me_error_set(err, ME_ERR_NOFILE, "%s: no checkpoint.safetensors in this directory, expected a run "
                                "directory written by minienc train or a checkpoint file", arg);
        return ME_OK;
    }
    n = snprintf(out, cap, "%s", arg);
    if (n < 0 || (size_t)n >= cap) return me_error_set(err, ME_ERR_USAGE, "%.100s...: path too long", arg);
    if (stat(arg, &sb) != 0)
        return me_error_set(err, ME_ERR_NOFILE, "%s: %s, expected a run directory or a checkpoint file", arg,
                            strerror(errno));
    return ME_OK;
}

me_status me_checkpoint_read_step(const char *path, int64_t *step, me_error *err) {
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    const char *text = me_st_meta(&f, "step");
    uint64_t v = 0;
    if (text && (!parse_u64_list(text, &v, 1, 10) || v > INT64_MAX))
        st = me_error_set(err, ME_ERR_FORMAT, "%s: step '%s' is not an integer in [0, 2^63), expected the update "
                          "count of a minienc checkpoint", path, text);
    *step = (int64_t)v;
    me_st_free(&f);
    return st;
}

me_status me_checkpoint_load(const char *path, me_params *p, me_optim *o, me_train_state *s, me_error *err) {
    me_st_file f;
    me_status st = me_st_read(&f, path, err);
    if (st) return st;
    for (int i = 0; i < p->n && !st; i++) st = load_tensor(&f, path, p->t[i].name, &p->t[i], me_params_data(p, i), err);
    for (int i = 0; i < f.n && !st; i++) {
        const char *nm = f.tensors[i].name;
        if (strncmp(nm, "optim.", 6) != 0 && me_params_find(p, nm) < 0)
            st = me_error_set(err, ME_ERR_SHAPE, "%s: tensor '%s' is not a parameter of the configured model", path, nm);
    }
    if (!st && o && s) {
        const char *step = me_st_meta(&f, "step"), *ostep = me_st_meta(&f, "optim_step"), *kind = me_st_meta(&f, "optimizer");
        const char *rng = me_st_meta(&f, "rng"), *smp = me_st_meta(&f, "sampler");
        uint64_t v[4];
        if (!step || !ostep || !kind || !rng || !smp)
            st = me_error_set(err, ME_ERR_FORMAT, "%s: training state missing from __metadata__ (step, optim_step, "
                              "optimizer, rng, sampler), expected a checkpoint written by minienc train", path);
        else if (strcmp(kind, optimizer_name(o)) != 0)
            st = me_error_set(err, ME_ERR_CONFIG, "%s: optimizer state is %s but the config says %s", path, kind,
                              optimizer_name(o));
        else if (!parse_u64_list(step, v, 1, 10) || v[0] > INT64_MAX ||
                 (s->step = (int64_t)v[0], !parse_u64_list(ostep, v, 1, 10)) || v[0] > LONG_MAX)
            st = me_error_set(err, ME_ERR_FORMAT, "%s: step '%s' / optim_step '%s' are not integers in [0, 2^63), "
                              "expected the update counts of a minienc checkpoint", path, step, ostep);
        else {
            o->step = (long)v[0];
            if (!parse_u64_list(rng, s->rng.s, 4, 16))
                st = me_error_set(err, ME_ERR_FORMAT, "%s: rng '%s' is not four hex words", path, rng);
            else if (!parse_u64_list(smp, v, 3, 10))
                st = me_error_set(err, ME_ERR_FORMAT, "%s: sampler '%s' is not seed,epoch,pos", path, smp);
            else {
                s->sampler_seed = v[0];
                s->sampler_epoch = v[1];
                s->sampler_pos = v[2];
                const char *th = me_st_meta(&f, "threads"); /* optional: absent in older checkpoints */
                s->threads = th && parse_u64_list(th, v, 1, 10) && v[0] <= 1u << 20 ? (int)v[0] : 0;
                const char *rk = me_st_meta(&f, "ranks"); /* optional: absent before data parallelism */
                s->ranks = rk && parse_u64_list(rk, v, 1, 10) && v[0] <= 1u << 24 ? (int)v[0] : 0;
            }
        }
        for (int which = 0; which < 2 && !st; which++) {
            const char *slot = optim_slot(o, which);
            float *state = which == 0 ? o->m : o->v;
            if (!slot) continue;
            for (int i = 0; i < p->n && !st; i++) {
                char nm[ME_NAME_MAX + 32];
                snprintf(nm, sizeof nm, "%s%s", slot, p->t[i].name);
                st = load_tensor(&f, path, nm, &p->t[i], state + p->t[i].offset, err);
            }
        }
    }
    me_st_free(&f);
    return st;
}

me_status me_checkpoint_check_config(const char *path, const me_config *stored, const me_config *cfg,
                                     me_error *err) {
    const char *key = me_config_first_difference(stored, cfg, ME_KEY_ARCH);
    if (!key) return ME_OK;
    char was[ME_PATH_MAX], now[ME_PATH_MAX];
    return me_error_set(err, ME_ERR_CONFIG,
                        "%s: key '%s' is %s here but the checkpoint %s was trained with %s; expected the "
                        "checkpoint's architecture",
                        me_config_origin(cfg, key), key, me_config_value_string(cfg, key, now, sizeof now), path,
                        me_config_value_string(stored, key, was, sizeof was));
}
