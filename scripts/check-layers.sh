#!/bin/sh
# Checks that each part of ladle includes only its own headers and those of
# the parts below it (docs/design.md "Parts and layers"). Exit 0 when every
# include points down, 1 with a FILE:LINE message per include that points up
# or sideways, 2 when a part's folder is missing.
# Usage: scripts/check-layers.sh [ROOT]   (ROOT: the repository, default ..)
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"

# PART: the parts it may include, besides itself. Keep in the order of the
# layers, lowest first; the compiler enforces the same through each part's
# include directory (cmake/LadlePart.cmake).
layers='
core/base:
core: core/base
env: core core/base
toggles/eval: core/base
toggles/client: toggles/eval core/base
toggles/server: toggles/eval core core/base
runner/config: toggles/eval env core core/base
runner/store: env core core/base
runner/exec: runner/config runner/store toggles/client toggles/server toggles/eval env core core/base
runner/serve: runner/exec runner/config runner/store toggles/client toggles/server toggles/eval env core core/base
runner/spoon: runner/exec runner/config runner/store toggles/client toggles/server toggles/eval env core core/base
runner/cli: runner/spoon runner/serve runner/exec runner/config runner/store toggles/client toggles/server toggles/eval env core core/base
'

files=""
for part in $(printf '%s\n' "$layers" | sed -n 's/^\([a-z/]*\):.*/\1/p'); do
  [ -d "$part" ] || { echo "check-layers: no folder $part in $(pwd)" >&2; exit 2; }
  for f in "$part"/*.h "$part"/*.cc; do
    [ -e "$f" ] && files="$files $f"
  done
done

# shellcheck disable=SC2086
grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $files /dev/null | awk -v layers="$layers" '
  BEGIN {
    n = split(layers, lines, "\n")
    for (i = 1; i <= n; i++) {
      if (lines[i] == "") continue
      part = lines[i]; sub(/:.*/, "", part)
      deps = lines[i]; sub(/^[^:]*:[ ]*/, "", deps)
      known[part] = 1
      allowed[part, part] = 1
      m = split(deps, d, " ")
      for (j = 1; j <= m; j++) allowed[part, d[j]] = 1
    }
    bad = 0
  }
  {
    file = $0; sub(/:.*/, "", file)
    rest = substr($0, length(file) + 2)
    line = rest; sub(/:.*/, "", line)
    header = rest; sub(/^[^"]*"/, "", header); sub(/".*/, "", header)
    from = file; sub(/\/[^\/]*$/, "", from)
    to = header; sub(/\/[^\/]*$/, "", to)
    if (header !~ /\//) to = from          # "x.h": the same folder
    if (!((from, to) in allowed)) {
      why = (to in known) ? "a part that " from " may not use" : "no part of ladle"
      printf "%s:%s: includes \"%s\" of %s (%s)\n", file, line, header, to, why
      bad = 1
    }
  }
  END { exit bad }'
