#!/bin/sh
# scripts/check-layers.sh passes on the repository, and fails, naming the
# file and line, on a copy where a lower part includes a header of a higher one.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/check-layers.sh" "$src"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in core env toggles runner; do cp -r "$src/$d" "$tmp/$d"; done

expect_refused() {  # FILE INCLUDE
  cp "$tmp/$1" "$tmp/$1.orig"
  printf '#include "%s"\n' "$2" >> "$tmp/$1"
  line=$(wc -l < "$tmp/$1")
  if out=$("$src/scripts/check-layers.sh" "$tmp" 2>&1); then
    echo "FAIL: $1 including $2 was accepted"; exit 1
  fi
  case "$out" in
    *"$1:$line: includes \"$2\""*) ;;
    *) echo "FAIL: no FILE:LINE for $1 including $2 in: $out"; exit 1 ;;
  esac
  mv "$tmp/$1.orig" "$tmp/$1"
}
expect_refused runner/config/pipeline.h runner/serve/server.h
expect_refused runner/store/run_store.cc runner/exec/executor.h
expect_refused toggles/client/client.cc core/http.h
expect_refused toggles/eval/model.h toggles/server/store.h
expect_refused core/base/status.cc core/sqlite.h
expect_refused env/engine.h runner/config/pipeline.h
"$src/scripts/check-layers.sh" "$tmp"
echo "layering: ok"
