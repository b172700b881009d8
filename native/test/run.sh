#!/usr/bin/env sh
# Builds and runs the standalone kernel tests (and, with "bench", the gmm benchmark) with g++.
#   native/test/run.sh            build + run the tests
#   native/test/run.sh bench ...  build + run native/lab/bench_gmm.cpp with the given arguments
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$root/build/test"
mkdir -p "$out"
CXX=${CXX:-g++}
CXXFLAGS=${CXXFLAGS:-"-O3 -std=c++17 -Wall -Wextra -pthread"}
# shellcheck disable=SC2086
if [ "${1:-}" = "bench" ]; then
  shift
  $CXX $CXXFLAGS -I"$root/include" "$root"/kernels/*.cpp "$root/lab/bench_gmm.cpp" -o "$out/bench_gmm"
  exec "$out/bench_gmm" "$@"
fi
$CXX $CXXFLAGS -I"$root/include" "$root"/kernels/*.cpp "$here/test_kernels.cpp" -o "$out/test_kernels"
exec "$out/test_kernels"
