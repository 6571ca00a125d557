#!/usr/bin/env bash
# `meson install --destdir TMP` installs exactly what an operator needs:
# anycached, anycachectl, the systemd unit and its sysusers entry, the man
# pages anycached(8), anycachectl(8), anycache.yaml(5) and the example
# configurations. Then the pieces are checked with their own tools:
#   mandoc -T lint   the man pages (and man -l renders them)
#   systemd-analyze verify   the unit (no systemd needs to run; any warning
#                    on stderr fails, since verify exits 0 on unknown keys);
#                    ExecStart/ExecReload are pointed at the installed
#                    binaries and MANPATH at the installed pages so the
#                    Documentation= lines resolve
#   systemd-analyze security --offline   exposure at most 2.5
#   anycached --check   every installed example loads (user: replaced by
#                    root: the anycache user need not exist here)
# Usage: test_install.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/anycache-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; exit 1; }
prefix=$(meson introspect "$build" --buildoptions |
	/usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root=$tmp/root$prefix
(cd "$tmp/root" && find . -type f | sort) >"$tmp/list"
echo "installed:"; sed 's/^/  /' "$tmp/list"

for f in sbin/anycached sbin/anycachectl lib/systemd/system/anycached.service \
	lib/sysusers.d/anycache.conf share/man/man8/anycached.8 share/man/man8/anycachectl.8 \
	share/man/man5/anycache.yaml.5 share/doc/anycache/examples/anycache.yaml \
	share/doc/anycache/examples/from-bind9-exabgp.yaml share/doc/anycache/examples/full.yaml; do
	[[ -f $root/$f ]] || bad "not installed: $prefix/$f"
done
for f in anycached anycachectl; do
	[[ -x $root/sbin/$f ]] || bad "$f is not executable"
done
"$root/sbin/anycached" --version | grep -q '^anycached ' || bad "installed anycached --version"

# Man pages.
for m in "$root"/share/man/man*/*; do
	if command -v mandoc >/dev/null; then
		mandoc -T lint -W warning "$m" >&2 || bad "mandoc -T lint $m"
	fi
	out=$(MANWIDTH=80 man -l "$m" 2>&1) || bad "man -l $m"
	grep -q "NAME" <<<"$out" || bad "man -l $m shows no NAME section"
done

# The unit.
if command -v systemd-analyze >/dev/null; then
	unit=$tmp/anycached.service
	sed -e "s#=$prefix/sbin/#=$root/sbin/#g" "$root/lib/systemd/system/anycached.service" >"$unit"
	grep -q "^ExecStart=$root/sbin/anycached -c " "$unit" || bad "ExecStart not as expected"
	grep -q "^ExecReload=$root/sbin/anycachectl -c .* reload$" "$unit" || bad "ExecReload"
	for k in Type=notify User=anycache NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
		'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
		'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK' 'SystemCallFilter=@system-service'; do
		grep -q "^$k" "$unit" || bad "unit lacks $k"
	done
	if ! MANPATH=$root/share/man systemd-analyze verify "$unit" >"$tmp/verify.out" 2>&1 ||
		[[ -s $tmp/verify.out ]]; then
		cat "$tmp/verify.out" >&2
		bad "systemd-analyze verify"
	fi
	score=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
		sed -n 's/.*Overall exposure level for anycached.service: \([0-9.]*\).*/\1/p')
	echo "systemd-analyze security: exposure ${score:-?}"
	[[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' || bad "exposure ${score:-unknown} > 2.5"
else
	echo "systemd-analyze not installed: unit not verified" >&2
fi

# Examples load (the user looked up is root's: `anycache` need not exist here).
for y in "$root"/share/doc/anycache/examples/*.yaml; do
	sed 's/^user: .*/user: root/' "$y" >"$tmp/ex.yaml"
	"$root/sbin/anycached" --check -c "$tmp/ex.yaml" >/dev/null 2>"$tmp/check.err" ||
		{ cat "$tmp/check.err" >&2; bad "example $(basename "$y") does not load"; }
done
exit $fail
