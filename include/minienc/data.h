/* Toy sequence data sets for training encoders: a strict text format, padded batches, a resumable
 * epoch sampler and generators for a few synthetic tasks.
 *
 * File format (one example per line):
 *
 *     INPUT TOKENS<TAB>TARGET TOKENS
 *     3 1 4 1<TAB>1 4 1 3
 *
 *   - tokens are non-negative decimal integers (no sign; leading zeros are read as decimal) separated
 *     by exactly one space; inputs must be < vocab_size, targets < n_classes;
 *   - task tag: exactly one target per input token; task classify: exactly one target;
 *   - 1 <= number of input tokens <= max_len;
 *   - lines starting with '#' and empty lines are skipped; LF or CRLF line ends; the last line may
 *     lack its line end; a line may be at most ME_DATA_LINE_MAX bytes (line end excluded);
 *   - a file must hold at least one example.
 * Every violation is refused with "FILE:LINE:COLUMN: what is wrong, what is expected" (COLUMN is the
 * 1-based byte column of the offending token or character; the end of a line is its length + 1) and
 * ME_ERR_DATA. A file that cannot be opened (missing, unreadable, a directory) gives ME_ERR_NOFILE, a
 * read error after that ME_ERR_IO.
 *
 * Inputs to predict on use the same format with ME_DATA_TARGETS_OPTIONAL: a line may then be input
 * tokens alone (no TAB, no targets); when the TAB is there, the targets follow the rules above. */
#ifndef MINIENC_DATA_H
#define MINIENC_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "minienc/config.h"
#include "minienc/rng.h"
#include "minienc/status.h"

/* Longest accepted line in bytes, line end excluded. */
#define ME_DATA_LINE_MAX (1 << 20)
/* Longest sequence the generators make (bounds their scratch memory). */
#define ME_DATA_GEN_MAX_LEN 4096
/* The generator task names, as listed in error messages. */
#define ME_DATA_TASK_NAMES "reverse, sort, histogram, copy, parity, majority"

/* A loaded data set. All arrays are owned and released by me_dataset_free.
 * Example i has inputs tokens[offsets[i] .. offsets[i+1]) and targets
 * targets[target_offsets[i] .. target_offsets[i+1]) (the same count for tag, exactly one for
 * classify, so for classify target_offsets[i] == i). */
typedef struct {
    int32_t *tokens;          /* [offsets[n]] input token ids, each in [0, vocab_size) */
    int32_t *targets;         /* [target_offsets[n]] class ids, each in [0, n_classes) */
    size_t *offsets;          /* [n + 1] */
    size_t *target_offsets;   /* [n + 1] */
    size_t *lines;            /* [n] 1-based line number of each example in its file */
    size_t n;                 /* number of examples, >= 1 after a successful load */
    me_task task;
    int vocab_size, n_classes, max_len; /* as given to me_dataset_load */
    int max_len_seen;         /* longest example's input length */
    unsigned flags;           /* ME_DATA_* as given */
    size_t cap_tokens, cap_targets, cap_examples; /* allocated lengths (internal) */
} me_dataset;

/* Flags of me_dataset_read / me_dataset_init. */
enum {
    ME_DATA_TARGETS_OPTIONAL = 1u << 0 /* a line may hold input tokens alone (inputs to predict on) */
};

/* Loads and checks a data file (see the format above; every line needs its targets). On failure *ds
 * is left empty (safe to free).
 * vocab_size, n_classes and max_len must be >= 1 (ME_ERR_CONFIG otherwise). */
me_status me_dataset_load(me_dataset *ds, const char *path, me_task task, int vocab_size, int n_classes,
                          int max_len, me_error *err);

/* The same with flags (ME_DATA_*). */
me_status me_dataset_load_flags(me_dataset *ds, const char *path, me_task task, int vocab_size, int n_classes,
                                int max_len, unsigned flags, me_error *err);

/* The same from an open stream (read to its end, not closed); name is used in messages (a path,
 * "stdin"). flags: ME_DATA_*. */
me_status me_dataset_read(me_dataset *ds, FILE *f, const char *name, me_task task, int vocab_size, int n_classes,
                          int max_len, unsigned flags, me_error *err);

/* An empty data set to fill line by line with me_dataset_add_line (name is used in messages). */
me_status me_dataset_init(me_dataset *ds, me_task task, int vocab_size, int n_classes, int max_len, unsigned flags,
                          const char *name, me_error *err);
/* Checks one line text[len] (no line end; blank and '#' lines are not skipped here but refused) and
 * appends its example; refusals name "NAME:LINE:COLUMN". On failure ds keeps its earlier examples. */
me_status me_dataset_add_line(me_dataset *ds, const char *text, size_t len, const char *name, size_t line,
                              me_error *err);

/* 1 when example i has targets (always, unless loaded with ME_DATA_TARGETS_OPTIONAL). */
static inline int me_dataset_has_targets(const me_dataset *ds, size_t i) {
    return ds->target_offsets[i + 1] > ds->target_offsets[i];
}

/* Releases everything and zeroes *ds. Safe on a zeroed or already freed data set. */
void me_dataset_free(me_dataset *ds);

/* Input length of example i. */
static inline size_t me_dataset_len(const me_dataset *ds, size_t i) { return ds->offsets[i + 1] - ds->offsets[i]; }

/* Fills one batch from the examples idx[0..B) into caller-provided arrays laid out [B, S] row-major,
 * where S (the return value) is the longest input length among those examples, so a batch is as short
 * as its longest example. No allocation.
 *   tokens   [B, S] input ids, 0 at padding positions
 *   pad_mask [B, S] 1 at padding positions, 0 at real tokens (PyTorch's src_key_padding_mask)
 *   targets  tag: [B, S] with -1 (ignore) at padding positions; classify: [B]; -1 throughout for an
 *            example without targets
 * Each array needs room for B * ds->max_len_seen entries (B * max_len always suffices).
 * Indices must be < ds->n (asserted). */
size_t me_dataset_batch(const me_dataset *ds, const size_t *idx, size_t B, int32_t *tokens, uint8_t *pad_mask,
                        int32_t *targets);

/* Targets the loss counts in the batch of examples idx[0..B) (what me_dataset_batch would give):
 * the input tokens for tag, one per example for classify. Every shard of a split batch can compute
 * the whole batch's count from the indices alone. */
size_t me_dataset_count_targets(const me_dataset *ds, const size_t *idx, size_t B);

/* Epoch sampler. Each epoch visits every index of [0, n) exactly once in an order that depends only on
 * (seed, epoch), so the whole state is the three integers (seed, epoch, pos): save them with
 * me_sampler_get_state and restore them with me_sampler_set_state to resume the same sequence.
 * rng is the generator that shuffled the current epoch (kept for inspection; not needed to resume). */
typedef struct {
    me_rng rng;
    uint64_t seed;
    uint64_t epoch; /* epochs completed before the current one */
    size_t pos;     /* next position in perm, 0..n (n: the epoch is used up) */
    size_t n;
    size_t *perm;   /* [n] owned */
} me_sampler;

/* Prepares epoch 0 for n >= 1 examples. */
me_status me_sampler_init(me_sampler *s, size_t n, uint64_t seed, me_error *err);

/* Writes the next B indices into idx[B]. A batch that runs past the end of an epoch continues with
 * the next epoch's order, so every batch is full (and with B > n an index may appear twice). */
void me_sampler_next_batch(me_sampler *s, size_t *idx, size_t B);

void me_sampler_get_state(const me_sampler *s, uint64_t *seed, uint64_t *epoch, uint64_t *pos);

/* Restores a saved state: regenerates the order of `epoch` from `seed` and continues at pos.
 * Refuses pos > n with ME_ERR_DATA (the state belongs to a different data set). */
me_status me_sampler_set_state(me_sampler *s, uint64_t seed, uint64_t epoch, uint64_t pos, me_error *err);

void me_sampler_free(me_sampler *s);

/* What a generator task needs from a model, given the generator's vocab and max_len:
 *   reverse   tag       target = input reversed                 vocab_size = n_classes = vocab
 *   sort      tag       target = input sorted ascending         vocab_size = n_classes = vocab
 *   copy      tag       target = input                          vocab_size = n_classes = vocab
 *   histogram tag       target[j] = number of times input[j]    vocab_size = vocab,
 *                       occurs in the sequence (1..max_len)     n_classes = max_len + 1
 *   parity    classify  number of tokens equal to 1, mod 2      vocab_size = vocab, n_classes = 2
 *   majority  classify  most frequent token, ties -> smallest   vocab_size = n_classes = vocab
 * Requires vocab >= 2 and 1 <= max_len <= ME_DATA_GEN_MAX_LEN. An unknown task is refused with
 * ME_ERR_CONFIG listing the known names. Any output pointer may be NULL. */
me_status me_data_task_info(const char *task, int vocab, int max_len, int *vocab_size, int *n_classes,
                            me_task *kind, me_error *err);

/* Writes n examples of `task` in the text format to out (which it does not close): first one comment
 * line recording the generation
 *   # minienc data: task=T n=N min_len=A max_len=B vocab=V seed=S vocab_size=V n_classes=C kind=tag
 * then one example per line. Lengths are uniform in [min_len, max_len], tokens uniform in [0, vocab).
 * The same arguments always give the same bytes. Requires n >= 1, 1 <= min_len <= max_len.
 * ME_ERR_CONFIG for bad arguments, ME_ERR_IO when writing fails. */
me_status me_data_generate(FILE *out, const char *task, size_t n, int min_len, int max_len, int vocab,
                           uint64_t seed, me_error *err);

/* The same into path, written atomically (PATH.tmp.<pid>, fsync, rename). */
me_status me_data_generate_file(const char *path, const char *task, size_t n, int min_len, int max_len,
                                int vocab, uint64_t seed, me_error *err);

/* The default vocabulary of a generator task, as data/README.md describes it: 2 for parity (tokens
 * 0 and 1), 8 otherwise (also for an unknown name). */
int me_data_default_vocab(const char *task);

/* A training and a validation set with no input in both (so no example in both): n_valid examples are
 * drawn first, then n_train examples whose input is not among the validation inputs (an input decides
 * its target). Each file opens with one comment line
 *   # minienc data: task=T part=train|valid n_train=N n_valid=M min_len=A max_len=B vocab=V seed=S
 *     vocab_size=V n_classes=C kind=tag
 * The same arguments always give the same bytes. ME_ERR_CONFIG for bad arguments and when the
 * validation set leaves (almost) no input for training (lower n_valid or widen the task). */
me_status me_data_generate_split(FILE *train, FILE *valid, const char *task, size_t n_train, size_t n_valid,
                                 int min_len, int max_len, int vocab, uint64_t seed, me_error *err);

/* The same into DIR/train.txt and DIR/valid.txt (DIR created if needed), each written atomically. */
me_status me_data_generate_split_dir(const char *dir, const char *task, size_t n_train, size_t n_valid, int min_len,
                                     int max_len, int vocab, uint64_t seed, me_error *err);

#endif
