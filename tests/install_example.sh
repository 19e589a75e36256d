#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the C client's
# example program from the installed header, library and pkg-config file
# alone, as a user's program would be built.
set -euo pipefail
build=$1
src=$2
# A sanitizer build installs instrumented libraries: link the same runtime.
san=${3:+-fsanitize=$3}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
for lib in static shared; do
  if [ "$lib" = static ]; then
    libs="$prefix/lib/libbulkupsert.a -lnng -lprotobuf-c -lpthread"
  else
    libs="$(pkg-config --libs bulkupsert) -Wl,-rpath,$prefix/lib -lnng -lprotobuf-c"
  fi
  # shellcheck disable=SC2046,SC2086
  cc -std=c11 -Wall -Wextra -Werror $san $(pkg-config --cflags bulkupsert) \
    "$src/clients/c/examples/submit_and_wait.c" $libs -o "$prefix/example-$lib"
  # Against no server, the example says so and exits 1.
  out=$(BULKUPSERT_URL="ipc://$prefix/none.sock" BULKUPSERT_TOKEN=x \
    BULKUPSERT_TIMEOUT_MS=500 \
    "$prefix/example-$lib" 2>&1) && { echo "example-$lib: expected a failure"; exit 1; }
  grep -q "UNAVAILABLE\|DEADLINE_EXCEEDED" <<<"$out" || { echo "example-$lib: $out"; exit 1; }
done
echo "installed library: example built and run (static and shared)"
