#!/bin/bash
# End-to-end: training without the chart font (fonts-dejavu-core not installed).
#   1. `minienc train` completes (exit 0, every run file written) and says so in exactly one warning
#      line naming the package and 'minienc plot'; no charts, no plots/ folder.
#   2. `minienc plot RUN` without the font fails with one error line (exit 1).
#   3. With the font back, `minienc plot RUN` draws the charts, byte-identical to those of the same run
#      trained with the font present.
# The font is hidden by mounting an empty folder over its own in a private mount namespace (nothing
# changes outside this script's processes); where user namespaces are not allowed the test is skipped
# (exit 77).
# Usage (from the source dir): bash tests/e2e_nofont.sh path/to/minienc
set -uo pipefail
BIN=${1:?usage: e2e_nofont.sh path/to/minienc}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
export OPENBLAS_NUM_THREADS=1
FONT=$(sed -n 's/.*MINIENC_FONT_PATH="\([^"]*\)".*/\1/p' CMakeLists.txt)
[ -f "$FONT" ] || { echo "FAIL: the font $FONT (from CMakeLists.txt) is not installed" >&2; exit 1; }
tmp=$(mktemp -d /tmp/minienc-e2e-nofont.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/empty"
if ! unshare --mount --map-root-user true 2>/dev/null; then
    echo "skipped: no user namespaces here to hide $FONT" >&2
    exit 77
fi
# Runs "$@" with the font's folder empty.
without_font() {
    unshare --mount --map-root-user bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ \
        "$tmp/empty" "$(dirname "$FONT")" "$@"
}
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

mkdir "$tmp/a" "$tmp/b"
without_font "$BIN" train configs/default.ini --set train.steps=30 --set train.eval_every=10 --set train.threads=1 \
    --set log.out_dir="$tmp/a/run" 2>"$tmp/train.err" >/dev/null
rc=$?
warnings=$(grep -c '^minienc: warning:' "$tmp/train.err")
if [ $rc -ne 0 ]; then
    fail "train without the font: exit $rc, expected 0"; cat "$tmp/train.err" >&2
elif [ "$warnings" != 1 ] || ! grep -q 'fonts-dejavu-core.*minienc plot' "$tmp/train.err" ||
    grep -q '^minienc: error' "$tmp/train.err"; then
    fail "train without the font: expected one warning naming fonts-dejavu-core and 'minienc plot', got:"
    cat "$tmp/train.err" >&2
else
    ok "train without the font completes with one warning"
fi
for f in config.ini metrics.csv checkpoint.safetensors history.safetensors layernorm.csv; do
    [ -s "$tmp/a/run/$f" ] || fail "train without the font: $f missing"
done
[ -e "$tmp/a/run/plots" ] && fail "train without the font: a plots/ folder was made"

without_font "$BIN" plot "$tmp/a/run" >"$tmp/plot.out" 2>"$tmp/plot.err"
rc=$?
if [ $rc -ne 1 ] || [ "$(wc -l <"$tmp/plot.err")" != 1 ] || ! grep -q '^minienc: error: .*fonts-dejavu-core' "$tmp/plot.err"; then
    fail "plot without the font: exit $rc, expected 1 and one error line naming the package, got:"
    cat "$tmp/plot.err" >&2
else
    ok "plot without the font fails with one error line"
fi

"$BIN" plot "$tmp/a/run" >"$tmp/plot.out" 2>"$tmp/plot.err" || fail "plot with the font: exit $?"
"$BIN" train configs/default.ini --set train.steps=30 --set train.eval_every=10 --set train.threads=1 \
    --set log.out_dir="$tmp/b/run" 2>/dev/null >/dev/null || fail "train with the font: exit $?"
n=0
for png in "$tmp/b/run/plots/"*.png; do
    name=$(basename "$png")
    cmp -s "$png" "$tmp/a/run/plots/$name" || fail "plots/$name drawn later differs from the one training drew"
    n=$((n + 1))
done
[ "$n" -ge 3 ] || fail "only $n charts from the run trained with the font"
[ "$(wc -l <"$tmp/plot.out")" = "$n" ] || fail "plot listed $(wc -l <"$tmp/plot.out") files, expected $n"
[ $failures -eq 0 ] && ok "plot draws the skipped charts later, byte-identical ($n files)"
exit $((failures > 0))
