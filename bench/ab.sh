#!/usr/bin/env bash
# Before/after of one change (not a test): cold and no-op builds of a recipe by two stevedore
# binaries, alternating run by run so that both see the same mirror and machine load.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [RECIPE]     # RUNS=3 by default; prints medians
#
# Wall seconds, and CPU seconds (user + sys): on a machine shared with other work, wall time
# moves with their load, CPU seconds much less, so compare those there.
#
# Build the old binary in a worktree of the commit before the change
# (`git worktree add /tmp/before COMMIT && cargo build --release` there); when the recipes
# changed too, OLD_RECIPE=/tmp/before/recipes/webapp.toml gives the old binary its own.
set -euo pipefail
old=$1 new=$2 recipe=${3:-recipes/webapp.toml}
old_recipe=${OLD_RECIPE:-$recipe}
RUNS=${RUNS:-3}
command -v /usr/bin/time >/dev/null || { echo "missing /usr/bin/time: apt-get install -y time" >&2; exit 1; }
work=$(mktemp -d /var/tmp/stevedore-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
one() { # label binary cache recipe -> appends "seconds kb cpu-seconds" to $work/label
    /usr/bin/time -f "%e %M %U %S" -o "$work/t" "$2" build -q --cache-dir "$3" "$4" >/dev/null 2>"$work/err" ||
        { echo "FAILED: $2 build $4" >&2; tail -5 "$work/err" >&2; exit 1; }
    awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/t" >>"$work/$1"
}
for i in $(seq "$RUNS"); do
    for side in old new; do
        bin=$old r=$old_recipe
        [ "$side" = new ] && { bin=$new r=$recipe; }
        rm -rf "$work/cache"
        one "$side.cold" "$bin" "$work/cache" "$r"
        one "$side.noop" "$bin" "$work/cache" "$r"
    done
done
median() { sort -n "$work/$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu() { sort -n -k3 "$work/$1" | awk '{a[NR]=$3} END {print a[int((NR+1)/2)]}'; }
peak() { sort -n -k2 "$work/$1" | tail -1 | awk '{printf "%.0f", $2/1024}'; }
printf '%-14s %10s %10s %10s %10s %14s %14s\n' "" old new "old CPU" "new CPU" "old peak RSS" "new peak RSS"
for row in cold noop; do
    printf '%-14s %9ss %9ss %9ss %9ss %11s MB %11s MB\n' "$row" "$(median old.$row)" "$(median new.$row)" \
        "$(cpu old.$row)" "$(cpu new.$row)" "$(peak old.$row)" "$(peak new.$row)"
done
