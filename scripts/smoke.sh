#!/usr/bin/env bash
# Smoke test of a queuectl program, as a user runs it: --version, enqueue, worker start
# --until-empty, status, logs; then a job that fails for good makes --until-empty exit non-zero.
#
# Usage: scripts/smoke.sh <queuectl program> [expected version]
#
# It runs in a fresh temporary directory with its own database, so a compiled binary cannot lean on
# the working directory or on files beside it. Works with bash 3.2 (macOS) and Git Bash (Windows).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <queuectl program> [expected version]" >&2
  exit 2
fi
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
expected="${2:-}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Native Windows programs need a Windows path in QUEUECTL_DB (Git Bash gives /tmp/...).
if command -v cygpath >/dev/null 2>&1; then work="$(cygpath -m "$work")"; fi
cd "$work"
export QUEUECTL_DB="$work/smoke.db" NO_COLOR=1

fail() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}
q() {
  echo "+ queuectl $*" >&2
  "$bin" "$@"
}

version="$(q --version)"
echo "$version"
[ -n "$version" ] || fail "--version printed nothing"
[ -z "$expected" ] || [ "$version" = "$expected" ] || fail "--version: '$version', expected '$expected'"

q enqueue '{"id":"smoke-1","command":"echo smoke-one"}'
q enqueue '{"id":"smoke-2","command":"echo smoke-two"}'
q worker start --count 2 --until-empty || fail "worker start --until-empty exited $? with nothing failing"

status="$(q status --json | tr -d ' \r\n')"
echo "$status"
case "$status" in
  *'"completed":2'*) ;;
  *) fail "status: expected 2 completed jobs" ;;
esac
logs="$(q logs smoke-2 | tr -d '\r')"
[ "$logs" = "smoke-two" ] || fail "logs smoke-2: '$logs', expected 'smoke-two'"

# A job that fails with no retry left ends in the DLQ, and --until-empty says so with its exit code.
q enqueue '{"id":"smoke-dead","command":"exit 3","max_retries":0}'
if q worker start --until-empty; then fail "worker start --until-empty exited 0 with a job in the DLQ"; fi
status="$(q status --json | tr -d ' \r\n')"
echo "$status"
case "$status" in
  *'"dead":1'*) ;;
  *) fail "status: expected 1 dead job" ;;
esac

echo "smoke: ok ($bin)"
