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

# The Redis example, against a throwaway server on a free loopback port.
port=""
for _ in $(seq 1 50); do
  candidate=$(( 20000 + RANDOM % 40000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
if [ -z "$port" ]; then
  echo "no free loopback port for the Redis example" >&2
  exit 1
fi
redis_dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "example: redis"
SOIREE_REDIS_URL="redis://127.0.0.1:$port" cargo run -q -p soiree-redis --example redis >/dev/null
