#!/bin/sh
# Install the Debian packages the tests drive for real (Chromium for the station page; the MQTT
# work adds its broker here), when missing and when we may (root with apt-get). Never fails the
# build: the tests that need a missing package skip with a clear reason.
# Not a certified medical device.
DEBS="chromium mosquitto"

missing=""
for p in $DEBS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure_debs: missing Debian packages:$missing (not root or no apt-get: their tests skip)" >&2
	exit 0
fi
echo "ensure_debs: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -qq >/dev/null 2>&1 || true
	apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
		|| echo "ensure_debs: could not install$missing (their tests skip)" >&2
fi
exit 0
