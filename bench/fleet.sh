#!/usr/bin/env bash
# Benchmark (not a test): the fleet cache on recipes/webapp.toml, in one run.
#
#   bench/fleet.sh            # BIN=path/to/stevedore to skip the release build
#
# A git repository holds the recipes with the lockfile committed. Worker A (a clone, its own
# cache) builds it and pushes it to a loopback docker-registry with --cache-to. Then, each in a
# fresh clone in another folder with an empty cache, worker B builds the same commit:
#   B cold          --push only (what every CI job pays today)
#   B fleet cache   --cache-from + --push (the target: under 1.5 s on a 2-core machine)
# and both digests must equal A's. Also printed: .debs B fetched, layer blobs in B's cache
# (compressed or downloaded), blob uploads in the registry log during B's run, and the load.
#
# Needs: git docker-registry python3 (apt-get install -y git docker-registry python3) and
# deb.debian.org.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
for t in git docker-registry python3; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y git docker-registry python3" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
    cargo build --release -q
    BIN=$repo/target/release/stevedore
fi
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry/data"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry/data}}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
reg=127.0.0.1:$port

# The project as a repository commits it: recipes, keyrings, the WAR, and the lockfile.
origin=$work/origin
mkdir -p "$origin"
cp -r "$repo/recipes" "$repo/keyrings" "$origin/"
mkdir -p "$origin/fixtures" && cp -r "$repo/fixtures/war" "$origin/fixtures/"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.invalid GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.invalid
git -C "$origin" init -q -b main && git -C "$origin" add -A && git -C "$origin" commit -qm recipes
"$BIN" --cache-dir "$work/lock-cache" lock "$origin/recipes/webapp.toml" >/dev/null 2>"$work/lock.err" ||
    { cat "$work/lock.err" >&2; exit 1; }
git -C "$origin" add -A && git -C "$origin" commit -qm lock

worker() { # name -> clone in $work/<name>/src
    git clone -q "$origin" "$work/$1/src"
}
now() { python3 -c 'import time; print(time.monotonic())'; }
build() { # name, extra args...
    local name=$1; shift
    "$BIN" --cache-dir "$work/$name/cache" build --locked "$work/$name/src/recipes/webapp.toml" "$@" \
        2>"$work/$name/stderr" || { echo "worker $name failed:" >&2; cat "$work/$name/stderr" >&2; exit 1; }
}

worker a
digest_a=$(build a --cache-to "$reg/ci/webapp-cache" --push "$reg/team/webapp:latest")

worker cold
t0=$(now); digest_cold=$(build cold --push "$reg/team/webapp:latest"); t1=$(now)
cold=$(python3 -c "print(f'{$t1-$t0:.2f}')")

worker b
log_from=$(wc -c <"$work/registry/log")
t0=$(now); digest_b=$(build b --cache-from "$reg/ci/webapp-cache" --push "$reg/team/webapp:latest"); t1=$(now)
fleet=$(python3 -c "print(f'{$t1-$t0:.2f}')")
uploads=$(tail -c +"$((log_from + 1))" "$work/registry/log" | grep -c 'POST.*/blobs/uploads/' || true)
debs=$( (find "$work/b/cache/apt" -type f 2>/dev/null || true) | wc -l)
layers=0
for l in $(python3 - "$work/b/cache" <<'PY'
import json, os, sys
cache = sys.argv[1]
blobs = os.path.join(cache, "blobs", "sha256")
for name in os.listdir(blobs):
    try:
        doc = json.load(open(os.path.join(blobs, name)))
    except Exception:
        continue
    if isinstance(doc, dict) and doc.get("mediaType", "").endswith("manifest.v1+json") and "layers" in doc:
        for l in doc["layers"]:
            print(l["digest"].split(":")[1])
PY
); do
    if [ -f "$work/b/cache/blobs/sha256/$l" ]; then layers=$((layers + 1)); fi
done

[ "$digest_a" = "$digest_b" ] && [ "$digest_a" = "$digest_cold" ] || {
    echo "digests differ: A $digest_a, B $digest_b, cold $digest_cold" >&2; exit 1; }
echo "recipes/webapp.toml, digest $digest_a"
echo "B cold (no cache, --push):             ${cold} s"
echo "B fleet cache (--cache-from, --push):  ${fleet} s   (target < 1.5 s)"
echo "B with the cache: files in apt store $debs, layer blobs in cache $layers, blob uploads $uploads"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
