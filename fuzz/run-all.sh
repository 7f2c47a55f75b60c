#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) with its committed
# corpus and dictionary. New corpus entries go to a scratch folder, so the
# committed seeds stay small. Any crash fails the script.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$t"
  echo "== fuzz $t (${secs}s)"
  if ! cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -dict="dicts/$t.dict" -max_total_time="$secs" -rss_limit_mb=2048 \
      -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    tail -40 "$scratch/$t.log"
    echo "fuzz target $t failed" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$t.log" || true
  grep -E "^#[0-9]+ +DONE" "$scratch/$t.log" | tail -1 || true
done
