/* The config module's text side: values as config.ini writes them, comparisons between configs,
 * and the writer. The key table and loading are in src/config.c. */
#include "config_keys.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

/* ---- values as text ----------------------------------------------------------------------------- */

/* The shortest %.Ng (N = 1 .. 9) that strtof, the parser's own reader, turns back into v: 1e-5f is
 * "1e-05", not "9.99999975e-06". */
static void format_float(char *buf, size_t cap, float v) {
    for (int p = 1; p < 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
    snprintf(buf, cap, "%.9g", (double)v); /* always enough for a float (and what NaN gets) */
}

/* The same for a double, N = 1 .. 17 through strtod: 0.9 is "0.9", not "0.90000000000000002". */
static void format_double(char *buf, size_t cap, double v) {
    for (int p = 1; p < 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
    snprintf(buf, cap, "%.17g", v);
}

/* A value as the writer writes it; an enum or boolean outside its range as its number (validate
 * refuses those). */
char *me_config_format_value(const me_config *c, const key_spec *k, char *buf, size_t cap) {
    const void *v = field_c(c, k);
    switch (k->kind) {
    case K_INT: snprintf(buf, cap, "%d", *(const int *)v); break;
    case K_LONG: snprintf(buf, cap, "%ld", *(const long *)v); break;
    case K_FLOAT: format_float(buf, cap, *(const float *)v); break;
    case K_DOUBLE: format_double(buf, cap, *(const double *)v); break;
    case K_BOOL: {
        int b = *(const int *)v;
        if (b == 0 || b == 1)
            snprintf(buf, cap, "%s", b ? "true" : "false");
        else
            snprintf(buf, cap, "%d", b);
        break;
    }
    case K_ENUM: {
        int e = *(const int *)v;
        if (e >= 0 && e < k->n_choices)
            snprintf(buf, cap, "%s", k->choices[e]);
        else
            snprintf(buf, cap, "%d", e);
        break;
    }
    case K_U64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)v); break;
    case K_PATH: snprintf(buf, cap, "%s", (const char *)v); break;
    }
    return buf;
}

/* Whether key k holds the same value in a and b (floats compared as numbers). */
static int same_value(const me_config *a, const me_config *b, const key_spec *k) {
    const void *x = field_c(a, k), *y = field_c(b, k);
    switch (k->kind) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: return *(const int *)x == *(const int *)y;
    case K_LONG: return *(const long *)x == *(const long *)y;
    case K_FLOAT: return *(const float *)x == *(const float *)y;
    case K_DOUBLE: return *(const double *)x == *(const double *)y;
    case K_U64: return *(const uint64_t *)x == *(const uint64_t *)y;
    case K_PATH: return strcmp(x, y) == 0;
    }
    return 0;
}

char *me_config_value_string(const me_config *c, const char *key, char *buf, size_t cap) {
    int i = find_key(key);
    if (cap > 0) buf[0] = '\0';
    return i < 0 || cap == 0 ? buf : me_config_format_value(c, &me_config_keys[i], buf, cap);
}

const char *me_config_choice_name(const char *key, int v) {
    int i = find_key(key);
    if (i < 0 || me_config_keys[i].kind != K_ENUM || v < 0 || v >= me_config_keys[i].n_choices) return NULL;
    return me_config_keys[i].choices[v];
}

const char *me_config_first_difference(const me_config *a, const me_config *b, unsigned flags) {
    for (int i = 0; i < me_config_n_keys; i++)
        if ((me_config_keys[i].flags & flags) && !same_value(a, b, &me_config_keys[i])) return me_config_keys[i].key;
    return NULL;
}

const char *me_config_first_difference_except(const me_config *a, const me_config *b, unsigned skip) {
    for (int i = 0; i < me_config_n_keys; i++)
        if (!(me_config_keys[i].flags & skip) && !same_value(a, b, &me_config_keys[i])) return me_config_keys[i].key;
    return NULL;
}

const char *me_config_key_at(int i, unsigned *flags) {
    if (i < 0 || i >= me_config_n_keys) return NULL;
    if (flags) *flags = me_config_keys[i].flags & (ME_KEY_ARCH | ME_KEY_RUN | ME_KEY_MACHINE);
    return me_config_keys[i].key;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* A path can be written as an INI value if inih gives it back unchanged: no line break, no
 * surrounding whitespace, no inline comment (';' after whitespace), and the line fits inih's
 * buffer. */
static int path_writable(const char *key, const char *p) {
    size_t n = strlen(p);
    if (strchr(p, '\n') || strchr(p, '\r')) return 0;
    if (isspace((unsigned char)p[0]) || isspace((unsigned char)p[n - 1])) return 0;
    if (p[0] == ';' || p[0] == '#') return 0;
    for (size_t i = 1; i < n; i++)
        if (p[i] == ';' && isspace((unsigned char)p[i - 1])) return 0;
    return strlen(key_name_part(key)) + 3 + n + 3 <= INI_MAX_LINE;
}

/* Writes every key; those with any of the flags in omit as not set. */
static me_status write_config(const me_config *c, unsigned omit, FILE *f, me_error *err) {
    for (int i = 0; i < me_config_n_keys; i++) {
        const char *p = field_c(c, &me_config_keys[i]);
        if (me_config_keys[i].kind == K_PATH && !(me_config_keys[i].flags & omit) && *p && !path_writable(me_config_keys[i].key, p))
            return me_error_set(err, ME_ERR_CONFIG,
                                "%s: key '%s': path '%.100s' cannot be written as an INI value, expected at most "
                                "%d characters, no line breaks, no surrounding spaces and no ' ;'",
                                me_config_origin(c, me_config_keys[i].key), me_config_keys[i].key, p, INI_MAX_LINE - 16);
    }
    int bad = fprintf(f, "; minienc run configuration\n") < 0;
    for (int i = 0; i < me_config_n_keys && !bad; i++) {
        const key_spec *k = &me_config_keys[i];
        if (opens_section(i)) bad |= fprintf(f, "%s[%.*s]\n", i ? "\n" : "", (int)section_len(k->key), k->key) < 0;
        const char *name = key_name_part(k->key);
        const void *v = field_c(c, k);
        char text[ME_PATH_MAX];
        if (k->kind == K_ENUM && (*(const int *)v < 0 || *(const int *)v >= k->n_choices))
            return me_error_set(err, ME_ERR_CONFIG, "key '%s': enum value %d is out of range", k->key, *(const int *)v);
        if ((k->flags & F_REQUIRED) && *(const int *)v == 0)
            bad |= fprintf(f, "; %s = (required, not set)\n", name) < 0;
        else if ((k->flags & omit) || (k->kind == K_PATH && !*(const char *)v))
            bad |= fprintf(f, "; %s = (not set)\n", name) < 0;
        else
            bad |= fprintf(f, "%s = %s\n", name, me_config_format_value(c, k, text, sizeof text)) < 0;
    }
    if (bad || fflush(f) != 0 || ferror(f))
        return me_error_set(err, ME_ERR_IO, "cannot write the config: %s", strerror(errno));
    return ME_OK;
}

me_status me_config_write(const me_config *c, FILE *f, me_error *err) { return write_config(c, 0, f, err); }

me_status me_config_to_string(const me_config *c, unsigned omit, char **out, me_error *err) {
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return me_error_set(err, ME_ERR_NOMEM, "cannot open a memory stream for the config");
    me_status st = write_config(c, omit, f, err);
    if (fclose(f) != 0 && st == ME_OK) st = me_error_set(err, ME_ERR_NOMEM, "cannot finish the config text");
    if (st != ME_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return ME_OK;
}
