#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the end-to-end tests (ctest -L e2e) with every bulkupsertd they start
# under valgrind memcheck, through the harness's BU_DAEMON_WRAPPER hook:
# full leak check, definite leaks count as errors, exit code 99 on any
# error (so a daemon stopped with SIGTERM fails its test on its own). Each
# daemon writes DIR/valgrind.PID.log; afterwards the logs are searched for
# errors, and the script exits non-zero on a failed test or on any error.
#
# Usage: scripts/valgrind-e2e.sh [ctest args...]   (e.g. -R e2e_spine)
# Env:   BU_BUILD_DIR (default build), BU_VALGRIND_LOGS (default a new
#        temporary folder, kept for reading).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  echo "valgrind-e2e: valgrind is not installed (apt-get install valgrind)" >&2
  exit 2
fi
build=${BU_BUILD_DIR:-build}
# valgrind and sanitizers do not mix: refuse a sanitizer build.
if [ -f "$build/CMakeCache.txt" ] &&
   grep -Eq '^BU_SANITIZER:STRING=.+' "$build/CMakeCache.txt"; then
  echo "valgrind-e2e: $build is a sanitizer build; use a plain one" >&2
  exit 2
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
fi
# Only what the e2e tests need: the daemon, rpc-cli and the C test programs
# (python_client is a script; the Python package builds with "all").
targets=$(cd "$build" && ctest -N -L e2e | sed -n 's/^ *Test *#[0-9]*: \(e2e_.*\)/\1/p')
cmake --build "$build" -j"$(nproc)" --target bulkupsertd rpc-cli $targets \
  >/dev/null || {
  echo "valgrind-e2e: build failed" >&2
  exit 1
}

logs=${BU_VALGRIND_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/bu-valgrind.XXXXXX")}
mkdir -p "$logs"
case "$logs" in
  *' '*) echo "valgrind-e2e: log folder may not contain spaces" >&2; exit 2 ;;
esac
# One suppression, for a leak that is nng's own: a block allocated and
# lost entirely inside libnng's threads (no frame of ours), seen now and
# then when the daemon stops right after TCP peers dropped mid-handshake
# (nng 1.5.2, no debug symbols to name it). Suppressed leaks are counted
# below, so they stay visible.
supp="$logs/third-party.supp"
cat >"$supp" <<'SUPP'
{
   nng-internal-leak-on-an-nng-thread
   Memcheck:Leak
   match-leak-kinds: definite
   fun:*alloc
   obj:*/libnng.so*
   ...
   fun:start_thread
}
SUPP
export BU_DAEMON_WRAPPER="valgrind --tool=memcheck --leak-check=full \
--errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30 \
--suppressions=$supp --log-file=$logs/valgrind.%p.log"
echo "valgrind-e2e: logs in $logs"

(cd "$build" && ctest -L e2e --output-on-failure "$@")
tests_status=$?

# A daemon killed with SIGKILL (the crash test) leaves a log without a
# summary; errors found before the kill are in it all the same.
pattern='ERROR SUMMARY: [1-9]|Invalid (read|write|free)|uninitialised'
pattern+='|Conditional jump|Mismatched free|definitely lost in [1-9]'
pattern+='|Syscall param|overlap|Process terminating'
runs=0 clean=0 killed=0 bad=0 supp_runs=0
for f in "$logs"/valgrind.*.log; do
  [ -e "$f" ] || continue
  runs=$((runs + 1))
  if grep -Eq 'suppressed: [1-9]' "$f"; then
    supp_runs=$((supp_runs + 1))
    echo "valgrind-e2e: $f: nng's own leak suppressed"
  fi
  if grep -Eq "$pattern" "$f"; then
    bad=$((bad + 1))
    echo "---- $f"
    grep -E '^==[0-9]+== ' "$f" | sed -n '1,200p'
  elif grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
    clean=$((clean + 1))
  else
    killed=$((killed + 1))
  fi
done
echo "valgrind-e2e: daemon runs=$runs clean=$clean" \
  "killed_without_summary=$killed with_errors=$bad" \
  "nng_leak_suppressed=$supp_runs; ctest=$tests_status"
if [ "$runs" -eq 0 ]; then
  echo "valgrind-e2e: no daemon ran under valgrind" >&2
  exit 1
fi
if [ "$bad" -ne 0 ] || [ "$tests_status" -ne 0 ]; then
  exit 1
fi
exit 0
