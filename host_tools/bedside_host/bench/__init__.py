"""Bench-test harness: scripted scenarios (TOML, docs/scenarios.md) run against the firmware
core in virtual time, the SIL in real time, or a real Pico through USB-UART adapters; an
OpenHTF-like test record written as JSON, JUnit XML and an HTML test protocol (docs/bench.md).
Not a certified medical device: a verification aid, not a substitute for a clinic's own
acceptance testing."""

SIMULATOR = "bedside-bench"  # the simulator named in the test protocol (version: __version__)
