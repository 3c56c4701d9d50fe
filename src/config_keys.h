/* The config module's key table, shared by its two files: src/config.c (the table itself, loading,
 * --set, validation, absolute paths) and src/config_text.c (values as text, comparisons, writing).
 * Private to the config module. */
#ifndef MINIENC_CONFIG_KEYS_H
#define MINIENC_CONFIG_KEYS_H

#include <stddef.h>
#include <string.h>

#include "minienc/config.h"

/* K_DOUBLE: optimizer hyperparameters, kept in double as PyTorch keeps them (Python floats), so that
 * e.g. 1 - beta2 is 0.001 and not 1 - 0.999f */
typedef enum { K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BOOL, K_ENUM, K_U64, K_PATH } key_kind;

/* Range flags; the public ME_KEY_* flags (config.h) use the low bits. */
enum {
    F_LO_OPEN = 1u << 8,   /* value > lo instead of >= lo */
    F_HI_OPEN = 1u << 9,   /* value < hi (floats only; ints always use <= hi) */
    F_HAS_HI = 1u << 10,   /* hi is a real bound, not just the type's limit */
    F_REQUIRED = 1u << 11, /* 0 means "not set"; validate refuses it */
};

typedef struct {
    const char *key; /* "section.name" */
    key_kind kind;
    size_t offset;
    const char *def; /* the default as a file would write it, read by the parser; NULL: 0 or "" */
    double lo, hi;
    unsigned flags; /* ME_KEY_* and F_* */
    const char *const *choices; /* K_ENUM: names in enum order */
    int n_choices;
} key_spec;

/* Every key, sections adjacent and in the order they are written (src/config.c). */
extern const key_spec me_config_keys[];
extern const int me_config_n_keys;

static inline const void *field_c(const me_config *c, const key_spec *k) { return (const char *)c + k->offset; }

/* "name" of "section.name"; the length of "section". */
static inline const char *key_name_part(const char *key) { return strchr(key, '.') + 1; }
static inline size_t section_len(const char *key) { return (size_t)(strchr(key, '.') - key); }

static inline int find_key(const char *key) {
    for (int i = 0; i < me_config_n_keys; i++)
        if (strcmp(me_config_keys[i].key, key) == 0) return i;
    return -1;
}

/* me_config_keys[i] is the first key of its section (the sections are the table's, in its order). */
static inline int opens_section(int i) {
    size_t ls = section_len(me_config_keys[i].key);
    return i == 0 || ls != section_len(me_config_keys[i - 1].key) || strncmp(me_config_keys[i].key, me_config_keys[i - 1].key, ls) != 0;
}

/* A value as config.ini writes it (the shortest text that reads back to the same number); an enum or
 * boolean outside its range as its number (validation refuses those). Returns buf. */
char *me_config_format_value(const me_config *c, const key_spec *k, char *buf, size_t cap);

#endif
