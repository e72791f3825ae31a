# Shared by fuzz/run and fuzz/smoke (sourced, not run): the targets, and the build.
# shellcheck shell=bash

# Every fuzz target, in the order they run.
FUZZ_TARGETS=(config dump errorlog logscan logformat fastcgi gateway_head http_head tls_cert dns_answer)

# cargo-fuzz passes nightly flags (-Zsanitizer=...); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take them. The targets are built in release mode with debug assertions (so an
# arithmetic overflow is a crash) and without a sanitizer: the fix502 crates forbid unsafe
# code, and AddressSanitizer makes the parsers about six times slower.
FUZZ_BUILD_FLAGS=(--release --debug-assertions --sanitizer none)
FUZZ_BIN_DIR=target/x86_64-unknown-linux-gnu/release

# Installs cargo-fuzz when it is missing (the version this crate was made with).
fuzz_install() {
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
