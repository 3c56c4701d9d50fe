/* Fuzzes the config parser: the bytes as INI text (me_config_load_string, then me_config_validate),
 * each line of them as a --set override (me_config_set), and the write/load round trip of every
 * config that validates (the written text must load back to the same text). */
#include "fuzz_util.h"

#include <stdint.h>
#include <string.h>

#include "minienc/config.h"
#include "minienc/model.h"

static void round_trip(const me_config *c) {
    char *text = NULL, *again = NULL;
    me_error err;
    if (me_config_to_string(c, 0, &text, &err) != ME_OK) return; /* e.g. a path INI cannot hold */
    me_config d;
    me_config_defaults(&d);
    me_status st = me_config_load_string(&d, text, "fuzz.ini", &err);
    if (st != ME_OK) fprintf(stderr, "written config does not load: %s\n---\n%s---\n", err.msg, text);
    FUZZ_CHECK(st == ME_OK);
    st = me_config_validate(&d, &err);
    if (st != ME_OK) fprintf(stderr, "written config does not validate: %s\n---\n%s---\n", err.msg, text);
    FUZZ_CHECK(st == ME_OK);
    FUZZ_CHECK(me_config_to_string(&d, 0, &again, &err) == ME_OK);
    if (strcmp(text, again) != 0) fprintf(stderr, "round trip differs:\n---\n%s---\n%s---\n", text, again);
    FUZZ_CHECK(strcmp(text, again) == 0);
    free(text);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';

    me_config c;
    me_error err;
    me_config_defaults(&c);
    me_config before;
    memcpy(&before, &c, sizeof c);
    me_status st = me_config_load_string(&c, text, "fuzz.ini", &err);
    if (st != ME_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0); /* a refused text leaves the config unchanged */
    } else if (me_config_validate(&c, &err) == ME_OK) {
        (void)me_model_param_count(&c.model);
        round_trip(&c);
    }

    /* every line as an override */
    me_config_defaults(&c);
    int lines = 0;
    for (char *line = text, *next; line && lines < 16; line = next, lines++) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        memcpy(&before, &c, sizeof c);
        if (me_config_set(&c, line, &err) != ME_OK) {
            FUZZ_CHECK(err.msg[0] != '\0');
            FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0);
        }
    }
    if (me_config_validate(&c, &err) == ME_OK) round_trip(&c);
    free(text);
    return 0;
}
