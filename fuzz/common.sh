# Shared by fuzz/run and fuzz/smoke (sourced, not run): the targets, and the build.
# shellcheck shell=bash

# Every fuzz target, in the order they run.
FUZZ_TARGETS=(config dump errorlog logscan logformat fastcgi gateway_head http_head tls_cert dns_answer)

# The targets are built in release mode with debug assertions (so an arithmetic overflow
# is a crash) and, by default, without a sanitizer: the fix502 crates forbid unsafe code,
# and AddressSanitizer makes the parsers about six times slower. Without a sanitizer
# cargo-fuzz passes only stable rustc flags; FUZZ_SANITIZER=address makes it pass
# -Zsanitizer=address, which the stable toolchain takes with RUSTC_BOOTSTRAP=1 (set by
# fuzz_build).
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_BUILD_FLAGS=(--release --debug-assertions --sanitizer "$FUZZ_SANITIZER")
FUZZ_BIN_DIR=target/x86_64-unknown-linux-gnu/release

# Installs what the build needs when it is missing: a C++ compiler (libfuzzer-sys compiles
# libFuzzer; as root through apt-get) and cargo-fuzz (the version this crate was made with;
# `cargo install` keeps it in ~/.cargo/bin, so only the first run pays).
fuzz_install() {
  if ! command -v c++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
      echo "a C++ compiler is missing: install g++" >&2
      return 1
    fi
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
  fi
}

# Builds every target (one cargo build: they share all their dependencies).
fuzz_build() {
  RUSTC_BOOTSTRAP=1 cargo fuzz build "${FUZZ_BUILD_FLAGS[@]}"
}

# Reads libFuzzer's -print_final_stats output in $1: "executions exec/s".
fuzz_stats() {
  local runs rate
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$1" | tail -n1)
  echo "${runs:-?} ${rate:-?}"
}
