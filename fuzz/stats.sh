#!/bin/sh
# Summarises libFuzzer logs: target, seconds, executions, final coverage, crash lines.
for f in "${@:-logs/*.log}"; do
  for l in $f; do
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$l" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$l" | tail -1)
    crash=$(grep -m1 -o 'panicked at [^ ]*\|SUMMARY: [^(]*' "$l" | head -1)
    echo "$(basename "$l" .log) secs=${secs:-?} execs=${execs:-?} ${cov} ${crash}"
  done
done
