#!/bin/sh
# Step caches (docs/pipeline.md "Caches"): restore and save of a cache of
# 10,000 small files, against `tar` of the same files, in this one run:
#
#   tests/bench/cache_bench.sh [LADLE_BINARY] [N]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; N (default 5) rounds,
# the median reported. A pipeline's step (local backend) makes 10,000 files
# of 100 to 400 bytes in 100 directories under deps/ when it finds none, and
# caches deps/. Run 1 saves; runs 2..N+1 restore, then save again. ladle's
# own figures are the times its step log gives ("cache: restored KEY (...,
# N ms)", "cache: saved ..."): the archive work only, not the step.
#   tar save:    tar -cf CACHE.tar -C WORKSPACE deps, then sync CACHE.tar
#                (ladle syncs its archive before the rename that publishes it)
#   tar restore: tar -xf CACHE.tar -C EMPTY_DIR
# Target: each under 2x of tar. Exits 1 when a target is missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
N=${2:-5}

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms_since() { calc "($(now) - $1) * 1000"; }

mkdir -p "$work/src"
cat >"$work/src/ladle.yml" <<'EOF'
name: cache-bench
stages:
  - name: s
    steps:
      - name: deps
        run: |
          if [ ! -d deps ]; then
            pad=0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789
            d=0
            while [ $d -lt 100 ]; do
              mkdir -p deps/d$d
              f=0
              while [ $f -lt 100 ]; do
                printf '%s\n' "$d/$f" "$pad" "$(if [ $((f % 4)) -eq 0 ]; then echo "$pad$pad$pad"; fi)" > deps/d$d/f$f
                f=$((f + 1))
              done
              d=$((d + 1))
            done
          fi
          echo files: $(find deps -type f | wc -l)
        cache: {paths: [deps], key: bench}
EOF

run() {  # run number; prints the step log
  (cd "$work/src" && NO_COLOR=1 "$LADLE_BIN" --data "$work/data" run --backend local -q >/dev/null 2>&1) ||
    { echo "ladle run failed" >&2; cat "$work/data/logs/$1/s/deps.log" >&2; exit 1; }
  cat "$work/data/logs/$1/s/deps.log"
}
# The N in "(... files, ... MB, N ms)" of the line with $2 in log $1.
figure() { grep "cache: $2" "$1" | sed -n 's/.*, \([0-9]*\) ms)$/\1/p' | head -1; }

run 1 >"$work/log1"
grep -q "files: 10000" "$work/log1" || { echo "the step did not make 10000 files" >&2; cat "$work/log1" >&2; exit 1; }
grep -q "cache: saved bench (10000 files" "$work/log1" || { echo "run 1 saved no cache" >&2; cat "$work/log1" >&2; exit 1; }
bytes=$(du -sb "$work/data/workspaces/1/deps" | cut -f1)
tarball=$(find "$work/data/caches" -name '*.tar' | head -1)
archive=$(du -b "$tarball" | cut -f1)

i=1
while [ "$i" -le "$N" ]; do  # interleaved, so load changes hit both
  r=$((i + 1))
  run "$r" >"$work/log$r"
  figure "$work/log$r" "restored" >>"$work/ladle-restore.ms"
  figure "$work/log$r" "saved" >>"$work/ladle-save.ms"
  start=$(now)
  tar -cf "$work/ref.tar" -C "$work/data/workspaces/$r" deps
  sync "$work/ref.tar"
  ms_since "$start" >>"$work/tar-save.ms"
  rm -rf "$work/x"
  mkdir "$work/x"
  start=$(now)
  tar -xf "$work/ref.tar" -C "$work/x"
  ms_since "$start" >>"$work/tar-restore.ms"
  rm -rf "$work/data/workspaces/$r"  # keeps the disk use flat
  i=$((i + 1))
done

status=0
row() {  # label tar ladle
  ratio=$(calc "$3 / $2")
  ok=$(calc "($ratio <= 2) ? 1 : 0")
  [ "$ok" -eq 1 ] || status=1
  printf '%-10s %9.0f ms %9.0f ms %7.2fx %6.1fx  %s\n' "$1" "$2" "$3" "$ratio" 2 \
    "$([ "$ok" -eq 1 ] && echo ok || echo MISSED)"
}
echo "a cache of 10000 files ($(calc "$bytes / 1000") kB on disk, archive $(calc "$archive / 1000") kB), median of $N"
printf '%-10s %12s %12s %8s %7s\n' "" "tar" "ladle" "ratio" "target"
row restore "$(median <"$work/tar-restore.ms")" "$(median <"$work/ladle-restore.ms")"
row save "$(median <"$work/tar-save.ms")" "$(median <"$work/ladle-save.ms")"
echo "rounds (ms): tar restore $(tr '\n' ' ' <"$work/tar-restore.ms"); ladle restore $(tr '\n' ' ' <"$work/ladle-restore.ms")"
echo "             tar save $(tr '\n' ' ' <"$work/tar-save.ms"); ladle save $(tr '\n' ' ' <"$work/ladle-save.ms")"
exit $status
