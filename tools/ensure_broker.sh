#!/bin/sh
# The MQTT tests need a real broker: Debian's Mosquitto (tools/ensure_debs.sh). Where it cannot
# be had, install the pure-Python amqtt broker into its own directory (.venv/amqtt-broker: its
# pinned dependencies must not change the app's, e.g. websockets). Never fails the build: with
# neither broker the MQTT tests skip with a clear reason. Usage: sh tools/ensure_broker.sh PYTHON
PY="${1:-.venv/bin/python}"
AMQTT_VERSION="0.12.1"
DIR=".venv/amqtt-broker"
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
	exit 0
fi
[ -x "$DIR/bin/amqtt" ] && exit 0
echo "ensure_broker: no mosquitto; installing the amqtt $AMQTT_VERSION broker into $DIR" >&2
"$PY" -m pip install --quiet --target "$DIR" "amqtt==$AMQTT_VERSION" >/dev/null 2>&1 \
	|| echo "ensure_broker: could not install amqtt (the MQTT tests skip)" >&2
exit 0
