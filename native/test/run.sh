#!/usr/bin/env sh
# Builds and runs the standalone kernel tests (and the lab benchmarks) with g++. The kernel objects are built once
# into native/build/test/obj and rebuilt when a kernel source or header is newer.
#   native/test/run.sh                 build + run the tests (stage 1 gmm family, stage 2 fused FFN, quantized gmm)
#   native/test/run.sh quick           the same with the fused-FFN test on its small cases only
#   native/test/run.sh bench ...       build + run native/lab/bench_gmm.cpp with the given arguments
#   native/test/run.sh bench_ffn ...   build + run native/lab/bench_ffn.cpp with the given arguments
#   native/test/run.sh decode_bound    the instruction bound of the weight-only decode streams (native/lab/decode_bound.cpp)
#   native/test/run.sh limb_stream [rounds]  a candidate int4 decode (float rows as integer limbs) against the library's
#                                      streams, caches flushed (native/lab/limb_stream.cpp)
#   native/test/run.sh ab "FLAGS A" "FLAGS B" [f32|dpbf16|amx|widen|bwd|gmm|gmm_t|tgmm|bmm|q8f|q8i|q4f|q4i] [rounds]
#                                      two builds of the kernels (e.g. "-DMOE_STREAM_KB=32"), timed alternately
#                                      by native/lab/ab_ffn.cpp; with AB_A_REF=<git ref>, build A is that commit's
#                                      kernels (e.g. AB_A_REF=main native/test/run.sh ab "" "" gmm 12)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$root/build/test"
obj="$out/obj"
mkdir -p "$obj"
CXX=${CXX:-g++}
CXXFLAGS=${CXXFLAGS:-"-O3 -std=c++17 -Wall -Wextra -pthread"}
objs=""
for src in "$root"/kernels/*.cpp; do
  o="$obj/$(basename "$src" .cpp).o"
  if [ ! -f "$o" ] || [ -n "$(find "$root/kernels" "$root/include" -newer "$o" -type f 2>/dev/null | head -n 1)" ]; then
    # shellcheck disable=SC2086
    $CXX $CXXFLAGS -I"$root/include" -c "$src" -o "$o.tmp" && mv "$o.tmp" "$o"
  fi
  objs="$objs $o"
done
# The staged FFN ABI (stages_abi.h) exists for the tests and the lab only: built here, never into the addon.
so="$obj/stages_abi.o"
if [ ! -f "$so" ] || [ -n "$(find "$root/kernels" "$root/include" "$here/stages_abi.cpp" "$here/stages_abi.h" -newer "$so" -type f 2>/dev/null | head -n 1)" ]; then
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS -I"$root/include" -I"$root/kernels" -I"$here" -c "$here/stages_abi.cpp" -o "$so.tmp" && mv "$so.tmp" "$so"
fi
link() {  # link <main.cpp> <exe>
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS -I"$root/include" -I"$here" "$1" $objs "$so" -o "$2"
}
# Two builds of every kernel as shared objects (for the A/B harness), each with its own extra flags.
shared_build() {  # shared_build <dir> <extra flags> [native dir, default this one]
  src_root=${3:-$root}
  mkdir -p "$1"
  sobjs=""
  for src in "$src_root"/kernels/*.cpp; do
    # shellcheck disable=SC2086
    $CXX $CXXFLAGS -fPIC $2 -I"$src_root/include" -c "$src" -o "$1/$(basename "$src" .cpp).o"
    sobjs="$sobjs $1/$(basename "$src" .cpp).o"
  done
  # shellcheck disable=SC2086
  $CXX -shared -pthread $sobjs -o "$1/moe-kernels.so"
}
case "${1:-}" in
  ab)
    shift
    if [ -n "${AB_A_REF:-}" ]; then
      rm -rf "$out/ab/ref" && mkdir -p "$out/ab/ref"
      git -C "$root" archive "$AB_A_REF" . | tar -x -C "$out/ab/ref"
      shared_build "$out/ab/a" "${1:-}" "$out/ab/ref"
    else
      shared_build "$out/ab/a" "${1:-}"
    fi
    shared_build "$out/ab/b" "${2:-}"
    shift 2 || true
    $CXX $CXXFLAGS -I"$root/include" "$root/lab/ab_ffn.cpp" -ldl -o "$out/ab_ffn"
    exec "$out/ab_ffn" "$out/ab/a/moe-kernels.so" "$out/ab/b/moe-kernels.so" "$@"
    ;;
  bench)
    shift
    link "$root/lab/bench_gmm.cpp" "$out/bench_gmm"
    exec "$out/bench_gmm" "$@"
    ;;
  decode_bound)
    CXXFLAGS="$CXXFLAGS -mavx512f" link "$root/lab/decode_bound.cpp" "$out/decode_bound"  # zmm16-31 in the asm
    exec "$out/decode_bound"
    ;;
  limb_stream)
    shift
    CXXFLAGS="$CXXFLAGS -fopenmp" link "$root/lab/limb_stream.cpp" "$out/limb_stream"
    exec "$out/limb_stream" "$@"
    ;;
  bench_stages)
    shift
    link "$root/lab/bench_stages.cpp" "$out/bench_stages"
    exec "$out/bench_stages" "$@"
    ;;
  bench_ffn)
    shift
    link "$root/lab/bench_ffn.cpp" "$out/bench_ffn"
    exec "$out/bench_ffn" "$@"
    ;;
esac
link "$here/test_kernels.cpp" "$out/test_kernels"
link "$here/test_ffn.cpp" "$out/test_ffn"
link "$here/test_qgmm.cpp" "$out/test_qgmm"
"$out/test_kernels"
"$out/test_qgmm"
exec "$out/test_ffn" "$@"
