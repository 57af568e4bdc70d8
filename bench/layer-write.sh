#!/usr/bin/env bash
# Layer-writing throughput and peak memory: stevedore beside `tar | gzip -6` on the same files.
#
#   bench/layer-write.sh [SIZE_MB]      (default 400)
#
# The data is a copy of real files from /usr (libraries, binaries, text), so the compression
# ratio is what a container layer sees, not random or zero bytes. Each tool runs 3 times; the
# table shows the median wall time, throughput of input bytes, and peak RSS (GNU time).
set -euo pipefail
size_mb=${1:-400}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }

work=$(mktemp -d /tmp/stevedore-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data"
# Copy files from /usr until SIZE_MB is reached (sorted, so every run picks the same files).
find /usr/lib /usr/share /usr/bin -xdev -type f -size -20M -printf '%s\t%p\n' 2>/dev/null \
  | sort -t$'\t' -k2 > "$work/all" || true
awk -F'\t' -v lim=$((size_mb * 1000000)) '{ print $2; s += $1; if (s >= lim) exit }' \
  "$work/all" > "$work/list"
tar -cf - -T "$work/list" 2>/dev/null | tar -xf - -C "$work/data"
bytes=$(du -sb "$work/data" | cut -f1)
files=$(find "$work/data" -type f | wc -l)
echo "data: $((bytes / 1000000)) MB in $files files (copied from /usr)" >&2

cat > "$work/recipe.toml" <<'R'
[[layers]]
name = "data"
files = [{ src = "data", dest = "/data" }]
R

(cd "$here" && cargo build --release --quiet)
bin="$here/target/release/stevedore"

measure() { # name, command...
  local name=$1; shift
  local walls=() rss=()
  for i in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r w m < "$work/time"
    walls+=("$w"); rss+=("$m")
  done
  local med
  med=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n 2p)
  local maxrss
  maxrss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  printf '%-34s %8.2f s %9.1f MB/s %8.1f MB\n' "$name" "$med" \
    "$(echo "$bytes / 1000000 / $med" | bc -l)" "$(echo "$maxrss / 1024" | bc -l)"
}

echo
printf '%-34s %10s %14s %11s\n' "tool" "median" "throughput" "peak RSS"
# Every stevedore run starts from an empty cache, so it really writes the layer.
measure "stevedore build (gzip -6)" sh -c "rm -rf '$work/cache' && '$bin' -q --cache-dir '$work/cache' build '$work/recipe.toml'"
measure "tar -c | gzip -6" sh -c "tar -C '$work' -cf - data | gzip -6 > '$work/out.tar.gz'"
measure "tar -c | gzip -6 | sha256sum" sh -c "tar -C '$work' -cf - data | gzip -6 | sha256sum"
