#!/bin/sh
# Runs each target in turn (one fuzzer at a time), $1 seconds each; logs to logs/<target>.log.
T=${1:-300}
shift
mkdir -p logs
for t in "${@:-reassembly defrag quic_initial tls_hello shard route capture_file decode_frame}"; do
  for x in $t; do
    mkdir -p corpus/$x
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O $x corpus/$x -- \
      -max_total_time=$T -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > logs/$x.log 2>&1
    echo "$x rc=$?" >> logs/summary
  done
done
