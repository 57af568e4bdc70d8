#!/usr/bin/env bash
# Benchmark (not a test): stevedore beside its peers on the same machine, mirror and run.
#
#   bench/compare.sh            # RUNS=3 by default; prints medians, ratios, peak RSS, targets
#
# Rows (recipes/webapp.toml = bookworm minbase + openjdk-17-jre-headless + tomcat10 + a WAR):
#   cold build     stevedore with an empty cache, no lock (resolves from the indexes, like
#                  mmdebstrap)                         vs mmdebstrap --variant=minbase to a tarball
#   warm build     stevedore with its package cache and the recipe locked (`stevedore lock`, as
#                  a repository would commit it)      vs mmdebstrap reusing its .deb cache
#   WAR rebuild    stevedore build --push, WAR changed vs buildah bud --layers + push (cached)
#   no-op rebuild  stevedore build, nothing changed
#   full push      stevedore push of the OCI layout    vs skopeo copy of the same layout
#   cold/warm, zstd the cold and warm rows again with `compression = "zstd"` (OCI +zstd layers):
#                  what zstd buys over the gzip default, against the same mmdebstrap runs
# As root on Debian it installs what is missing (mmdebstrap buildah docker-registry skopeo time
# python3 curl); a peer that is still missing is reported and its row shows only stevedore.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

need=(mmdebstrap buildah docker-registry skopeo /usr/bin/time python3 curl)
pkgs=(mmdebstrap buildah docker-registry skopeo time python3 curl)
missing=()
for i in "${!need[@]}"; do command -v "${need[$i]}" >/dev/null 2>&1 || missing+=("${pkgs[$i]}"); done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
        echo "could not install all of: ${missing[*]}" >&2
fi
for t in docker-registry skopeo /usr/bin/time python3 curl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y docker-registry skopeo time python3 curl" >&2; exit 1; }
done
have() { command -v "$1" >/dev/null 2>&1; }

cargo build --release -q
bin=$PWD/target/release/stevedore
work=$(mktemp -d /var/tmp/stevedore-bench.XXXXXX)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Timing: wall seconds and peak RSS (KB) of one command, appended to $work/t.NAME.
measure() { # name cmd...
    local name=$1; shift
    local t0 t1
    # bash's own clock: no process start in the measured interval (a python3 call costs ~0.1 s)
    t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$work/rss.tmp" "$@" >"$work/out.tmp" 2>"$work/err.tmp" || {
        echo "FAILED: $*" >&2; tail -20 "$work/err.tmp" >&2; exit 1; }
    t1=$EPOCHREALTIME
    echo "$(python3 -c "print(f'{$t1-$t0:.3f}')") $(tail -1 "$work/rss.tmp")" >>"$work/t.$name"
}
median() { sort -n "$work/t.$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
peak() { sort -n -k2 "$work/t.$1" | tail -1 | awk '{printf "%.0f", $2/1024}'; }

start_registry() { # name -> prints port
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$work/reg-$1/data"
    cat >"$work/reg-$1/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/reg-$1/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
    docker-registry serve "$work/reg-$1/config.yml" >"$work/reg-$1/log" 2>&1 &
    pids="$pids $!"
    until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; do sleep 0.05; done
    echo "$port"
}

# A private copy of the recipes, so the WAR can change without touching the repository.
mkdir -p "$work/src/recipes" "$work/src/fixtures/war/jakarta"
cp recipes/debian-bookworm.toml recipes/openjdk.toml recipes/tomcat.toml recipes/webapp.toml "$work/src/recipes/"
cp -r keyrings "$work/src/"
war=$work/src/fixtures/war/jakarta/hello-jakarta.war
cp fixtures/war/jakarta/hello-jakarta.war "$war"
recipe=$work/src/recipes/webapp.toml
# The same tree with zstd layers, in its own directory (its lock file is its own).
cp -r "$work/src" "$work/srcz"
sed -i 's/^\[image\]$/[image]\ncompression = "zstd"/' "$work/srcz/recipes/webapp.toml"
grep -q '^compression = "zstd"' "$work/srcz/recipes/webapp.toml" || { echo "could not set zstd in the recipe copy" >&2; exit 1; }
zrecipe=$work/srcz/recipes/webapp.toml
change_war() { # makes the WAR's bytes differ, as a new commit's build would
    python3 - "$war" "$1" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "a") as z:
    z.writestr(f"build-{sys.argv[2]}.txt", sys.argv[2])
PY
}

echo "== cold build: stevedore (empty cache) vs mmdebstrap" >&2
for i in $(seq "$RUNS"); do
    rm -rf "$work/cache" "$work/oci"
    measure st_cold "$bin" build --cache-dir "$work/cache" "$recipe" --output "oci:$work/oci"
    rm -rf "$work/zcache" "$work/zoci"
    measure st_zcold "$bin" build --cache-dir "$work/zcache" "$zrecipe" --output "oci:$work/zoci"
    if have mmdebstrap; then
        rm -rf "$work/mm.tar" "$work/mmcache"
        measure mm_cold mmdebstrap --quiet --variant=minbase --include=usr-is-merged,openjdk-17-jre-headless,tomcat10 \
            bookworm "$work/mm.tar" "$MIRROR"
    fi
done
# From here on the recipe is locked, as a team's repository would have it (the cold rows above
# resolved against the indexes, as mmdebstrap does).
"$bin" lock --cache-dir "$work/cache" "$recipe" >/dev/null
"$bin" lock --cache-dir "$work/zcache" "$zrecipe" >/dev/null
echo "== warm build: stevedore (package cache kept, layers dropped) vs mmdebstrap (deb cache)" >&2
MM=(mmdebstrap --quiet --variant=minbase --include=usr-is-merged,openjdk-17-jre-headless,tomcat10)
if have mmdebstrap; then
    # Fill a .deb cache once (the man page's recipe; environment.md section 4a).
    mkdir -p "$work/mmcache"
    "${MM[@]}" --skip=essential/unlink --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --customize-hook='sync-out /var/cache/apt/archives '"$work/mmcache" \
        bookworm "$work/mm.tar" "$MIRROR" >&2
fi
for i in $(seq "$RUNS"); do
    rm -rf "$work/cache/layers" "$work/cache/blobs" "$work/oci"
    measure st_warm "$bin" build --cache-dir "$work/cache" "$recipe" --output "oci:$work/oci"
    rm -rf "$work/zcache/layers" "$work/zcache/blobs" "$work/zoci"
    measure st_zwarm "$bin" build --cache-dir "$work/zcache" "$zrecipe" --output "oci:$work/zoci"
    if have mmdebstrap; then
        rm -f "$work/mm.tar"
        measure mm_warm "${MM[@]}" --skip=essential/unlink \
            --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
            --setup-hook='sync-in '"$work/mmcache"' /var/cache/apt/archives/' \
            bookworm "$work/mm.tar" "$MIRROR"
    fi
done

echo "== WAR-only rebuild + push, and no-op rebuild" >&2
port=$(start_registry st)
"$bin" build -q --cache-dir "$work/cache" "$recipe" --push "127.0.0.1:$port/bench/webapp:latest" >/dev/null
for i in $(seq "$RUNS"); do
    change_war "st$i"
    measure st_war "$bin" build -q --cache-dir "$work/cache" "$recipe" --push "127.0.0.1:$port/bench/webapp:latest"
    measure st_noop "$bin" build -q --cache-dir "$work/cache" "$recipe"
    measure st_noop_push "$bin" build -q --cache-dir "$work/cache" "$recipe" --push "127.0.0.1:$port/bench/webapp:latest"
done
if have buildah && [ -f "$work/mm.tar" ]; then
    bport=$(start_registry buildah)
    B=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
    mkdir -p "$work/ctx"
    printf '[registries.search]\nregistries = []\n' >"$work/registries.conf"
    export CONTAINERS_REGISTRIES_CONF=$work/registries.conf
    # The base: the minbase part of mmdebstrap's output, imported once (not timed).
    mmdebstrap --quiet --variant=minbase --include=usr-is-merged bookworm "$work/base.tar" "$MIRROR" >&2
    ctr=$("${B[@]}" from scratch)
    "${B[@]}" add "$ctr" "$work/base.tar" / >&2
    "${B[@]}" commit -q "$ctr" localhost/debian-base:bookworm >&2
    cat >"$work/ctx/Dockerfile" <<'EOF'
FROM localhost/debian-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless tomcat10 && apt-get clean && rm -rf /var/lib/tomcat10/webapps/ROOT /var/lib/apt/lists/*
COPY app.war /var/lib/tomcat10/webapps/ROOT.war
EOF
    cp "$war" "$work/ctx/app.war"
    "${B[@]}" bud -q --isolation chroot --layers -t localhost/webapp:latest "$work/ctx" >&2
    "${B[@]}" push -q --tls-verify=false localhost/webapp:latest "docker://127.0.0.1:$bport/bench/webapp:latest" >&2
    for i in $(seq "$RUNS"); do
        change_war "b$i"
        cp "$war" "$work/ctx/app.war"
        measure bu_war sh -c '"$@" bud -q --isolation chroot --layers -t localhost/webapp:latest "'"$work"'/ctx" &&
            "$@" push -q --tls-verify=false localhost/webapp:latest "docker://127.0.0.1:'"$bport"'/bench/webapp:latest"' sh "${B[@]}"
    done
fi

echo "== full push of the same OCI layout to empty registries: stevedore vs skopeo" >&2
for i in $(seq "$RUNS"); do
    p1=$(start_registry "sp$i")
    p2=$(start_registry "sk$i")
    measure st_push "$bin" push -q "oci:$work/oci" "127.0.0.1:$p1/bench/webapp:latest"
    measure sk_push skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:latest" "docker://127.0.0.1:$p2/bench/webapp:latest"
done

echo "== peak RSS of every recipe in recipes/ (cold: empty cache, once each)" >&2
for r in recipes/*.toml; do # the repository's own (a build writes nothing beside them)
    name=$(basename "$r" .toml)
    rm -rf "$work/rcache" "$work/roci"
    measure "rss_$name" "$bin" build --cache-dir "$work/rcache" "$r" --output "oci:$work/roci"
done

# The table.
row() { # label stevedore-key peer-key peer-name target-text target-check
    local st pe ratio
    st=$(median "$2")
    if [ -n "$3" ] && [ -f "$work/t.$3" ]; then
        pe=$(median "$3"); ratio=$(python3 -c "print(f'{$pe/$st:.1f}x')")
        printf '%-26s %9.3f s %6s MB   %-10s %9.3f s %6s MB  %7s   %-22s %s\n' "$1" "$st" "$(peak "$2")" "$4" "$pe" "$(peak "$3")" "$ratio" "$5" "$(python3 -c "print('met' if $6 else 'NOT met')")"
    else
        printf '%-26s %9.3f s %6s MB   %-10s %11s %9s  %7s   %-22s %s\n' "$1" "$st" "$(peak "$2")" "${4:-}" "${4:+(missing)}" "" "" "$5" "$(python3 -c "print('met' if $6 else 'NOT met')")"
    fi
}
v() { median "$1"; }
vp() { if [ -f "$work/t.$1" ]; then median "$1"; else echo 1e9; fi; }
echo
echo "stevedore $("$bin" --version | cut -d' ' -f2), $(nproc) cores, $RUNS runs each (median), mirror $MIRROR"
printf '%-26s %13s %9s   %-10s %11s %9s  %7s   %-22s %s\n' "" "stevedore" "peak RSS" "peer" "time" "peak RSS" "ratio" "target" ""
row "cold build" st_cold mm_cold mmdebstrap "<= 1/5 of mmdebstrap" "$(v st_cold) * 5 <= $(vp mm_cold)"
row "warm build" st_warm mm_warm mmdebstrap "<= 5 s" "$(v st_warm) <= 5"
row "WAR-only rebuild + push" st_war bu_war buildah "<= 0.150 s" "$(v st_war) <= 0.150"
row "no-op rebuild" st_noop "" "" "<= 0.050 s" "$(v st_noop) <= 0.050"
row "no-op rebuild + push" st_noop_push "" "" "(no target)" "True"
row "full push" st_push sk_push skopeo "no slower than skopeo" "$(v st_push) <= $(v sk_push)"
row "cold build, zstd" st_zcold mm_cold mmdebstrap "(no target)" "True"
row "warm build, zstd" st_zwarm mm_warm mmdebstrap "(no target)" "True"
maxrss=0
for k in st_cold st_warm st_war st_noop st_noop_push st_push st_zcold st_zwarm; do r=$(peak "$k"); [ "$r" -gt "$maxrss" ] && maxrss=$r; done
for f in "$work"/t.rss_*; do
    k=${f#"$work"/t.}
    r=$(peak "$k"); [ "$r" -gt "$maxrss" ] && maxrss=$r
    printf '  %-24s %9.3f s %6s MB\n' "${k#rss_}.toml (cold)" "$(median "$k")" "$r"
done
printf '%-26s %9s   %6s MB   %-58s %s\n' "peak RSS, every run" "" "$maxrss" "<= 100 MB" "$(python3 -c "print('met' if $maxrss <= 100 else 'NOT met')")"
