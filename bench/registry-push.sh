#!/bin/sh
# Benchmark (not a test): push one OCI layout to an empty loopback docker-registry with stevedore's
# client, and the same layout to another empty one with `skopeo copy`, in the same run; print both.
#
#   bench/registry-push.sh                # generates SIZE_MB (default 400) in LAYERS (default 6) layers
#   LAYOUT=/path/to/oci-layout bench/registry-push.sh   # e.g. the Tomcat image built by stevedore
#
# Needs: docker-registry skopeo python3 (apt-get install -y docker-registry skopeo python3).
set -eu
cd "$(dirname "$0")/.."
for t in docker-registry skopeo python3 curl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y docker-registry skopeo python3 curl" >&2; exit 1; }
done
SIZE_MB=${SIZE_MB:-400}
LAYERS=${LAYERS:-6}
work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

if [ -z "${LAYOUT:-}" ]; then
    LAYOUT=$work/layout
    echo "generating a ${SIZE_MB} MB image in $LAYERS gzip layers..." >&2
    python3 - "$LAYOUT" "$SIZE_MB" "$LAYERS" <<'PY'
import gzip, hashlib, json, os, sys
out, size_mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(out, "blobs", "sha256"); os.makedirs(blobs)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(os.path.join(blobs, d), "wb").write(b)
    return {"digest": "sha256:" + d, "size": len(b)}
layers, diff_ids = [], []
for i in range(n):
    raw = os.urandom(size_mb * 2**20 // n)
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    layers.append(dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(gzip.compress(raw, 1, mtime=0))))
cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cfg), "layers": layers}).encode()
m = put(man)
json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"org.opencontainers.image.ref.name": "latest"}, **m)]}, open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
fi
echo "layout: $LAYOUT ($(du -sh "$LAYOUT" | cut -f1))" >&2

cargo build -q --example registry_push
bin=target/debug/examples/registry_push

start_registry() { # name -> prints port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$work/$1/data"
    cat >"$work/$1/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/$1/data}}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
    docker-registry serve "$work/$1/config.yml" >"$work/$1/log" 2>&1 &
    pids="$pids $!"
    until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; do sleep 0.01; done
    echo "$port"
}

now() { python3 -c 'import time; print(time.monotonic())'; }
p1=$(start_registry stevedore)
p2=$(start_registry skopeo)
sync

t0=$(now)
# max RSS too when GNU time is there (apt-get install -y time)
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "%M" -o "$work/rss.$(basename "$1")" "$@"; else "$@"; fi; }
d1=$(timed "$bin" "$LAYOUT" "127.0.0.1:$p1/bench/image:latest")
t1=$(now)
timed skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://127.0.0.1:$p2/bench/image:latest"
t2=$(now)
rss1=$(cat "$work/rss.registry_push" 2>/dev/null || echo "?")
rss2=$(cat "$work/rss.skopeo" 2>/dev/null || echo "?")
d2=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$p2/bench/image:latest" | sha256sum | cut -d' ' -f1)
d1check=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$p1/bench/image:latest" | sha256sum | cut -d' ' -f1)
[ "sha256:$d1check" = "$d1" ] || { echo "stevedore's pushed manifest does not match: $d1 vs sha256:$d1check" >&2; exit 1; }

python3 - "$t0" "$t1" "$t2" "$d1" "sha256:$d2" "$rss1" "$rss2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:4])
print(f"stevedore push: {t1 - t0:6.2f} s  max RSS {sys.argv[6]} KB  manifest {sys.argv[4]}")
print(f"skopeo copy:    {t2 - t1:6.2f} s  max RSS {sys.argv[7]} KB  manifest {sys.argv[5]}")
PY
