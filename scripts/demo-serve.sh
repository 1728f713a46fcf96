#!/bin/sh
# The second half of README's main command: `ladle serve` watches a demo git
# repository made here, and carries a commit to a local "production"
# directory, with the new toggle the commit brings synced off (dark launch).
# REQUIRES: build/ladle (scripts/build.sh), git, curl, openssl.
set -eu
cd "$(dirname "$0")/.."
ladle=${LADLE_BIN:-$PWD/build/ladle}
base=${LADLE_HOME:-$PWD/.ladle-demo}/serve-demo
port=${LADLE_DEMO_PORT:-7717}
server=http://127.0.0.1:$port
data=$base/data
say() { printf '\n==> %s\n' "$*"; }

rm -rf "$base"
mkdir -p "$base/repo/pipelines"

say "a git repository with the demo pipeline: $base/repo"
cp -r pipelines/demo pipelines/demo.yml "$base/repo/pipelines/"
git -C "$base/repo" init -q -b main
git -C "$base/repo" -c user.name=demo -c user.email=demo@example.invalid add -A
git -C "$base/repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "demo app"

secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
umask 077
printf 'DEMO_HOOK_SECRET=%s\n' "$secret" > "$base/secrets.env"
umask 022
cat > "$base/server.yml" <<YAML
listen: 127.0.0.1:$port
data: $data
workers: 2
backend: local
secrets_file: secrets.env
requeue_interrupted: true
repositories:
  - name: demo
    url: $base/repo
    branches: [main]
    pipeline: pipelines/demo.yml
    webhook_secret_env: DEMO_HOOK_SECRET
YAML

say "ladle serve --config $base/server.yml (log: $base/serve.log)"
"$ladle" serve --config "$base/server.yml" > "$base/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
i=0
until curl -sf "$server/healthz" > /dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then cat "$base/serve.log"; exit 1; fi
  sleep 0.1
done

# Waits until the run of commit $1 has ended; fails when it did not succeed.
wait_for_run() {
  i=0
  while :; do
    for status in success failed cancelled interrupted; do
      if "$ladle" --data "$data" runs --status $status --json | grep -q "\"$1\""; then
        "$ladle" --data "$data" runs -n 3
        [ $status = success ] && return 0
        cat "$base/serve.log"
        return 1
      fi
    done
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "no run of $1 ended within 2 minutes"; cat "$base/serve.log"; return 1; }
    sleep 0.2
  done
}

first=$(git -C "$base/repo" rev-parse HEAD)
say "at start the server finds main's head $(echo $first | cut -c1-8) and deploys it"
wait_for_run "$first"

say "a commit: a new feature behind a new toggle, new-checkout"
cat >> "$base/repo/pipelines/demo/toggles.yml" <<'YAML'
- key: new-checkout
  type: release
  description: The new checkout flow, shipped dark
YAML
git -C "$base/repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -am "new checkout, behind a toggle"
commit=$(git -C "$base/repo" rev-parse HEAD)

say "the push webhook, signed with the repository's secret as GitHub signs it"
body="{\"ref\":\"refs/heads/main\",\"before\":\"$first\",\"after\":\"$commit\",\"repository\":{\"name\":\"demo\"}}"
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')
curl -s -X POST -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: sha256=$sig" \
  -H 'Content-Type: application/json' --data "$body" "$server/api/v1/hooks/push/demo"
echo
wait_for_run "$commit"

say "deployments"
"$ladle" --data "$data" deployments
say "production runs commit $(cut -c1-8 /tmp/ladle-demo/production/REVISION): $(/tmp/ladle-demo/production/app demo)"
say "the toggles, as the production stage synced them: new ones are off (shipped dark)"
LADLE_SERVER=$server "$ladle" --data "$data" toggles list
say "the server stops with this script; to go on by hand:"
echo "  $ladle serve --config $base/server.yml &"
echo "  open $server/ (the web UI) with the token in $data/admin.token"
echo "  LADLE_SERVER=$server $ladle --data $data toggles on new-checkout   # when you are ready"
