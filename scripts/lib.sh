# Sourced by the scripts of README's two commands (demo.sh, test.sh) and the
# steps they call (install-deps.sh, build.sh), from the repository's root:
# one line on the terminal per phase, the phase's own output (apt-get, npm,
# cmake, the compiler) in one log file; when a phase fails, the log's tail.
#
# LADLE_BUILD_DIR  the build directory (default: build)
# LADLE_LOG        the log (default: BUILD_DIR/setup.log). The first script
#                  started begins it afresh; the scripts it calls append.
# LADLE_BUILD_JOBS parallel compile jobs (default: 2)

build_dir=${LADLE_BUILD_DIR:-build}
case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac
jobs=${LADLE_BUILD_JOBS:-2}
if [ -z "${LADLE_LOG:-}" ]; then
  mkdir -p "$build_dir"
  LADLE_LOG=$build_dir/setup.log
  : > "$LADLE_LOG"
fi
export LADLE_LOG

say() { printf '==> %s\n' "$*"; }

# phase MESSAGE COMMAND [ARG...]: says MESSAGE, runs COMMAND with its output
# in the log; on failure prints the end of what it wrote there and exits
# with its status. COMMAND may be a shell function: chain its commands with
# && (set -e does not apply inside it here).
phase() {
  phase_msg=$1
  shift
  say "$phase_msg (log: $LADLE_LOG)"
  printf '\n==== %s %s\n' "$(date '+%F %T')" "$phase_msg" >> "$LADLE_LOG"
  phase_from=$(wc -l < "$LADLE_LOG")
  phase_start=$(date +%s)
  phase_status=0
  "$@" >> "$LADLE_LOG" 2>&1 || phase_status=$?
  printf '==== %s after %ss: exit %s\n' "$phase_msg" "$(($(date +%s) - phase_start))" "$phase_status" >> "$LADLE_LOG"
  [ "$phase_status" -eq 0 ] && return 0
  # Under CI the whole of the phase's output (the log is gone with the job),
  # else its last 60 lines.
  lines=60
  [ "${CI:-}" = true ] && lines=100000
  {
    echo "FAILED: $phase_msg (exit $phase_status); its output, from $LADLE_LOG:"
    tail -n +"$((phase_from + 1))" "$LADLE_LOG" | tail -n "$lines"
    echo "FAILED: $phase_msg (exit $phase_status); the whole log: $LADLE_LOG"
  } >&2
  exit "$phase_status"
}
