#!/usr/bin/env bash
# Installs onnxruntime-node (CPU binaries ship in the npm tarball) into bench/peers/ort/node_modules.
# ONNXRUNTIME_NODE_INSTALL=skip stops its postinstall from downloading GPU binaries (which fails offline).
set -euo pipefail
cd "$(dirname "$0")"
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund
