/* Fuzzes the data loader (me_dataset_load reads a path: the bytes go through an in-memory file) and,
 * for every accepted file, batching and the sampler. The first byte picks the task and the limits
 * (vocab_size, n_classes, max_len), so that range checks are reached from both sides. The same bytes
 * also go through the loader of inputs to predict on (targets optional), which accepts everything
 * the strict one does. */
#include "fuzz_util.h"

#include <stdint.h>
#include <string.h>

#include "minienc/data.h"

static void check_dataset(const me_dataset *ds) {
    FUZZ_CHECK(ds->n >= 1);
    FUZZ_CHECK(ds->max_len_seen >= 1 && ds->max_len_seen <= ds->max_len);
    for (size_t i = 0; i < ds->n; i++) {
        size_t len = me_dataset_len(ds, i), nt = ds->target_offsets[i + 1] - ds->target_offsets[i];
        FUZZ_CHECK(len >= 1 && len <= (size_t)ds->max_len_seen);
        if (me_dataset_has_targets(ds, i) || !(ds->flags & ME_DATA_TARGETS_OPTIONAL))
            FUZZ_CHECK(ds->task == ME_TASK_TAG ? nt == len : nt == 1);
        for (size_t j = ds->offsets[i]; j < ds->offsets[i + 1]; j++)
            FUZZ_CHECK(ds->tokens[j] >= 0 && ds->tokens[j] < ds->vocab_size);
        for (size_t j = ds->target_offsets[i]; j < ds->target_offsets[i + 1]; j++)
            FUZZ_CHECK(ds->targets[j] >= 0 && ds->targets[j] < ds->n_classes);
    }
    /* two epochs of batches of 3 through the sampler, into buffers of exactly B x max_len_seen */
    me_sampler s;
    me_error err;
    FUZZ_CHECK(me_sampler_init(&s, ds->n, 7, &err) == ME_OK);
    enum { B = 3 };
    size_t idx[B], cap = (size_t)B * (size_t)ds->max_len_seen;
    int32_t *tokens = malloc(cap * sizeof *tokens), *targets = malloc(cap * sizeof *targets);
    uint8_t *pad = malloc(cap);
    FUZZ_CHECK(tokens && targets && pad);
    for (size_t k = 0; k < 2 * ds->n / B + 1 && k < 64; k++) {
        me_sampler_next_batch(&s, idx, B);
        size_t S = me_dataset_batch(ds, idx, B, tokens, pad, targets);
        FUZZ_CHECK(S >= 1 && S <= (size_t)ds->max_len_seen);
        for (size_t b = 0; b < B; b++) FUZZ_CHECK(pad[b * S] == 0); /* every example has a first token */
        for (size_t b = 0; b < B; b++) /* no targets: nothing counts */
            if (!me_dataset_has_targets(ds, idx[b])) FUZZ_CHECK(targets[ds->task == ME_TASK_TAG ? b * S : b] == -1);
    }
    uint64_t seed, epoch, pos;
    me_sampler_get_state(&s, &seed, &epoch, &pos);
    FUZZ_CHECK(me_sampler_set_state(&s, seed, epoch, pos, &err) == ME_OK);
    FUZZ_CHECK(me_sampler_set_state(&s, seed, epoch, (uint64_t)ds->n + 1, &err) != ME_OK);
    free(tokens), free(targets), free(pad);
    me_sampler_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned sel = data[0];
    me_task task = (sel & 1) ? ME_TASK_CLASSIFY : ME_TASK_TAG;
    static const int vocabs[4] = {1, 8, 1000, 2147483647};
    static const int lens[4] = {1, 4, 16, 100000};
    int vocab = vocabs[(sel >> 1) & 3], n_classes = vocabs[(sel >> 3) & 3], max_len = lens[(sel >> 5) & 3];
    const char *path = fuzz_put_file(data + 1, size - 1);
    me_dataset ds;
    me_error err;
    me_status st = me_dataset_load(&ds, path, task, vocab, n_classes, max_len, &err);
    if (st == ME_OK) {
        check_dataset(&ds);
    } else {
        FUZZ_CHECK(st == ME_ERR_DATA && err.msg[0] != '\0');
        FUZZ_CHECK(ds.n == 0 && ds.tokens == NULL);
    }
    me_dataset_free(&ds);
    me_status st2 = me_dataset_load_flags(&ds, path, task, vocab, n_classes, max_len, ME_DATA_TARGETS_OPTIONAL, &err);
    if (st2 == ME_OK) check_dataset(&ds);
    else FUZZ_CHECK(st2 == ME_ERR_DATA && st != ME_OK && ds.n == 0);
    me_dataset_free(&ds);
    return 0;
}
