#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs on a fresh Debian machine.
#
# The Redis store's tests start their own throwaway redis-server on free
# loopback ports, so the binary must be installed (the service need not run).
# The SQL store's tests likewise create their own PostgreSQL clusters
# (initdb into temporary directories), so PostgreSQL must be installed.
# The dashboard's browser tests drive a headless Chromium through
# chromedriver (Debian: chromium, chromium-driver); under CI=true they fail
# rather than skip without them.
#
# Every suite and example runs even when an earlier one fails; the script
# lists the failures and exits non-zero at the end.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

need_install=()
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
# The NATS store's tests start their own nats-server (Debian puts it in /usr/sbin).
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_install+=(nats-server)
command -v cc >/dev/null 2>&1 || need_install+=(gcc)
# The Redis TLS tests make their certificates with openssl.
command -v openssl >/dev/null 2>&1 || need_install+=(openssl)
if ! command -v initdb >/dev/null 2>&1 &&
  ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  need_install+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || need_install+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_install+=(chromium-driver)
if [ "${#need_install[@]}" -gt 0 ]; then
  echo "installing: ${need_install[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! $sudo apt-get update -qq ||
    ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_install[@]}"; then
    echo "could not install: ${need_install[*]}" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

status=0
failed=()
fail() {
  status=1
  failed+=("$1")
  echo "FAILED: $1" >&2
}

# Unit, integration and doc tests of every crate.
cargo test --workspace --no-fail-fast || fail "cargo test --workspace"

# The Redis store over TLS (feature `tls`).
cargo test -p soiree-redis --features tls --test tls || fail "soiree-redis tls"

# The outbox relay to JetStream (feature `sql-relay`).
cargo test -p soiree-nats --features sql-relay --test relay || fail "soiree-nats sql-relay"

# The loom models of the pool's counters, in a target dir of their own (the
# cfg changes every crate's build).
RUSTFLAGS="--cfg soiree_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p soiree --lib loom || fail "loom models"

# Every example must run to completion.
for example in quickstart typed error-handling ordering panics pools unique-id metrics metrics-server shutdown; do
  echo "example: $example"
  cargo run -q -p soiree --example "$example" >/dev/null || fail "example $example"
done

# The README's getting started: an order and its event in one transaction,
# a restart, a dead letter, in a SQLite file.
echo "example: getting-started"
cargo run -q -p soiree-sql --example getting-started >/dev/null || fail "example getting-started"

# Durable events with no server: the SQLite example.
echo "example: durable"
cargo run -q -p soiree-sql --example durable >/dev/null || fail "example durable"

# Mutation events across a kill -9: a setting committed, billed once after the restart.
echo "example: mutations"
cargo run -q -p soiree-sql --example mutations >/dev/null || fail "example mutations"

# SeaORM hooks staging mutation events in the SQLite outbox.
echo "example: seaorm"
cargo run -q -p soiree-seaorm --example seaorm >/dev/null || fail "example seaorm"

# The Redis example, against a throwaway server on a free loopback port.
redis_pid=""
redis_dir=""
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=""
  fi
  if [ -n "$redis_dir" ]; then
    rm -rf "$redis_dir"
    redis_dir=""
  fi
}
trap stop_redis EXIT
run_redis_example() {
  local port="" candidate result
  for _ in $(seq 1 50); do
    candidate=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      port=$candidate
      break
    fi
  done
  if [ -z "$port" ]; then
    echo "no free loopback port for the Redis example" >&2
    return 1
  fi
  redis_dir=$(mktemp -d) || return 1
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" >/dev/null &
  redis_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  SOIREE_REDIS_URL="redis://127.0.0.1:$port" cargo run -q -p soiree-redis --example redis >/dev/null
  result=$?
  stop_redis
  return "$result"
}
echo "example: redis"
run_redis_example || fail "example redis"

if [ "$status" -ne 0 ]; then
  echo "failures:" >&2
  printf '  %s\n' "${failed[@]}" >&2
fi
exit "$status"
