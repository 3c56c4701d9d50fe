#!/bin/bash
# End-to-end: interrupting `minienc train`.
#   1. SIGINT during a long run: exit 130 within seconds, every run file loads (checkpoint through
#      `minienc count` and `minienc eval`, history through an independent structural check of the
#      safetensors layout, metrics.csv has the checkpoint's step), and --resume finishes the run.
#   2. SIGTERM behaves the same; a second signal exits at once and leaves whole files.
#   3. SIGKILL at random moments while files are rewritten every 5 steps: after each kill every run
#      file under its real name is whole, the run resumes, and stale temporary files
#      (NAME.tmp.PID, the only thing a kill can leave) are removed by the next write of NAME.
# Usage (from the source dir): bash tests/e2e_interrupt.sh path/to/minienc
set -uo pipefail
BIN=${1:?usage: e2e_interrupt.sh path/to/minienc}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
CFG=configs/default.ini
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d /tmp/minienc-e2e-interrupt.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

# Structural check of a safetensors file, independent of minienc's reader: the 8-byte header length
# fits the file, the header is a JSON object, and the data_offsets tile the data region exactly.
st_check() {
    local f=$1 size n hdr at=0 b e
    size=$(stat -c %s "$f") || return 1
    [ "$size" -ge 8 ] || { echo "$f: $size bytes, shorter than the header length" >&2; return 1; }
    n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    [ $((8 + n)) -le "$size" ] || { echo "$f: header length $n runs past $size bytes" >&2; return 1; }
    hdr=$(tail -c +9 "$f" | head -c "$n")
    [[ $hdr == "{"*"}"* ]] || { echo "$f: header is not a JSON object" >&2; return 1; }
    while read -r b e; do
        [ "$b" -eq "$at" ] || { echo "$f: tensor at $b, expected $at" >&2; return 1; }
        at=$e
    done < <(grep -o '"data_offsets":\[[0-9]*,[0-9]*\]' <<<"$hdr" | tr -dc '0-9,\n' | tr ',' ' ' | sort -n -k1,1 -k2,2)
    [ "$at" -eq $((size - 8 - n)) ] || { echo "$f: tensors end at $at of a $((size - 8 - n))-byte region" >&2; return 1; }
}

# The "step" metadata of a checkpoint.
ckpt_step() { tail -c +9 "$1" | head -c "$(od -An -tu8 -N8 "$1" | tr -d ' ')" | grep -o '"step":"[0-9]*"' | tr -dc '0-9'; }

# Every file of a run directory loads; sets CK_STEP to the checkpoint's step (-1: no checkpoint yet).
# Runs in the current shell (not in $(...)) so that fail() counts.
check_run() {
    local run=$1 what=$2 f step
    CK_STEP=-1
    for f in "$run"/*.safetensors; do
        [ -e "$f" ] || continue
        st_check "$f" || { fail "$what: $f is not a whole safetensors file"; return 1; }
    done
    [ -f "$run/checkpoint.safetensors" ] || return 0
    "$BIN" count "$run/checkpoint.safetensors" >"$tmp/count.out" 2>&1 ||
        { fail "$what: minienc count cannot read the checkpoint: $(tail -1 "$tmp/count.out")"; return 1; }
    step=$(ckpt_step "$run/checkpoint.safetensors")
    [ -n "$step" ] || { fail "$what: checkpoint has no step"; return 1; }
    if [ "$step" -gt 0 ]; then
        grep -q "^$step," "$run/metrics.csv" || { fail "$what: metrics.csv has no row for step $step"; return 1; }
    fi
    for f in metrics.csv layernorm.csv config.ini; do
        [ -s "$run/$f" ] || { fail "$what: $f missing or empty"; return 1; }
    done
    CK_STEP=$step
}

# How long a signalled run may take to save and exit before it counts as hung. It is a hang check,
# not a speed claim: saving draws the charts, which takes seconds on a loaded two-core machine.
STOP_LIMIT=30

# Waits up to $2 seconds for pid $1; sets RC to its exit status (or "timeout" after killing it).
wait_for() {
    local pid=$1 limit=$2 i=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
        if [ $i -ge $((limit * 10)) ]; then
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            RC=timeout
            return
        fi
    done
    wait "$pid"
    RC=$?
}

# RUN_DIR LOG [extra args]: starts a run that would take many minutes; sets PID.
start_train() {
    local run=$1 log=$2
    shift 2
    "$BIN" train "$CFG" --set train.steps=100000 --set log.out_dir="$run" "$@" >"$log" 2>&1 &
    PID=$!
    pids+=("$PID")
}

# ---- 1. SIGINT ----------------------------------------------------------------------------------
run=$tmp/int
start_train "$run" "$tmp/int.log" --set log.checkpoint_every=50
pid=$PID
sleep 1.5
kill -INT "$pid"
wait_for "$pid" "$STOP_LIMIT"
rc=$RC
if [ "$rc" = 130 ]; then ok "SIGINT: exit 130"; else fail "SIGINT: exit $rc, expected 130 within $STOP_LIMIT s"; tail -3 "$tmp/int.log" >&2; fi
grep -q "stopping after this step" "$tmp/int.log" || fail "SIGINT: no note that the run is stopping"
grep -q "interrupted at step" "$tmp/int.log" || fail "SIGINT: no 'interrupted at step' message"
check_run "$run" SIGINT && ok "SIGINT: run files load, checkpoint at step $CK_STEP"
step=$CK_STEP
[ "$step" -gt 0 ] || fail "SIGINT: no checkpoint after the interruption"
if [ "$step" -gt 0 ]; then
    "$BIN" eval "$CFG" --checkpoint "$run/checkpoint.safetensors" >"$tmp/eval.out" 2>&1 &&
        ok "SIGINT: eval reads the checkpoint" || fail "SIGINT: eval: $(tail -1 "$tmp/eval.out")"
    if "$BIN" inspect "$run" >"$tmp/inspect.out" 2>&1; then
        ok "SIGINT: inspect reads the history"
    elif ! grep -q "not available" "$tmp/inspect.out"; then
        fail "SIGINT: inspect: $(tail -1 "$tmp/inspect.out")"
    fi
    want=$((step + 20))
    "$BIN" train --resume "$run" --set train.steps=$want >"$tmp/resume.log" 2>&1
    rc=$?
    last=$(tail -1 "$run/metrics.csv" | cut -d, -f1)
    grep -q "from step $step to $want \[" "$tmp/resume.log" || fail "SIGINT: --resume did not continue from step $step"
    if [ $rc = 0 ] && [ "$last" = "$want" ] && [ "$(ckpt_step "$run/checkpoint.safetensors")" = "$want" ]; then
        ok "SIGINT: --resume continues to step $want"
    else
        fail "SIGINT: resume exit $rc, last metrics row $last, expected $want"; tail -3 "$tmp/resume.log" >&2
    fi
    # rows are 1..want with no gap or repeat
    rows=$(tail -n +2 "$run/metrics.csv" | cut -d, -f1 | tr '\n' ' ')
    [ "$rows" = "$(seq -s ' ' 1 $want) " ] || fail "SIGINT: metrics.csv steps after resume are not 1..$want"
fi

# ---- 2. SIGTERM, and a second signal ------------------------------------------------------------
run=$tmp/term
start_train "$run" "$tmp/term.log" --set log.checkpoint_every=50
pid=$PID
sleep 0.8
kill -TERM "$pid"
wait_for "$pid" "$STOP_LIMIT"
rc=$RC
[ "$rc" = 130 ] && ok "SIGTERM: exit 130" || fail "SIGTERM: exit $rc, expected 130"
at=$(grep -o "interrupted at step [0-9]*" "$tmp/term.log" | tr -dc '0-9')
[ -n "$at" ] || fail "SIGTERM: no 'interrupted at step' message"
check_run "$run" SIGTERM && ok "SIGTERM: run files load, checkpoint at step $CK_STEP"
[ -n "$at" ] && [ "$CK_STEP" = "$at" ] || fail "SIGTERM: checkpoint at step $CK_STEP, not at the interruption's step '$at'"

run=$tmp/twice
start_train "$run" "$tmp/twice.log" --set log.checkpoint_every=5
pid=$PID
sleep 0.8
kill -INT "$pid"
kill -INT "$pid" 2>/dev/null
wait_for "$pid" "$STOP_LIMIT"
rc=$RC
[ "$rc" = 130 ] && ok "two SIGINTs: exit 130" || fail "two SIGINTs: exit $rc, expected 130"
check_run "$run" "two SIGINTs" && ok "two SIGINTs: run files under their real names load"

# ---- 3. SIGKILL at random moments ---------------------------------------------------------------
run=$tmp/kill
RANDOM=$$
kills=8
for i in $(seq 1 $kills); do
    if [ -f "$run/checkpoint.safetensors" ]; then
        "$BIN" train --resume "$run" --set train.steps=100000 >"$tmp/kill.log" 2>&1 &
    else
        "$BIN" train "$CFG" --force --set train.steps=100000 --set log.out_dir="$run" \
            --set log.checkpoint_every=5 --set log.history_every=1 >"$tmp/kill.log" 2>&1 &
    fi
    pid=$!
    pids+=($pid)
    delay=$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + 1.8 * r / 32767 }')
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    check_run "$run" "SIGKILL $i after ${delay}s" || continue
    echo "  kill $i after ${delay}s: checkpoint at step $CK_STEP, $(ls "$run" | grep -c '\.tmp\.') temporary file(s)"
done
if [ -f "$run/checkpoint.safetensors" ]; then
    step=$(ckpt_step "$run/checkpoint.safetensors")
    "$BIN" train --resume "$run" --set train.steps=$((step + 10)) >"$tmp/kill-resume.log" 2>&1 &&
        ok "SIGKILL: the run resumes from step $step after $kills kills" ||
        { fail "SIGKILL: resume failed"; tail -3 "$tmp/kill-resume.log" >&2; }
    check_run "$run" "SIGKILL: after resume"
    stale=$(ls "$run" | grep '\.tmp\.')
    [ -z "$stale" ] && ok "SIGKILL: no stale temporary files after the next save" ||
        fail "SIGKILL: stale temporary files remain: $stale"
else
    fail "SIGKILL: no checkpoint after $kills runs"
fi

if [ $failures -ne 0 ]; then
    echo "e2e_interrupt: $failures failure(s)" >&2
    exit 1
fi
echo "e2e_interrupt: all checks passed"
