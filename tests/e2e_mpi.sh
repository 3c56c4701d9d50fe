#!/bin/bash
# End-to-end: data-parallel training under Open MPI's mpirun, two ranks, small runs of the default task
# with dropout on.
#   0. a plain `minienc` neither links nor loads MPI;
#   1. two ranks equal one process: losses within 1e-5 relative over the first 20 steps (and the
#      evaluations), the reference being the one-process run; so do two ranks of two thread shards;
#      train.stop_at_accuracy (decided by rank 0, which evaluates) stops both ranks at the same step;
#   2. the same two-rank run twice gives bit-identical checkpoints, histories and metrics;
#   3. a two-rank checkpoint resumes in one process, and a one-process checkpoint on two ranks, each
#      within 1e-5 of the uninterrupted run, with a note that the process count changed;
#   4. only rank 0 writes files (the two ranks run in different working directories);
#   5. a bad data file, on one rank or on all, gives exactly one error line naming the rank, exit 2 and
#      no hang (every mpirun runs under `timeout`);
#   6. SIGTERM to mpirun saves the run (checkpoint and metrics at the same step) and it resumes;
#      SIGUSR2 to mpirun, which Open MPI forwards without its one-second kill timer, exits 130 with
#      the charts drawn.
# As root Open MPI needs OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM); --oversubscribe lets two ranks start on a
# one-core machine; containers may lack the shared-memory single-copy mechanism (CMA).
# Usage (from the source dir): bash tests/e2e_mpi.sh path/to/minienc
set -uo pipefail
BIN=${1:?usage: e2e_mpi.sh path/to/minienc}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
CFG=$(pwd)/configs/default.ini
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# under AddressSanitizer (build-asan): Open MPI's own allocations outlive MPI_Finalize (see the file)
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan_openmpi.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
if ! command -v mpirun >/dev/null; then
    echo "FAIL: mpirun not found; install openmpi-bin (scripts/bootstrap.sh does)" >&2
    exit 1
fi
tmp=$(mktemp -d /tmp/minienc-e2e-mpi.XXXXXX)
pids=()
cleanup() { # an mpirun left running (a failed check) goes with its ranks
    for p in "${pids[@]}"; do
        for c in $(pgrep -P "$p"); do kill -9 "$c" 2>/dev/null; done
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
MPI=(timeout 120 mpirun -q --oversubscribe)
SETS=(--set train.steps=20 --set model.dropout=0.1 --set train.threads=1 --set train.eval_every=10
      --set log.history_every=5)

# Rows of two metrics.csv files agree in loss (and valid_loss where present) to 1e-5 relative, over
# rows FROM..TO; prints the worst relative difference.
losses_close() {
    awk -F, -v from="$3" -v to="$4" '
        FNR == 1 { next }
        NR == FNR { loss[$1] = $2; vl[$1] = $6; next }
        $1 >= from && $1 <= to {
            n++
            if (!($1 in loss)) { bad = "step " $1 " missing"; exit }
            d = ($2 - loss[$1]) / loss[$1]; if (d < 0) d = -d; if (d > worst) worst = d
            if ($6 != "" || vl[$1] != "") {
                if ($6 == "" || vl[$1] == "") { bad = "evaluation at step " $1 " in one file only"; exit }
                d = ($6 - vl[$1]) / vl[$1]; if (d < 0) d = -d; if (d > worst) worst = d
            }
        }
        END {
            if (bad != "") { print bad; exit 1 }
            if (n != to - from + 1) { print n " rows, expected " (to - from + 1); exit 1 }
            printf "%.3g\n", worst
            exit !(worst <= 1e-5)
        }' "$1" "$2"
}

# ---- 0. no MPI without mpirun ----------------------------------------------------------------------
if ldd "$BIN" | grep -q libmpi; then fail "the minienc binary links libmpi"; else ok "minienc does not link libmpi"; fi
loaded=$(LD_DEBUG=files "$BIN" count configs/seed_block.ini 2>&1 >/dev/null | grep -c -E 'libmpi|minienc-mpi')
[ "$loaded" = 0 ] && ok "a plain minienc loads no MPI library" || fail "a plain minienc loaded MPI ($loaded lines)"

# ---- 1. two ranks equal one process ----------------------------------------------------------------
"$BIN" train "$CFG" "${SETS[@]}" --set log.out_dir="$tmp/one" >"$tmp/one.log" 2>&1 || fail "one process: $(tail -1 "$tmp/one.log")"
"${MPI[@]}" -np 2 "$BIN" train "$CFG" "${SETS[@]}" --set log.out_dir="$tmp/two" >"$tmp/two.log" 2>&1 ||
    fail "two ranks: exit $?: $(tail -1 "$tmp/two.log")"
grep -q "2 processes x 1 thread" "$tmp/two.log" || fail "two ranks: the start note does not name 2 processes x 1 thread"
if worst=$(losses_close "$tmp/one/metrics.csv" "$tmp/two/metrics.csv" 1 20); then
    ok "two ranks equal one process over 20 steps with dropout 0.1 (worst relative difference $worst)"
else
    fail "two ranks differ from one process: $worst"
fi
# two ranks of two thread shards each (train.thread_shards): the same four-way split of the batch
"${MPI[@]}" -np 2 "$BIN" train "$CFG" "${SETS[@]}" --set train.thread_shards=2 --set log.out_dir="$tmp/two-shards" \
    >"$tmp/two-shards.log" 2>&1 || fail "two ranks x 2 thread shards: $(tail -1 "$tmp/two-shards.log")"
if worst=$(losses_close "$tmp/one/metrics.csv" "$tmp/two-shards/metrics.csv" 1 20); then
    ok "two ranks of two thread shards equal one process (worst relative difference $worst)"
else
    fail "two ranks x 2 thread shards differ from one process: $worst"
fi
# and dropout was on: a run without it differs by far more
if ! "$BIN" train "$CFG" "${SETS[@]}" --set model.dropout=0 --set log.out_dir="$tmp/nodrop" >"$tmp/nodrop.log" 2>&1 ||
    [ ! -s "$tmp/nodrop/metrics.csv" ]; then
    fail "the run without dropout: $(tail -1 "$tmp/nodrop.log")"
elif losses_close "$tmp/one/metrics.csv" "$tmp/nodrop/metrics.csv" 2 20 >/dev/null; then
    fail "the runs with and without dropout agree: dropout was not on"
fi

# rank 0 evaluates alone; train.stop_at_accuracy stops every rank at the step one process stops at
STOP=(--set train.stop_at_accuracy=0.5 --set train.eval_every=10 --set train.steps=400 --set train.threads=1)
"$BIN" train "$CFG" "${STOP[@]}" --set log.out_dir="$tmp/stop1" >/dev/null 2>&1
"${MPI[@]}" -np 2 "$BIN" train "$CFG" "${STOP[@]}" --set log.out_dir="$tmp/stop2" >"$tmp/stop2.log" 2>&1 ||
    fail "two ranks with stop_at_accuracy: $(tail -1 "$tmp/stop2.log")"
s1=$(tail -1 "$tmp/stop1/metrics.csv" | cut -d, -f1)
s2=$(tail -1 "$tmp/stop2/metrics.csv" | cut -d, -f1)
if [ -n "$s1" ] && [ "$s1" -lt 400 ] && [ "$s1" = "$s2" ]; then
    ok "train.stop_at_accuracy stops two ranks at one process's step ($s1)"
else
    fail "train.stop_at_accuracy: one process stopped at step '$s1', two ranks at '$s2'"
fi

# ---- 2. the same two-rank run twice is bit-identical -------------------------------------------------
"${MPI[@]}" -np 2 "$BIN" train "$CFG" "${SETS[@]}" --set log.out_dir="$tmp/two2" >"$tmp/two2.log" 2>&1 ||
    fail "two ranks, again: $(tail -1 "$tmp/two2.log")"
same=1
for f in checkpoint.safetensors history.safetensors layernorm.csv; do
    cmp -s "$tmp/two/$f" "$tmp/two2/$f" || { fail "two-rank reruns: $f differs"; same=0; }
done
# metrics without tokens_per_s (a timing)
cmp -s <(cut -d, -f1-4,6- "$tmp/two/metrics.csv") <(cut -d, -f1-4,6- "$tmp/two2/metrics.csv") ||
    { fail "two-rank reruns: metrics.csv differs"; same=0; }
[ $same = 1 ] && ok "the same two-rank run twice: bit-identical checkpoint, history and metrics"

# ---- 3. checkpoints move between process counts ------------------------------------------------------
"${MPI[@]}" -np 2 "$BIN" train "$CFG" "${SETS[@]}" --set train.steps=10 --set log.out_dir="$tmp/half2" >/dev/null 2>&1
"$BIN" train --resume "$tmp/half2" --set train.steps=20 >"$tmp/resume1.log" 2>&1 ||
    fail "one process resuming a two-rank checkpoint: $(tail -1 "$tmp/resume1.log")"
grep -q "trained with 2 processes x 1 thread, this run uses 1 x 1" "$tmp/resume1.log" ||
    fail "resume in one process: no note that the process count changed"
grep -q "from step 10 to 20 \[" "$tmp/resume1.log" || fail "resume in one process: did not continue from step 10"
if worst=$(losses_close "$tmp/two/metrics.csv" "$tmp/half2/metrics.csv" 1 20); then
    ok "a two-rank checkpoint resumes in one process (worst relative difference $worst against the uninterrupted run)"
else
    fail "two-rank checkpoint resumed in one process: $worst"
fi
"$BIN" train "$CFG" "${SETS[@]}" --set train.steps=10 --set log.out_dir="$tmp/half1" >/dev/null 2>&1
"${MPI[@]}" -np 2 "$BIN" train --resume "$tmp/half1" --set train.steps=20 >"$tmp/resume2.log" 2>&1 ||
    fail "two ranks resuming a one-process checkpoint: $(tail -1 "$tmp/resume2.log")"
grep -q "from step 10 to 20 \[" "$tmp/resume2.log" || fail "resume on two ranks: did not continue from step 10"
if worst=$(losses_close "$tmp/one/metrics.csv" "$tmp/half1/metrics.csv" 1 20); then
    ok "a one-process checkpoint resumes on two ranks (worst relative difference $worst)"
else
    fail "one-process checkpoint resumed on two ranks: $worst"
fi

# ---- 4. only rank 0 writes files -----------------------------------------------------------------------
mkdir -p "$tmp/w0" "$tmp/w1"
"${MPI[@]}" -np 1 --wdir "$tmp/w0" "$BIN" train "$CFG" "${SETS[@]}" --set log.out_dir=run : \
    -np 1 --wdir "$tmp/w1" "$BIN" train "$CFG" "${SETS[@]}" --set log.out_dir=run >"$tmp/wdir.log" 2>&1 ||
    fail "ranks in two folders: $(tail -1 "$tmp/wdir.log")"
if [ -s "$tmp/w0/run/checkpoint.safetensors" ] && [ -z "$(ls -A "$tmp/w1")" ]; then
    ok "only rank 0 wrote files (rank 1's folder is empty)"
else
    fail "rank 0's folder: $(ls "$tmp/w0/run" 2>&1 | tr '\n' ' '); rank 1's: $(ls -A "$tmp/w1" | tr '\n' ' ')"
fi

# ---- 5. a bad data file: one error line, no hang -----------------------------------------------------
printf '1 2 3\t3 2 1\n1 x 2\t2 1 1\n' >"$tmp/bad.txt"
# one line on stderr and nothing on stdout, naming the rank and the file's line
one_error() {
    local what=$1 rank=$2 rc=$3 out=$4 err=$5
    if [ "$rc" = 124 ]; then fail "$what: mpirun hung (killed by timeout)"; return; fi
    [ "$rc" = 2 ] || fail "$what: exit $rc, expected 2"
    if [ "$(wc -l <"$err")" = 1 ] && [ ! -s "$out" ] && grep -q "^minienc: error: rank $rank of 2: .*bad.txt:2:3: " "$err"; then
        ok "$what: one error line naming rank $rank, exit $rc"
    else
        fail "$what: expected one 'minienc: error: rank $rank of 2: ...bad.txt:2:3' line, got:"; cat "$err" "$out" >&2
    fi
}
"${MPI[@]}" -np 1 "$BIN" train "$CFG" --set log.out_dir="$tmp/bad1" : \
    -np 1 "$BIN" train "$CFG" --set data.train="$tmp/bad.txt" --set log.out_dir="$tmp/bad1" >"$tmp/bad1.out" 2>"$tmp/bad1.err"
one_error "bad data on rank 1" 1 $? "$tmp/bad1.out" "$tmp/bad1.err"
[ -e "$tmp/bad1" ] && fail "bad data on rank 1: rank 0 created the run directory"
"${MPI[@]}" -np 2 "$BIN" train "$CFG" --set data.train="$tmp/bad.txt" --set log.out_dir="$tmp/bad2" >"$tmp/bad2.out" 2>"$tmp/bad2.err"
one_error "bad data on every rank" 0 $? "$tmp/bad2.out" "$tmp/bad2.err"

# ---- 6. signals to mpirun --------------------------------------------------------------------------------
# (mpirun itself gets the signal here, not `timeout`: a deadline of its own instead)
wait_for() { # PID SECONDS: sets RC to the exit status, or "hung" after killing it
    local i=0
    while kill -0 "$1" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
        if [ $i -ge $(($2 * 10)) ]; then
            for c in $(pgrep -P "$1"); do kill -9 "$c" 2>/dev/null; done
            kill -9 "$1" 2>/dev/null
            wait "$1" 2>/dev/null
            RC=hung
            return
        fi
    done
    wait "$1"
    RC=$?
}
started() { # LOG: waits (up to 30 s) for rank 0's start note; the signal handlers are in place by then
    local i=0
    until grep -q "^minienc: training" "$1"; do
        sleep 0.1
        i=$((i + 1))
        [ $i -lt 300 ] || return 1
    done
    sleep 0.5
}
ckpt_step() { tail -c +9 "$1" | head -c "$(od -An -tu8 -N8 "$1" | tr -d ' ')" | grep -o '"step":"[0-9]*"' | tr -dc '0-9'; }
# mpirun answers SIGTERM with SIGTERM to the ranks and SIGKILL a second later: the run must be saved
# within that second (the charts may be cut short; `minienc plot` redraws them)
mpirun -q --oversubscribe -np 2 "$BIN" train "$CFG" --set train.steps=100000 --set log.out_dir="$tmp/term" \
    >"$tmp/term.log" 2>&1 &
pid=$!
pids+=("$pid")
started "$tmp/term.log" || fail "SIGTERM: the run did not start within 30 s"
kill -TERM "$pid"
wait_for "$pid" 30
rc=$RC
step=$(ckpt_step "$tmp/term/checkpoint.safetensors" 2>/dev/null)
last=$(tail -1 "$tmp/term/metrics.csv" 2>/dev/null | cut -d, -f1)
if [ "$rc" != hung ] && [ -n "$step" ] && [ "$step" -gt 0 ] && [ "$step" = "$last" ] &&
    grep -q "interrupted at step $step; saved" "$tmp/term.log"; then
    ok "SIGTERM to mpirun: run saved at step $step (mpirun exit $rc)"
    "$BIN" train --resume "$tmp/term" --set train.steps=$((step + 5)) >"$tmp/term-resume.log" 2>&1 &&
        ok "SIGTERM to mpirun: the saved run resumes" || fail "SIGTERM: resume: $(tail -1 "$tmp/term-resume.log")"
else
    fail "SIGTERM to mpirun: exit $rc, checkpoint step '$step', last metrics row '$last'"; tail -3 "$tmp/term.log" >&2
fi
mpirun -q --oversubscribe -np 2 "$BIN" train "$CFG" --set train.steps=100000 --set log.out_dir="$tmp/usr2" \
    >"$tmp/usr2.log" 2>&1 &
pid=$!
pids+=("$pid")
started "$tmp/usr2.log" || fail "SIGUSR2: the run did not start within 30 s"
kill -USR2 "$pid"
wait_for "$pid" 30
rc=$RC
step=$(ckpt_step "$tmp/usr2/checkpoint.safetensors" 2>/dev/null)
if [ "$rc" = 130 ] && [ -n "$step" ] && [ "$step" = "$(tail -1 "$tmp/usr2/metrics.csv" | cut -d, -f1)" ] &&
    [ "$(ls "$tmp/one/plots" | wc -l)" -gt 0 ] &&
    [ "$(ls "$tmp/usr2/plots" | wc -l)" = "$(ls "$tmp/one/plots" | wc -l)" ]; then
    ok "SIGUSR2 to mpirun: exit 130, run saved at step $step with its charts"
else
    fail "SIGUSR2 to mpirun: exit $rc, checkpoint step '$step'"; tail -3 "$tmp/usr2.log" >&2
fi

if [ $failures -ne 0 ]; then
    echo "e2e_mpi: $failures failure(s)" >&2
    exit 1
fi
echo "e2e_mpi: all checks passed"
