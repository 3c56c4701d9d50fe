#!/bin/bash
# Builds the libFuzzer targets in build-fuzz (clang, ASan + UBSan) and runs each for SECONDS
# (default 30), starting from the seeds in tests/fuzz/corpus/<target>/. Exits non-zero on the first
# crash, leak, sanitizer report or failed check; the input that did it is saved as
# build-fuzz/crash-<target>-* (rerun it with build-fuzz/tests/fuzz/fuzz_<target> FILE).
# Usage: bash tests/fuzz/run.sh [SECONDS] [TARGET...]    (targets: safetensors config data sweep)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config data sweep)
build=build-fuzz
if ! command -v clang >/dev/null; then
    echo "minienc: error: tests/fuzz/run.sh needs clang (apt-get install clang)" >&2
    exit 1
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMINIENC_FUZZ=ON \
    -DMINIENC_BUILD_TESTS=OFF -DMINIENC_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" \
    $(for t in "${targets[@]}"; do echo --target "fuzz_$t"; done) >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1
for t in "${targets[@]}"; do
    work="$build/corpus/$t"
    mkdir -p "$work"
    echo "fuzz: $t for ${seconds}s" >&2
    # new inputs go to the work corpus (not into the repository's seeds)
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/crash-$t-" "$work" "tests/fuzz/corpus/$t" \
        >"$build/fuzz-$t.log" 2>&1; then
        tail -n 60 "$build/fuzz-$t.log" >&2
        echo "minienc: error: fuzz target $t failed; see $build/fuzz-$t.log and $build/crash-$t-*" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz-$t.log" | tr '\n' ' ' >&2 || true
    echo >&2
done
