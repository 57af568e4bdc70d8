#!/usr/bin/env bash
# Registry soak (issue 12), not part of the suite: N pushes (default 200) to a loopback
# docker-registry through tests/it/registry_support/fault_proxy.rs, 10-20% of requests hit by a
# fault (500, 503, 429 + Retry-After, dropped connections, lost answers, stalls). Each push has a
# 90 s deadline and must end complete or failed with no tag on an incomplete image; the ignored
# test `registry_faults::soak` asserts both and prints one SOAK line:
#   ok_without_faults, ok_after_retries (pushes hit by faults that still succeeded),
#   failed_cleanly, tags_on_incomplete_images=0, hangs=0.
# Needs docker-registry and skopeo (apt-get install -y docker-registry skopeo).
#
# Usage: bench/registry-soak.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
log="$(mktemp -t registry-soak.XXXXXX.log)"
echo "registry soak: $n pushes; full log in $log" >&2
start=$(date +%s)
if STEVEDORE_SOAK_PUSHES="$n" cargo test --test it registry_faults::soak -- \
    --ignored --exact --nocapture >"$log" 2>&1; then
    status=ok
else
    status=FAILED
fi
grep -E '^SOAK|failed cleanly|panicked|hung|incomplete' "$log" || true
echo "soak $status in $(( $(date +%s) - start ))s (including the build)" >&2
[ "$status" = ok ]
