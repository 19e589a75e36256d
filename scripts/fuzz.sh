#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ (clang, ASan + UBSan, in
# build-fuzz/) and runs each one for FUZZ_SECONDS (default 300) on a copy of
# its seed corpus fuzz/corpus/<harness>/, so the repository is not touched.
# Stops at the first crash, leak or sanitizer report with a non-zero exit;
# the failing input is kept under build-fuzz/artifacts/.
#
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh               # all, 10 min each
#   FUZZ_TARGETS="fuzz_token" bash scripts/fuzz.sh      # one harness
#   FUZZ_KEEP_CORPUS=1 bash scripts/fuzz.sh             # keep what it found
#
# Reproduce a failure: build-fuzz/fuzz/<harness> <input file>.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-300}
targets=${FUZZ_TARGETS:-"fuzz_envelope fuzz_token fuzz_validate"}
build=build-fuzz
artifacts=$build/artifacts

# Largest input per harness: the envelope takes whole frames, a token is
# bounded at 8 KiB (BU_TOKEN_MAX_BYTES) so a little more tests the bound,
# and a validate recipe of 16 KiB already builds requests of any shape.
max_len() {
  case $1 in
    fuzz_envelope) echo 65536 ;;
    fuzz_token) echo 9000 ;;
    *) echo 16384 ;;
  esac
}

command -v clang >/dev/null || {
  echo "fuzz: clang is missing (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
}

echo "fuzz: building $build/"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
  -DBU_FUZZ=ON -DBU_SANITIZER=address,undefined \
  -DBU_TESTS=OFF -DBU_BENCH=OFF -DBU_WERROR=ON >/dev/null
cmake --build "$build" --target bu_fuzzers -j"$(nproc)" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/bu_fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

# Leaks are checked after every input; a sanitizer report or a failed
# harness check aborts, and libFuzzer saves the input as crash-*, leak-*,
# timeout-* or oom-*.
asan=detect_leaks=1:detect_stack_use_after_return=1:abort_on_error=1
export ASAN_OPTIONS=$asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for t in $targets; do
  bin=$build/fuzz/$t
  [ -x "$bin" ] || { echo "fuzz: no harness $t" >&2; exit 1; }
  corpus=$work/$t
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$t" ]; then
    cp fuzz/corpus/"$t"/* "$corpus"/
  fi
  log=$work/$t.log
  echo "fuzz: $t for ${secs}s (seeds: $(ls "$corpus" | wc -l))"
  rc=0
  "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" \
    -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t-" "$corpus" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    cp "$log" "$artifacts/$t.log"
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED (exit $rc); input and log saved under" \
      "$artifacts/" >&2
    exit 1
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  echo "fuzz: $t ok: ${done_line:-no summary}" | tr '\t' ' '
  stats='number_of_executed_units|average_exec_per_sec|new_units_added'
  grep -E "^stat::($stats|peak_rss_mb)" "$log" | sed 's/^/      /'
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$build/corpus/$t"
    cp "$corpus"/* "$build/corpus/$t"/
  fi
done
echo "fuzz: all harnesses ran clean"
