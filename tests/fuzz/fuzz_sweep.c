/* Fuzzes the sweep's readers: the bytes as a sweep record (me_sweep_record_read; every run name of a
 * record that loads must be one path component) and as a sweep.csv (me_sweep_csv_read_wall against a
 * fixed two-run sweep: only known runs get a wall time, and only a non-negative one). */
#include "fuzz_util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "minienc/sweep.h"

static const char FIXED[] = "[sweep]\nconfig = /nowhere.ini\ngrid = model.norm_first=false,true\nseeds = 0\n"
                            "[model]\nd_model = 8\nn_heads = 2\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static me_sweep fixed;
    static int have_fixed = 0;
    me_error err;
    if (!have_fixed) {
        FUZZ_CHECK(me_sweep_record_read(&fixed, fuzz_put_file(FIXED, sizeof FIXED - 1), &err) == ME_OK);
        have_fixed = 1;
    }
    const char *path = fuzz_put_file(data, size);
    me_sweep s;
    if (me_sweep_record_read(&s, path, &err) == ME_OK) {
        int n = me_sweep_n_runs(&s);
        FUZZ_CHECK(n >= 1 && n <= ME_SWEEP_MAX_RUNS);
        for (int k = 0; k < n && k < 64; k++) {
            char name[ME_SWEEP_NAME_MAX + 1];
            if (me_sweep_run_name(&s, k, name, sizeof name, &err) != ME_OK) continue;
            FUZZ_CHECK(name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
        }
    } else {
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    me_sweep_free(&s);

    double wall[2] = {-1, -1};
    if (me_sweep_csv_read_wall(&fixed, path, wall, &err) != ME_OK) FUZZ_CHECK(err.msg[0] != '\0');
    for (int k = 0; k < 2; k++) FUZZ_CHECK(wall[k] == -1 || (wall[k] >= 0 && isfinite(wall[k])));
    return 0;
}
