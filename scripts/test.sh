#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs on a fresh Debian machine.
#
# The Redis store's tests start their own throwaway redis-server on free
# loopback ports, so the binary must be installed (the service need not run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=()
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
command -v cc >/dev/null 2>&1 || need_install+=(gcc)
if [ "${#need_install[@]}" -gt 0 ]; then
  echo "installing: ${need_install[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_install[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

# Unit, integration and doc tests of every crate.
cargo test --workspace

# Every example must run to completion.
for example in quickstart typed error-handling ordering panics pools unique-id metrics; do
  echo "example: $example"
  cargo run -q -p soiree --example "$example" >/dev/null
done
