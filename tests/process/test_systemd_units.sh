#!/usr/bin/env bash
# The shipped systemd units (deploy/systemd) pass `systemd-analyze verify` (which needs no systemd as
# PID 1), with the service's ExecStart pointed at the built kqserver, and keep their hardening.
# systemd-analyze prints warnings (an unknown key, a bad value) yet exits 0, so any output fails too.
# Usage: test_systemd_units.sh SOURCE_DIR CONFIGURED_SERVICE KQSERVER
set -euo pipefail
src=$1 service=$2 kqserver=$3
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kq-units.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

sed -E "s|^ExecStart=[^ ]*/kqserver |ExecStart=$kqserver |" "$service" >"$work/kqserver.service"
grep -q "^ExecStart=$kqserver " "$work/kqserver.service" || fail "no ExecStart=.../kqserver line in $service"
cp "$src/deploy/systemd/kqserver.socket" "$src/deploy/systemd/kqserver-metrics.socket" "$work/"

for directive in Type=notify DynamicUser=yes NoNewPrivileges=yes LimitNOFILE= ProtectSystem=strict \
                 Requires=kqserver.socket; do
  grep -q "^$directive" "$work/kqserver.service" || fail "kqserver.service lacks $directive"
done
grep -q "^FileDescriptorName=metrics$" "$work/kqserver-metrics.socket" || fail "the metrics socket is not named metrics"

# The flags in ExecStart must be ones kqserver takes: --help accepts none of them, so run with them
# and --help appended, which CLI11 checks before printing the help.
read -r -a exec_args < <(sed -n 's/^ExecStart=//p' "$work/kqserver.service")
timeout 10 "${exec_args[@]}" --help >/dev/null || fail "kqserver refuses the flags of ExecStart: ${exec_args[*]}"

cd "$work"
out=$(timeout 60 systemd-analyze verify ./kqserver.service ./kqserver.socket ./kqserver-metrics.socket 2>&1) ||
  fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify warns: $out"
echo "PASS: the units verify clean"
