"""MQTT between rooms and clinics (docs/mqtt.md): the topic tree, the gateway at a chair's PC,
the subscribers (station feed, recorder). paho-mqtt is imported only by the modules that
connect (connection, gateway, subscriber, recorder)."""
