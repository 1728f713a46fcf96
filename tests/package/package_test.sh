#!/bin/sh
# The toggle client as an application embeds it: `cmake --install` of the
# toggles-client component into a temporary prefix, a tiny application
# (tests/package/app) built outside ladle's tree with find_package(LadleToggles)
# and again with pkg-config, each evaluating a toggle of a real
# `ladle toggles serve` before and after a flip.
# Usage: package_test.sh BUILD_DIR LADLE_BINARY
set -eu
build=$1
ladle=$2
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" --component toggles-client > "$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install"; }
libs=$(cd "$prefix" && find . -name '*.a' | sort | tr '\n' ' ')
[ "$libs" = "./lib/libladle_base.a ./lib/libladle_toggles_client.a ./lib/libladle_toggles_eval.a " ] ||
  fail "installed libraries: $libs"
# The client alone: nothing of the server's store or of Beast comes with it.
if nm -A "$prefix"/lib/*.a 2>/dev/null | grep -E ' U (sqlite3_|.*boost.*beast)' | head -3 | grep .; then
  fail "the installed client needs SQLite or Beast"
fi

cp -r "$src/app" "$tmp/app"
cmake -S "$tmp/app" -B "$tmp/app-build" -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/app.log" 2>&1 &&
  cmake --build "$tmp/app-build" >> "$tmp/app.log" 2>&1 || { cat "$tmp/app.log"; fail "find_package build"; }
PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
c++ -o "$tmp/app-pc" "$tmp/app/main.cc" $(pkg-config --cflags --libs ladle-toggles) ||
  fail "pkg-config build"

port=$(( 20000 + $$ % 20000 ))
data=$tmp/data
"$ladle" --data "$data" toggles serve --listen "127.0.0.1:$port" > "$tmp/serve.log" 2>&1 &
pid=$!
server=http://127.0.0.1:$port
i=0
until [ -s "$data/admin.token" ] && curl -sf "$server/healthz" > /dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/serve.log"; fail "toggles serve did not start"; fi
  sleep 0.1
done
token=$(cat "$data/admin.token")
toggle() { LADLE_SERVER=$server "$ladle" --data "$data" toggles "$@" > /dev/null; }
toggle create new-checkout --type release

for app in "$tmp/app-build/app" "$tmp/app-pc"; do
  toggle off new-checkout -e production
  out=$("$app" "$server" "$token" new-checkout alice) || fail "$app: $out"
  [ "$out" = "new-checkout=off" ] || fail "$app before the flip: $out"
  toggle on new-checkout -e production
  out=$("$app" "$server" "$token" new-checkout alice) || fail "$app: $out"
  [ "$out" = "new-checkout=on" ] || fail "$app after the flip: $out"
done
echo "package: ok"
