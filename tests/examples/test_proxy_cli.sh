#!/usr/bin/env bash
# kqproxy's flags: --help lists every one, a bad or missing one is one line on stderr and exit 2.
# Usage: test_proxy_cli.sh KQPROXY
set -uo pipefail
proxy=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
help=$(timeout 10 "$proxy" --help) || fail "--help exited with $?"
for flag in --host --port --workers --upstream --connect-timeout --idle-timeout; do
    grep -q -- "$flag" <<<"$help" || fail "--help does not list $flag"
done
expect_bad() {  # expect_bad PATTERN ARGS...: exit 2 and one stderr line matching PATTERN
    local pattern=$1; shift
    local err status
    err=$(timeout 10 "$proxy" "$@" 2>&1 >/dev/null); status=$?
    [[ $status -eq 2 ]] || fail "$* exited with $status, not 2"
    [[ $(wc -l <<<"$err") -eq 1 && $err == *"$pattern"* ]] || fail "$*: stderr was: $err"
}
expect_bad "--upstream is required"
expect_bad "expected HOST:PORT" --upstream 127.0.0.1
expect_bad "port must be 1..65535" --upstream 127.0.0.1:0
expect_bad "port must be 1..65535" --upstream 127.0.0.1:http
expect_bad "[ADDRESS]:PORT" --upstream ::1:80
expect_bad "no.such.host.invalid" --upstream no.such.host.invalid:80
expect_bad "connect-timeout" --upstream 127.0.0.1:80 --connect-timeout 0
expect_bad "workers" --upstream 127.0.0.1:80 --workers -1
echo "ok"
