#!/usr/bin/env bash
# Builds the ggml peer (moe.cpp) against the ggml that node-llama-cpp ships in npm: the prebuilt CPU backends of
# @node-llama-cpp/linux-x64 into lib/, ggml's headers from the llama.cpp release bundled in node-llama-cpp into
# include/, then g++. Both tarballs come from the npm registry (npm pack: no install scripts run).
set -euo pipefail
cd "$(dirname "$0")"
version=3.22.1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "node-llama-cpp@$version" "@node-llama-cpp/linux-x64@$version" > /dev/null)
rm -rf lib include moe
mkdir -p lib include
tar -xzf "$tmp/node-llama-cpp-linux-x64-$version.tgz" -C lib --strip-components=3 --wildcards 'package/bins/linux-x64/libggml*.so'
tar -xzf "$tmp/node-llama-cpp-$version.tgz" -C "$tmp" package/llama/gitRelease.bundle
git clone -q --no-checkout "$tmp/package/llama/gitRelease.bundle" "$tmp/llama.cpp"
git -C "$tmp/llama.cpp" archive HEAD ggml/include | tar -x -C "$tmp"
cp "$tmp"/ggml/include/*.h include/
g++ -O2 -std=c++17 -Iinclude moe.cpp lib/libggml.v0.5.0.so lib/libggml-base.so -Wl,-rpath,'$ORIGIN/lib' -o moe
./moe --check
