#!/usr/bin/env bash
# Cold build of recipes/webapp.toml for one platform (linux/amd64) and for two (linux/amd64 and
# linux/arm64), in the same run: 3 runs each, alternating, each with an empty cache; prints the
# medians and the ratio two/one (issue 15 wants at most 2.2).
#
#   bench/platforms.sh [RUNS]      (default 3)
#
# Downloads come from deb.debian.org every run (an empty cache has no .debs), so the network
# is part of the figure, as on a fresh CI worker; the runs alternate so a slow minute of the
# mirror hits both sides.
set -euo pipefail
runs=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && cargo build --release --quiet)
bin="$here/target/release/stevedore"

work=$(mktemp -d /tmp/stevedore-bench-platforms.XXXXXX)
trap 'rm -rf "$work"' EXIT

# One cold build: prints its wall time in seconds.
cold() { # platforms
  rm -rf "$work/cache"
  local start end
  start=$(date +%s.%N)
  "$bin" --quiet --cache-dir "$work/cache" build "$here/recipes/webapp.toml" --platform "$1" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

one=() two=()
for i in $(seq "$runs"); do
  one+=("$(cold linux/amd64)")
  two+=("$(cold linux/amd64,linux/arm64)")
  echo "run $i: one platform ${one[-1]} s, two platforms ${two[-1]} s" >&2
done
m1=$(median "${one[@]}")
m2=$(median "${two[@]}")
printf 'webapp.toml cold build, median of %d (empty cache each run)\n' "$runs"
printf '  linux/amd64                %6.2f s\n' "$m1"
printf '  linux/amd64 + linux/arm64  %6.2f s\n' "$m2"
printf '  ratio two/one              %6.2f (issue 15: at most 2.2)\n' "$(echo "$m2 / $m1" | bc -l)"
