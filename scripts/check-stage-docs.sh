#!/usr/bin/env bash
# Follows docs/STAGES.md literally, as a new user would, in a scratch copy of the repository
# (the working tree is never touched):
#
#   1. writes the files and makes the edits its code blocks show, at the places the
#      `<!-- check: ... -->` line above each block names (module, Package.swift, registration,
#      test, config);
#   2. runs scripts/new-stage.sh for a second stage;
#   3. builds, runs both stages' tests, checks the config, and checks that a bad value and an
#      unknown kind are reported as the guide says;
#   4. serves the guide's pipeline with the guide's Python webhook service and sends messages
#      over the HTTP API: shouting is refused, spam is refused by the webhook, a normal message
#      is stored as the webhook rewrote it.
#
# The scratch copy is an overlay of the repository mounted over the repository's own path in a
# private mount namespace, so SwiftPM finds .build where it left it and builds incrementally;
# a copy at another path would rebuild everything (SwiftPM's build records hold absolute paths).
# Without mount namespaces it falls back to a full build in a plain copy (slow).
# Needs swift, python3 and curl. The end-to-end tests run it when CHATGATE_DOC_CHECK=1.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)

fail() {
  echo "check-stage-docs: FAILED: $*" >&2
  exit 1
}

if [[ ${CHECK_STAGE_DOCS_INSIDE:-} != 1 ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/chatgate-doc-check.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  export CHECK_STAGE_DOCS_INSIDE=1 CHECK_STAGE_DOCS_WORK="$work"
  started=$SECONDS
  status=0
  if unshare -m --propagation private true 2>/dev/null; then
    namespace=(unshare -m --propagation private)
  elif unshare -r -m --propagation private true 2>/dev/null; then
    namespace=(unshare -r -m --propagation private)
  else
    namespace=()
  fi
  if ((${#namespace[@]})); then
    # shellcheck disable=SC2016
    "${namespace[@]}" bash -c '
      set -e
      mkdir -p "$2/upper" "$2/overlay-work"
      if ! mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/overlay-work" "$1" 2>/dev/null; then
        echo "check-stage-docs: no overlayfs here; copying the repository, .build included" >&2
        mkdir -p "$2/copy"
        cp -a "$1/." "$2/copy/"
        mount --bind "$2/copy" "$1"
      fi
      cd "$1"
      exec bash scripts/check-stage-docs.sh' _ "$repo" "$work" || status=$?
  else
    echo "check-stage-docs: no mount namespace (not root, no user namespaces): a full build in a copy, which takes long" >&2
    mkdir -p "$work/copy"
    (cd "$repo" && tar --exclude=./.build --exclude='./.build-*' -cf - .) | (cd "$work/copy" && tar -xf -)
    (cd "$work/copy" && bash scripts/check-stage-docs.sh) || status=$?
  fi
  if ((status == 0)); then
    echo "check-stage-docs: passed in $((SECONDS - started)) s"
  else
    echo "check-stage-docs: FAILED (status $status) after $((SECONDS - started)) s" >&2
  fi
  exit "$status"
fi

# ---- Inside the scratch copy (the current directory) ----
work=$CHECK_STAGE_DOCS_WORK
blocks="$work/blocks"
mkdir -p "$blocks"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # SIGTERM may be blocked (a process started by the test runner inherits its signal mask).
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
step() { echo "== check-stage-docs: $*"; }

step "1. applying the code blocks of docs/STAGES.md"
awk -v dir="$blocks" '
  /^<!-- check: .* -->$/ { d = $0; sub(/^<!-- check: /, "", d); sub(/ -->$/, "", d); n++; print d > (dir "/" n ".directive"); close(dir "/" n ".directive"); want = 1; next }
  want && !inside && /^```/ { inside = 1; printf "" > (dir "/" n); next }
  inside && /^```$/ { inside = 0; want = 0; close(dir "/" n); next }
  inside { print > (dir "/" n) }
' docs/STAGES.md
applied=0
for directive_file in $(ls "$blocks"/*.directive | sort -V); do
  directive=$(cat "$directive_file")
  block=${directive_file%.directive}
  [[ -s $block ]] || fail "no code block after <!-- check: $directive -->"
  if [[ $directive =~ ^file\ (.+)$ ]]; then
    mkdir -p "$(dirname "${BASH_REMATCH[1]}")"
    cp "$block" "${BASH_REMATCH[1]}"
  elif [[ $directive =~ ^above\ \"(.+)\"\ in\ (.+)$ ]]; then
    marker=${BASH_REMATCH[1]} file=${BASH_REMATCH[2]}
    grep -qF "$marker" "$file" || fail "$file has no line '$marker'"
    awk -v marker="$marker" -v block="$block" 'index($0, marker) { while ((getline line < block) > 0) print line; close(block) } { print }' "$file" >"$file.tmp"
    mv "$file.tmp" "$file"
  elif [[ $directive =~ ^import\ in\ (.+)$ ]]; then
    file=${BASH_REMATCH[1]}
    last=$(grep -n '^import ' "$file" | tail -1 | cut -d: -f1)
    sed -i "${last}r $block" "$file"
  elif [[ $directive =~ ^factory\ in\ (.+)$ ]]; then
    file=${BASH_REMATCH[1]}
    start=$(grep -n 'static let factories: \[StageFactory\] = \[' "$file" | cut -d: -f1)
    end=$(awk -v s="$start" 'NR > s && /^    \]/ { print NR; exit }' "$file")
    [[ -n $start && -n $end ]] || fail "no factories list in $file"
    sed -i "$((end - 1))r $block" "$file"
  elif [[ $directive == pipeline || $directive == webhook-entry ]]; then
    cp "$block" "$work/$directive.yaml"
  else
    fail "unknown directive '<!-- check: $directive -->' in docs/STAGES.md"
  fi
  applied=$((applied + 1))
done
((applied >= 10)) || fail "only $applied blocks of docs/STAGES.md were marked for checking"
[[ -f moderation.py && -f $work/pipeline.yaml && -f $work/webhook-entry.yaml ]] || fail "the guide's Python service, pipeline or webhook entry is missing"

step "2. scripts/new-stage.sh acme.doc_probe"
scripts/new-stage.sh acme.doc_probe >/dev/null

step "3. building"
# The copy's own build lock: the real one (SwiftPM keeps it in $TMPDIR, named after the
# path) may be held by the `swift test` that runs this script.
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
rm -f .build/.lock
build_started=$SECONDS
swift build --build-tests >"$work/build.log" 2>&1 || { grep -E "error:" -A4 "$work/build.log" | head -60; fail "swift build failed"; }
echo "   built in $((SECONDS - build_started)) s"

step "3. the guide's test and the skeleton's test"
swift test --skip-build --filter 'NoCapsStageTests|DocProbeStageTests' >"$work/test.log" 2>&1 || { cat "$work/test.log"; fail "the stages' tests failed"; }
grep -E "Test run with [0-9]+ tests? .*passed" "$work/test.log" || { cat "$work/test.log"; fail "no passing test run"; }
grep -q "refusesShouting" "$work/test.log" && grep -q "letsAMessageThrough" "$work/test.log" || fail "the guide's tests did not run"

step "3. check-config on config.yaml with the guide's pipeline"
sed '/^pipeline:/,$d' config.yaml >"$work/base.yaml"
cat "$work/base.yaml" "$work/pipeline.yaml" >config.yaml
.build/debug/chatgate check-config config.yaml | tee "$work/check.log"
grep -q "acme.nocaps" "$work/check.log" || fail "check-config does not list acme.nocaps"

expected=$(grep -m1 -E '^config\.yaml:[0-9]+:[0-9]+: error: pipeline\[1\]\.settings\.max_caps_percent' docs/STAGES.md) || fail "the guide shows no error line"
sed -i 's/max_caps_percent: 60/max_caps_percent: 0/' config.yaml
if .build/debug/chatgate check-config config.yaml >"$work/bad.log" 2>&1; then fail "check-config accepted max_caps_percent: 0"; fi
grep -qxF "$expected" "$work/bad.log" || { cat "$work/bad.log"; fail "check-config did not print the guide's line: $expected"; }
echo "   $expected"
sed -i 's/max_caps_percent: 0/max_caps_percent: 60/; s/stage: acme.nocaps/stage: acme.nocap/' config.yaml
if .build/debug/chatgate check-config config.yaml >"$work/kind.log" 2>&1; then fail "check-config accepted the unknown kind acme.nocap"; fi
grep -q "did you mean 'acme.nocaps'" "$work/kind.log" || { cat "$work/kind.log"; fail "no suggestion for the unknown kind"; }
echo "   $(head -1 "$work/kind.log")"

step "4. serving the guide's pipeline with its Python webhook"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hook_port=$(free_port)
public_port=$(free_port)
admin_port=$(free_port)
export WEBHOOK_SECRET=doc-check-webhook-secret
PORT=$hook_port python3 moderation.py >"$work/moderation.log" 2>&1 &
pids+=($!)
{
  echo "node: { id: doc-check, worker_id: 1 }"
  echo "listen:"
  echo "  public: { host: 127.0.0.1, port: $public_port }"
  echo "  admin: { host: 127.0.0.1, port: $admin_port, token: doc-check-admin-token }"
  echo "store: { kind: sqlite, path: \"$work/chat.db\", durability: relaxed }"
  awk -v entry="$work/webhook-entry.yaml" '/^  - stage: id$/ { while ((getline line < entry) > 0) print line } { print }' "$work/pipeline.yaml" |
    sed "s#http://127.0.0.1:9000/#http://127.0.0.1:$hook_port/#"
} >"$work/serve.yaml"
.build/debug/chatgate check-config "$work/serve.yaml" | grep -q "(webhook)" || fail "the serve config has no webhook"
.build/debug/chatgate serve --config "$work/serve.yaml" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null || { cat "$work/serve.log"; fail "the gateway did not become ready"; }
alice=$(.build/debug/chatgate token alice -c "$work/serve.yaml")
bob=$(.build/debug/chatgate token bob -c "$work/serve.yaml")
send() { # token, body JSON, client_msg_id -> prints "status body"
  local status
  status=$(curl -sS -o "$work/answer.json" -w '%{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    --data "{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"body\":$2,\"client_msg_id\":\"$3\"}" "http://127.0.0.1:$public_port/v1/messages")
  echo "$status $(cat "$work/answer.json")"
}
answer=$(send "$alice" '"PLEASE READ THIS NOW"' d1)
[[ $answer == "400 "*'"x_shouting"'* ]] || fail "shouting was not refused with x_shouting: $answer"
echo "   shouting: $answer"
answer=$(send "$alice" '"cheap spam, click here"' d2)
[[ $answer == "400 "*'"x_spam"'* ]] || fail "the webhook did not refuse spam with x_spam: $answer"
echo "   spam: $answer"
answer=$(send "$alice" '"   hello bob   "' d3)
[[ $answer == "200 "*'"ack"'* ]] || fail "a normal message was not acknowledged: $answer"
echo "   normal: $answer"
synced=$(curl -fsS -H "Authorization: Bearer $bob" "http://127.0.0.1:$public_port/v1/sync?since=0")
[[ $synced == *'"body":"hello bob"'* ]] || fail "bob's inbox does not hold the message as the webhook rewrote it: $synced"
[[ $synced != *'PLEASE'* && $synced != *'spam'* ]] || fail "a refused message was stored: $synced"
echo "   bob's inbox: $synced"
