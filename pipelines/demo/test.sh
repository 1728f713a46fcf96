#!/bin/sh
# Tests the demo application and writes a JUnit report, as test runners do.
# Usage: test.sh APP REPORT
app=$1
report=$2
mkdir -p "$(dirname "$report")"
cases=""
failures=0
total=0
check() {  # name, expected, args...
  name=$1; expected=$2; shift 2
  total=$((total + 1))
  got=$("$app" "$@" 2>&1)
  if [ "$got" = "$expected" ]; then
    echo "PASS $name"
    cases="$cases<testcase classname=\"app\" name=\"$name\" time=\"0.001\"/>"
  else
    echo "FAIL $name: expected '$expected', got '$got'" >&2
    failures=$((failures + 1))
    cases="$cases<testcase classname=\"app\" name=\"$name\" time=\"0.001\"><failure message=\"expected $expected\">got $got</failure></testcase>"
  fi
}
check greets_world "hello, world"
check greets_name "hello, ladle" ladle
check greets_spaces "hello, a b" "a b"
check greets_unicode "hello, zoë" "zoë"
printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="app" tests="%d" failures="%d">%s</testsuite></testsuites>\n' \
  "$total" "$failures" "$cases" > "$report"
echo "$total tests, $failures failed; report in $report"
[ "$failures" -eq 0 ]
