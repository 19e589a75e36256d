#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the C client's
# example program from the installed header, library and pkg-config file
# alone, as a user's program would be built.
set -euo pipefail
build=$1
src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
for lib in static shared; do
  if [ "$lib" = static ]; then
    libs="$prefix/lib/libbulkupsert.a $(pkg-config --libs --static bulkupsert) -lnng -lprotobuf-c"
  else
    libs="$(pkg-config --libs bulkupsert) -Wl,-rpath,$prefix/lib -lnng -lprotobuf-c"
  fi
  # shellcheck disable=SC2046,SC2086
  cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags bulkupsert) \
    "$src/clients/c/examples/submit_and_wait.c" $libs -o "$prefix/example-$lib"
  # Against no server, the example says so and exits 1.
  out=$(BULKUPSERT_URL="ipc://$prefix/none.sock" BULKUPSERT_TOKEN=x \
    "$prefix/example-$lib" 2>&1) && { echo "example-$lib: expected a failure"; exit 1; }
  grep -q "UNAVAILABLE\|DEADLINE_EXCEEDED" <<<"$out" || { echo "example-$lib: $out"; exit 1; }
done
echo "installed library: example built and run (static and shared)"
