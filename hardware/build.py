#!/usr/bin/env python3
"""Generate the Bedside hardware artefacts from hardware/pinmap.json (the single source of truth).

Outputs:
  firmware/board/pins.py   MicroPython pin constants (plain ints; also imports on CPython)
  hardware/connections.md  connection tables per module, with signal levels
  hardware/wiring.svg      wiring diagram (byte-stable text; compared exactly by --check)
  hardware/wiring.png      raster of the same drawing (Pillow). The PNG carries the SHA-256 of
                           the SVG it was drawn from in a tEXt chunk; --check verifies that chunk
                           and the image size instead of the PNG bytes, because zlib/FreeType
                           builds differ between platforms.

Usage:
  python hardware/build.py            regenerate everything
  python hardware/build.py --check    exit 1, naming each stale file, if a committed file differs

Validation (RP2040 pin functions, duplicates, board-internal pins) runs first in both modes; any
error aborts with exit status 2. --check needs only the standard library; generating the PNG needs
Pillow (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import sys
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PINMAP = HERE / "pinmap.json"
PINS_PY = ROOT / "firmware" / "board" / "pins.py"
CONNECTIONS_MD = HERE / "connections.md"
WIRING_SVG = HERE / "wiring.svg"
WIRING_PNG = HERE / "wiring.png"

GENERATED_NOTE = "generated from hardware/pinmap.json by hardware/build.py; do not edit"

# ---------------------------------------------------------------------------------------------
# RP2040 / Raspberry Pi Pico facts (RP2040 datasheet GPIO function table; Pico datasheet pinout)
# ---------------------------------------------------------------------------------------------

#: GPIO usable on a Pico header. GP23 (SMPS mode), GP24 (VBUS sense), GP25 (LED) and GP29
#: (VSYS/3 ADC) are wired inside the board.
PICO_HEADER_GPIO = (*range(0, 23), 26, 27, 28)
PICO_INTERNAL_GPIO = (23, 24, 25, 29)

#: Physical Pico pin -> name.
PICO_PINS = {
    1: "GP0", 2: "GP1", 3: "GND", 4: "GP2", 5: "GP3", 6: "GP4", 7: "GP5", 8: "GND",
    9: "GP6", 10: "GP7", 11: "GP8", 12: "GP9", 13: "GND", 14: "GP10", 15: "GP11",
    16: "GP12", 17: "GP13", 18: "GND", 19: "GP14", 20: "GP15", 21: "GP16", 22: "GP17",
    23: "GND", 24: "GP18", 25: "GP19", 26: "GP20", 27: "GP21", 28: "GND", 29: "GP22",
    30: "RUN", 31: "GP26", 32: "GP27", 33: "AGND", 34: "GP28", 35: "ADC_VREF",
    36: "3V3(OUT)", 37: "3V3_EN", 38: "GND", 39: "VSYS", 40: "VBUS",
}  # fmt: skip


def pico_pin(gpio: int) -> int:
    """Physical header pin of a GPIO on a Raspberry Pi Pico."""
    for pin, name in PICO_PINS.items():
        if name == "GP%d" % gpio:
            return pin
    raise ValueError("GP%d is not on the Pico header" % gpio)


def uart_function(gpio: int) -> str | None:
    """UART function of a GPIO (RP2040 function F2): 'UART0 TX', 'UART1 RX', ... or None."""
    role = ("TX", "RX", "CTS", "RTS")[gpio % 4]
    inst = ((gpio + 4) // 8) % 2
    return "UART%d %s" % (inst, role)


def i2c_function(gpio: int) -> str:
    """I2C function of a GPIO (RP2040 function F3)."""
    return "I2C%d %s" % ((gpio // 2) % 2, "SDA" if gpio % 2 == 0 else "SCL")


def pwm_function(gpio: int) -> str:
    """PWM slice/channel of a GPIO (RP2040 function F4)."""
    return "PWM%d %s" % ((gpio // 2) % 8, "A" if gpio % 2 == 0 else "B")


def function_ok(gpio: int, function: str) -> bool:
    """True if `function` (as written in pinmap.json) is available on `gpio`."""
    if function in ("GPIO in", "GPIO out"):
        return True
    if function.startswith("UART"):
        return uart_function(gpio) == function
    if function.startswith("I2C"):
        return i2c_function(gpio) == function
    if function.startswith("PWM"):
        return pwm_function(gpio) == function
    return False


#: Signal names the firmware board layer imports (exact spelling is an interface).
REQUIRED_SIGNALS = (
    "OXI_TX", "OXI_RX", "NIBP_TX", "NIBP_RX", "SOUNDER_PWM", "SOUNDER_ENABLE",
    "LED_RED", "LED_YELLOW", "LED_CYAN", "LED_GREEN", "BTN_ACK", "BTN_CHECK", "BTN_NIBP",
    "I2C_SDA", "I2C_SCL", "BACKUP_HEARTBEAT", "HIL_LOOP_TX", "HIL_LOOP_RX",
)  # fmt: skip
REQUIRED_BUS_CONSTANTS = ("OXI_UART_ID", "NIBP_UART_ID", "I2C_ID")
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def load(path: Path = PINMAP) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validate(pm: dict) -> list[str]:
    """Return a list of human-readable errors (empty if the pin map is valid)."""
    errors: list[str] = []
    modules = {m["id"] for m in pm.get("modules", [])}
    seen_gpio: dict[int, str] = {}
    names: set[str] = set()
    signals = pm.get("signals", [])
    for s in signals:
        name, gpio, func = s.get("name", "?"), s.get("gpio"), s.get("function", "")
        if not NAME_RE.match(name):
            errors.append("%s: not an UPPER_CASE identifier" % name)
        if name in names:
            errors.append("%s: signal defined twice" % name)
        names.add(name)
        for key in ("direction", "level", "module", "module_pin", "function"):
            if not s.get(key):
                errors.append("%s: missing %r" % (name, key))
        if not isinstance(gpio, int) or isinstance(gpio, bool):
            errors.append("%s: gpio must be an int" % name)
            continue
        if gpio in PICO_INTERNAL_GPIO:
            errors.append("%s: GP%d is used inside the Pico board" % (name, gpio))
        elif gpio not in PICO_HEADER_GPIO:
            errors.append("%s: GP%d does not exist on a Pico" % (name, gpio))
        elif not function_ok(gpio, func):
            errors.append("%s: GP%d cannot be %r" % (name, gpio, func))
        if gpio in seen_gpio:
            errors.append("%s: GP%d already used by %s" % (name, gpio, seen_gpio[gpio]))
        seen_gpio[gpio] = name
        if s.get("direction") not in ("in", "out", "bidir"):
            errors.append("%s: direction must be in/out/bidir" % name)
        if s.get("module") not in modules:
            errors.append("%s: unknown module %r" % (name, s.get("module")))
    for req in REQUIRED_SIGNALS:
        if req not in names:
            errors.append("required signal %s missing" % req)
    by_name = {s["name"]: s for s in signals}
    bus_consts = set()
    for b in pm.get("buses", []):
        const, periph = b["constant"], b["peripheral"]
        bus_consts.add(const)
        m = re.match(r"^(UART|I2C)([01])$", periph)
        if not m:
            errors.append("%s: bad peripheral %r" % (const, periph))
            continue
        for sig in b["signals"]:
            s = by_name.get(sig)
            if s is None:
                errors.append("%s: unknown signal %s" % (const, sig))
            elif not s["function"].startswith(periph + " "):
                errors.append("%s: %s is %r, not on %s" % (const, sig, s["function"], periph))
    for req in REQUIRED_BUS_CONSTANTS:
        if req not in bus_consts:
            errors.append("required constant %s missing" % req)
    const_names = [c["name"] for c in pm.get("constants", [])]
    for c in const_names + sorted(bus_consts):
        if c in names:
            errors.append("%s: constant clashes with a signal name" % c)
    for g in pm.get("spare_gpio", []):
        if g in seen_gpio:
            errors.append("spare GP%d is used by %s" % (g, seen_gpio[g]))
        if g not in PICO_HEADER_GPIO:
            errors.append("spare GP%d is not a Pico header GPIO" % g)
    return errors


def bus_id(periph: str) -> int:
    return int(periph[-1])


# ---------------------------------------------------------------------------------------------
# firmware/board/pins.py
# ---------------------------------------------------------------------------------------------


def render_pins_py(pm: dict) -> str:
    sig = {s["name"]: s for s in pm["signals"]}
    mod_name = {m["id"]: m["name"] for m in pm["modules"]}
    out = [
        "# " + GENERATED_NOTE,
        "# Bedside board pin map: %s. Every GPIO is 3.3 V and NOT 5 V tolerant." % pm["board"],
        "# Plain ints (no micropython.const) so the module also imports on CPython.",
        "# Baud rates are firmware settings, not pins: see hardware/connections.md.",
        "",
    ]
    emitted: set[str] = set()
    for b in pm["buses"]:
        out.append("# %s: %s" % (b["peripheral"], mod_name[b["module"]]))
        out.append("%s = %d" % (b["constant"], bus_id(b["peripheral"])))
        for name in b["signals"]:
            s = sig[name]
            out.append(
                "%s = %d  # GP%d, pin %d, %s"
                % (name, s["gpio"], s["gpio"], pico_pin(s["gpio"]), s["function"])
            )
            emitted.add(name)
        out.append("")
    out.append("# Other signals")
    for s in sorted(pm["signals"], key=lambda s: s["gpio"]):
        if s["name"] in emitted:
            continue
        out.append(
            "%s = %d  # GP%d, pin %d, %s, %s"
            % (
                s["name"],
                s["gpio"],
                s["gpio"],
                pico_pin(s["gpio"]),
                s["function"],
                s["module_pin"],
            )
        )
    out.append("")
    out.append("# Board constants")
    for c in pm["constants"]:
        val = ("0x%02X" % c["value"]) if c.get("format") == "hex" else str(c["value"])
        out.append("# " + c["doc"])
        out.append("%s = %s" % (c["name"], val))
    out.append("")
    out.append("# (name, gpio) of every wired signal, for self-test and HIL code")
    out.append("SIGNALS = (")
    for s in sorted(pm["signals"], key=lambda s: s["gpio"]):
        out.append('    ("%s", %d),' % (s["name"], s["gpio"]))
    out.append(")")
    out.append("SPARE_GPIO = (%s)" % ", ".join("%d" % g for g in pm["spare_gpio"]))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# hardware/connections.md
# ---------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_connections_md(pm: dict) -> str:
    sigs = sorted(pm["signals"], key=lambda s: pico_pin(s["gpio"]))
    L = [
        "<!-- " + GENERATED_NOTE + " -->",
        "# Bedside controller connections",
        "",
        "Board: %s. **Not a certified medical device.**" % pm["board"],
        "",
        "> **Every Pico GPIO is 3.3 V and NOT 5 V tolerant. RS-232 levels (+/-5..15 V) destroy "
        "it.** Measure a module's idle TXD voltage before wiring it to an RX pin.",
        "",
        "Rows marked UNCONFIRMED are not stated by a primary source; verify on the real module "
        "before first power-up. Baud rates are firmware settings (defaults shown).",
        "",
        "## All wired GPIO (by physical pin)",
        "",
        "| Pico pin | GPIO | Signal | Function | Dir | Level | Module | Module pin | Notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    mod_name = {m["id"]: m["name"] for m in pm["modules"]}
    for s in sigs:
        L.append(
            "| %d | GP%d | `%s` | %s | %s | %s | %s | %s | %s |"
            % (
                pico_pin(s["gpio"]),
                s["gpio"],
                s["name"],
                s["function"],
                s["direction"],
                _cell(s["level"]),
                _cell(mod_name[s["module"]]),
                _cell(s["module_pin"]),
                _cell(s["notes"]),
            )
        )
    L += ["", "Constants in firmware/board/pins.py:", ""]
    for b in pm["buses"]:
        L.append(
            "- `%s = %d` (%s: %s)"
            % (
                b["constant"],
                bus_id(b["peripheral"]),
                b["peripheral"],
                ", ".join("`%s`" % x for x in b["signals"]),
            )
        )
    for c in pm["constants"]:
        val = ("0x%02X" % c["value"]) if c.get("format") == "hex" else str(c["value"])
        L.append("- `%s = %s`: %s" % (c["name"], val, c["doc"]))
    L += ["", "## Per module", ""]
    for m in pm["modules"]:
        L += ["### %s" % m["name"], ""]
        L.append("- Interface: %s" % m["interface"])
        L.append("- Level: %s" % m["level"])
        L.append("- Interface circuit: %s" % m["interface_circuit"])
        L.append("")
        if m.get("variants"):
            L.append("| Module | Link | Electrical level | Fit on the board | Status |")
            L.append("|---|---|---|---|---|")
            for v in m["variants"]:
                L.append(
                    "| %s | %s | %s | %s | %s |"
                    % tuple(_cell(v[k]) for k in ("name", "link", "level", "fit", "status"))
                )
            L.append("")
        L.append("| Signal | GPIO | Pico pin | Function | Dir | Level | Module pin |")
        L.append("|---|---|---|---|---|---|---|")
        for s in sigs:
            if s["module"] != m["id"]:
                continue
            L.append(
                "| `%s` | GP%d | %d | %s | %s | %s | %s |"
                % (
                    s["name"],
                    s["gpio"],
                    pico_pin(s["gpio"]),
                    s["function"],
                    s["direction"],
                    _cell(s["level"]),
                    _cell(s["module_pin"]),
                )
            )
        L.append("")
    L += ["## Power", "", "| Pico pin | Net | Connects | Notes |", "|---|---|---|---|"]
    for p in pm["power"]:
        pins = ", ".join(str(n) for n, nm in PICO_PINS.items() if nm == p["pico_pin_name"])
        L.append(
            "| %s (%s) | %s | %s | %s |"
            % (p["pico_pin_name"], pins, p["net"], _cell(p["connects"]), _cell(p["notes"]))
        )
    L += [
        "",
        "## Spare GPIO",
        "",
        ", ".join("GP%d (pin %d)" % (g, pico_pin(g)) for g in pm["spare_gpio"]) + ".",
        "",
        pm.get("spare_notes", ""),
        "",
        "Never wire GP23, GP24, GP25 or GP29: they are used inside the Pico board.",
        "",
    ]
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------
# Wiring diagram: a tiny display list rendered to SVG (text) and PNG (Pillow)
# ---------------------------------------------------------------------------------------------

FONT_FAMILY = "Aileron, Helvetica, Arial, sans-serif"


class Drawing:
    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.items: list[tuple] = []

    def rect(self, x, y, w, h, fill="#ffffff", stroke="#000000", sw=2, rx=6):
        self.items.append(("rect", int(x), int(y), int(w), int(h), fill, stroke, int(sw), int(rx)))

    def line(self, pts, color="#000000", sw=2):
        self.items.append(("line", tuple((int(a), int(b)) for a, b in pts), color, int(sw)))

    def circle(self, x, y, r, fill="#000000", stroke="#000000"):
        self.items.append(("circle", int(x), int(y), int(r), fill, stroke))

    def text(self, x, y, s, size=13, anchor="start", color="#000000", bold=False):
        self.items.append(("text", int(x), int(y), str(s), int(size), anchor, color, bool(bold)))

    # -- SVG ------------------------------------------------------------------------------------
    def to_svg(self) -> str:
        o = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "<!-- %s -->" % GENERATED_NOTE,
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family="%s">' % (self.width, self.height, self.width, self.height, FONT_FAMILY),
        ]
        for it in self.items:
            kind = it[0]
            if kind == "rect":
                _, x, y, w, h, fill, stroke, sw, rx = it
                o.append(
                    '<rect x="%d" y="%d" width="%d" height="%d" rx="%d" fill="%s" '
                    'stroke="%s" stroke-width="%d"/>' % (x, y, w, h, rx, fill, stroke, sw)
                )
            elif kind == "line":
                _, pts, color, sw = it
                o.append(
                    '<polyline points="%s" fill="none" stroke="%s" stroke-width="%d" '
                    'stroke-linejoin="round"/>' % (" ".join("%d,%d" % p for p in pts), color, sw)
                )
            elif kind == "circle":
                _, x, y, r, fill, stroke = it
                o.append(
                    '<circle cx="%d" cy="%d" r="%d" fill="%s" stroke="%s"/>'
                    % (x, y, r, fill, stroke)
                )
            elif kind == "text":
                _, x, y, s, size, anchor, color, bold = it
                o.append(
                    '<text x="%d" y="%d" font-size="%d" text-anchor="%s" '
                    'dominant-baseline="central" fill="%s"%s>%s</text>'
                    % (x, y, size, anchor, color, ' font-weight="bold"' if bold else "", escape(s))
                )
        o.append("</svg>")
        return "\n".join(o) + "\n"

    # -- PNG ------------------------------------------------------------------------------------
    def to_png(self, path: Path, svg_sha: str) -> None:
        from PIL import Image, ImageDraw, ImageFont
        from PIL.PngImagePlugin import PngInfo

        img = Image.new("RGB", (self.width, self.height), "#ffffff")
        d = ImageDraw.Draw(img)
        fonts: dict[int, object] = {}

        def font(size):
            if size not in fonts:
                fonts[size] = ImageFont.load_default(size=size)
            return fonts[size]

        for it in self.items:
            kind = it[0]
            if kind == "rect":
                _, x, y, w, h, fill, stroke, sw, rx = it
                d.rounded_rectangle(
                    (x, y, x + w, y + h), radius=rx, fill=fill, outline=stroke, width=sw
                )
            elif kind == "line":
                _, pts, color, sw = it
                d.line(list(pts), fill=color, width=sw, joint="curve")
            elif kind == "circle":
                _, x, y, r, fill, stroke = it
                d.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=stroke)
            elif kind == "text":
                _, x, y, s, size, anchor, color, bold = it
                a = {"start": "lm", "middle": "mm", "end": "rm"}[anchor]
                d.text(
                    (x, y),
                    s,
                    font=font(size),
                    fill=color,
                    anchor=a,
                    # faux bold only for large text: at small sizes it smears digits
                    stroke_width=1 if bold and size >= 18 else 0,
                    stroke_fill=color,
                )
        info = PngInfo()
        info.add_text("Source", GENERATED_NOTE)
        info.add_text("svg-sha256", svg_sha)
        img.save(path, format="PNG", pnginfo=info, optimize=False, compress_level=9)


WIRE_COLORS = {
    "UART": "#1f5fbf",
    "I2C": "#7b3fa0",
    "PWM": "#d46a00",
    "GPIO in": "#2e7d32",
    "GPIO out": "#333333",
    "power": "#c62828",
    "gnd": "#000000",
}
LED_FILL = {
    "LED_RED": "#e53935",
    "LED_YELLOW": "#fdd835",
    "LED_CYAN": "#00bcd4",
    "LED_GREEN": "#43a047",
}


def _wire_color(func: str) -> str:
    for k in ("UART", "I2C", "PWM"):
        if func.startswith(k):
            return WIRE_COLORS[k]
    return WIRE_COLORS.get(func, "#333333")


# Layout constants (pixels)
W, H = 1900, 1330
PICO_X, PICO_W = 820, 260
PICO_TOP = 250
ROW = 44
IF_X, IF_W = 410, 190  # left interface boxes
MOD_X, MOD_W = 20, 340  # left module boxes
R_IF_X = PICO_X + PICO_W + 220  # right interface boxes
R_MOD_X = R_IF_X + 240


def pin_xy(pin: int) -> tuple[int, int]:
    """Coordinates of the header pad of a physical Pico pin."""
    if pin <= 20:
        return PICO_X, PICO_TOP + 40 + (pin - 1) * ROW
    return PICO_X + PICO_W, PICO_TOP + 40 + (40 - pin) * ROW


def build_drawing(pm: dict) -> Drawing:
    d = Drawing(W, H)
    sig_by_gpio = {s["gpio"]: s for s in pm["signals"]}
    by_mod: dict[str, list[dict]] = {}
    for s in pm["signals"]:
        by_mod.setdefault(s["module"], []).append(s)

    d.text(
        W // 2,
        28,
        "Bedside controller wiring (%s)" % pm["board"],
        size=24,
        anchor="middle",
        bold=True,
    )
    d.text(
        W // 2,
        58,
        GENERATED_NOTE + ". Not a certified medical device.",
        size=14,
        anchor="middle",
        color="#555555",
    )

    # USB chain at the top
    ux = PICO_X + PICO_W // 2
    d.rect(ux - 110, 95, 220, 60, fill="#fff8e1")
    d.text(ux, 113, "USB isolator", size=15, anchor="middle", bold=True)
    d.text(ux, 137, "ADuM3160/4160 (barrier)", size=13, anchor="middle")
    d.rect(ux + 250, 95, 250, 60, fill="#eeeeee")
    d.text(ux + 375, 113, "Host PC (mains powered)", size=14, anchor="middle", bold=True)
    d.text(ux + 375, 137, "bedside host tools", size=13, anchor="middle")
    d.line([(ux + 110, 125), (ux + 250, 125)], color="#555555", sw=3)
    d.text(ux + 180, 112, "USB", size=12, anchor="middle")
    d.line([(ux, 155), (ux, PICO_TOP)], color="#555555", sw=3)
    d.text(ux + 8, 200, "isolated USB (data + VBUS)", size=12)

    # Pico body
    body_h = 40 + 19 * ROW + 40
    d.rect(PICO_X, PICO_TOP, PICO_W, body_h, fill="#2e7d32", stroke="#1b5e20", sw=3, rx=12)
    d.rect(ux - 30, PICO_TOP - 12, 60, 24, fill="#bdbdbd", stroke="#616161", rx=3)
    d.text(
        ux,
        PICO_TOP + body_h // 2 - 16,
        "Raspberry Pi",
        size=18,
        anchor="middle",
        color="#ffffff",
        bold=True,
    )
    d.text(
        ux,
        PICO_TOP + body_h // 2 + 10,
        "Pico H",
        size=18,
        anchor="middle",
        color="#ffffff",
        bold=True,
    )
    d.text(
        ux,
        PICO_TOP + body_h // 2 + 34,
        "RP2040, 3.3 V I/O",
        size=13,
        anchor="middle",
        color="#ffffff",
    )
    for pin, name in PICO_PINS.items():
        x, y = pin_xy(pin)
        used = name.startswith("GP") and int(name[2:]) in sig_by_gpio
        fill = "#ffd54f" if used else ("#212121" if "GND" in name else "#e0e0e0")
        d.circle(x, y, 7, fill=fill, stroke="#000000")
        label = "%d %s" % (pin, name)
        if pin <= 20:
            d.text(x + 14, y, label, size=13, color="#ffffff", bold=used)
        else:
            d.text(
                x - 14, y, "%s %d" % (name, pin), size=13, anchor="end", color="#ffffff", bold=used
            )

    def wire_label(x1, x2, y, s, color):
        d.text(
            (x1 + x2) // 2,
            y - 11,
            "GP%d  %s" % (s["gpio"], s["name"]),
            size=13,
            anchor="middle",
            color=color,
            bold=True,
        )

    def module_box(x, w, rows_y, title, lines, fill, pad=20):
        top = min(rows_y) - pad
        bottom = max(rows_y) + pad
        h = max(bottom - top, 30 + 16 * len(lines))
        d.rect(x, top, w, h, fill=fill)
        d.text(x + 10, top + 14, title, size=14, bold=True)
        for i, ln in enumerate(lines):
            d.text(x + 10, top + 32 + 15 * i, ln, size=12, color="#333333")
        return top, h

    # ---- left side: module <- interface <- Pico --------------------------------------------
    left_groups = [
        (
            "oximeter",
            "Pulse oximeter OEM",
            ["Nonin OEM III / BerryMed", "Masimo Rad-8 (RS-232)"],
            "J_OXI level option",
            ["direct 3.3 V, 2x LVC1T45,", "or MAX3232 (Rad-8)"],
            "#e3f2fd",
        ),
        ("display", "SSD1306 OLED 128x64", ["I2C addr 0x3C, 3V3 powered"], None, None, "#f3e5f5"),
        (
            "nibp",
            "SunTech Advantage NIBP",
            ["level UNCONFIRMED:", "measure before wiring"],
            "J_NIBP level option",
            ["LVC1T45 pair OR", "MAX3232 (fit one)"],
            "#e3f2fd",
        ),
        (
            "buttons",
            "Front-panel buttons",
            ["switch to GND, active low"],
            "RC per input",
            ["1 k series, 100 nF to GND"],
            "#e8f5e9",
        ),
        (
            "leds",
            "Alarm / status LEDs",
            ["behind light pipes, 4 m", "anodes to +5 V via R"],
            "4x 2N7002 low-side",
            ["gate 100 k pull-down"],
            "#fffde7",
        ),
        (
            "sounder",
            "PAM8302A + speaker",
            ["class-D amp, +5 V", "8 ohm speaker to nurse"],
            "audio input network",
            ["trim, RC 1k/10n, 1 uF", "SD: direct"],
            "#fff3e0",
        ),
    ]
    for mid, title, lines, iftitle, iflines, fill in left_groups:
        sigs = sorted(by_mod.get(mid, []), key=lambda s: s["gpio"])
        ys = [pin_xy(pico_pin(s["gpio"]))[1] for s in sigs]
        _top, _h = module_box(MOD_X, MOD_W, ys, title, lines, fill)
        if iftitle:
            module_box(IF_X, IF_W, ys, iftitle, iflines, "#fafafa")
        for s, y in zip(sigs, ys):
            color = _wire_color(s["function"])
            x_end = IF_X + IF_W if iftitle else MOD_X + MOD_W
            d.line([(x_end, y), (PICO_X, y)], color=color, sw=3)
            wire_label(x_end, PICO_X, y, s, color)
            if iftitle:
                d.line([(MOD_X + MOD_W, y), (IF_X, y)], color=color, sw=3)
            pin_txt = s["module_pin"].split(" (")[0].split(" via")[0].split(" /")[0]
            if mid == "leds":
                d.circle(MOD_X + MOD_W - 16, y, 8, fill=LED_FILL.get(s["name"], "#ffffff"))
                pin_txt = s["name"].split("_", 1)[1].lower()
                d.text(MOD_X + MOD_W - 30, y, pin_txt, size=12, anchor="end")
            else:
                d.text(MOD_X + MOD_W - 8, y, pin_txt, size=12, anchor="end")
            arrow = {"in": "<", "out": ">", "bidir": "<>"}[s["direction"]]
            d.text(PICO_X - 20, y + 11, arrow, size=12, anchor="middle", color=color)

    # ---- right side: Pico -> interface -> module --------------------------------------------
    def right_wire(pin, label, color, to_x):
        x, y = pin_xy(pin)
        d.line([(x, y), (to_x, y)], color=color, sw=3)
        d.text((x + to_x) // 2, y - 11, label, size=13, anchor="middle", color=color, bold=True)
        return y

    # power
    y_vsys = pin_xy(39)[1]
    y_gnd = pin_xy(38)[1]
    y_3v3 = pin_xy(36)[1]
    right_wire(39, "VSYS  +5V_SYS", WIRE_COLORS["power"], R_IF_X)
    right_wire(38, "GND", WIRE_COLORS["gnd"], R_MOD_X)
    d.rect(R_IF_X, y_vsys - 16, 150, 32, fill="#fafafa")
    d.text(R_IF_X + 75, y_vsys, "D1 1N5817", size=12, anchor="middle")
    d.line([(R_IF_X + 150, y_vsys), (R_MOD_X, y_vsys)], color=WIRE_COLORS["power"], sw=3)
    module_box(
        R_MOD_X,
        300,
        [y_vsys, y_gnd],
        "Medical 5 V adapter",
        ["IEC 60601-1 2xMOPP, >= 2 A", "+5V_SYS also: LEDs, amp, backup"],
        "#ffebee",
    )
    right_wire(36, "3V3(OUT)  +3V3", WIRE_COLORS["power"], R_MOD_X)
    module_box(
        R_MOD_X,
        300,
        [y_3v3 + 10],
        "+3V3 rail (< 100 mA)",
        ["OLED, LVC1T45 A-side, MAX3232"],
        "#ffebee",
    )

    # backup sounder
    hb = next(s for s in pm["signals"] if s["module"] == "backup")
    y = right_wire(
        pico_pin(hb["gpio"]),
        "GP%d  %s" % (hb["gpio"], hb["name"]),
        _wire_color(hb["function"]),
        R_IF_X,
    )
    module_box(R_IF_X, 200, [y], "AC coupling", ["100 nF, edges only"], "#fafafa")
    d.line([(R_IF_X + 200, y), (R_MOD_X, y)], color=_wire_color(hb["function"]), sw=3)
    module_box(
        R_MOD_X,
        340,
        [y - 12, y + 40],
        "Backup sounder (independent)",
        [
            "TLC556 missing-pulse detector",
            "+ piezo; 1 F supercap from +5V_SYS",
            "sounds >= 120 s if heartbeat stops",
        ],
        "#fce4ec",
    )

    # HIL jumper
    hil = sorted(by_mod.get("hil", []), key=lambda s: s["gpio"])
    ys = []
    for s in hil:
        ys.append(
            right_wire(
                pico_pin(s["gpio"]),
                "GP%d  %s" % (s["gpio"], s["name"]),
                _wire_color(s["function"]),
                R_IF_X + 60,
            )
        )
    if ys:
        jx = R_IF_X + 60
        d.rect(jx - 8, min(ys) - 14, 16, max(ys) - min(ys) + 28, fill="#424242", rx=4)
        module_box(
            jx + 40, 300, ys, "J_HIL loopback jumper", ["fit only for HIL UART tests"], "#eceff1"
        )

    spare = ", ".join("GP%d" % g for g in pm["spare_gpio"])
    # legend / notes
    ly = PICO_TOP + body_h + 40
    d.text(30, ly, "Legend:", size=14, bold=True)
    x = 110
    for label, key in (
        ("UART", "UART"),
        ("I2C", "I2C"),
        ("PWM", "PWM"),
        ("GPIO in", "GPIO in"),
        ("GPIO out", "GPIO out"),
        ("power", "power"),
    ):
        d.line([(x, ly), (x + 40, ly)], color=WIRE_COLORS[key], sw=4)
        d.text(x + 48, ly, label, size=13)
        x += 140
    d.text(x + 20, ly, "> out of Pico   < into Pico   yellow pad = wired", size=13)
    notes = [
        "Every Pico GPIO is 3.3 V and NOT 5 V tolerant; RS-232 levels destroy it. Measure each "
        "module's idle TXD voltage before connecting it.",
        "All grounds common (star point near the Pico). The oximeter and NIBP are the applied "
        "parts; the PC link must pass through the USB isolator.",
        "Spare GPIO: %s. Never wire GP23/24/25/29 (used inside the Pico)." % spare,
    ]
    for i, n in enumerate(notes):
        d.text(30, ly + 30 + 22 * i, n, size=13)
    return d


# ---------------------------------------------------------------------------------------------
# PNG helpers (standard library only, used by --check)
# ---------------------------------------------------------------------------------------------


def png_info(data: bytes) -> tuple[tuple[int, int], dict[str, str]]:
    """(width, height) and tEXt chunks of a PNG file."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, size, texts = 8, (0, 0), {}
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if ctype == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif ctype == b"tEXt":
            k, _, v = body.partition(b"\x00")
            texts[k.decode("latin-1")] = v.decode("latin-1")
        elif ctype == b"zTXt":
            k, _, v = body.partition(b"\x00")
            texts[k.decode("latin-1")] = zlib.decompress(v[1:]).decode("latin-1")
        elif ctype == b"IEND":
            break
        pos += 12 + n
    return size, texts


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def text_outputs(pm: dict) -> dict[Path, str]:
    return {
        PINS_PY: render_pins_py(pm),
        CONNECTIONS_MD: render_connections_md(pm),
        WIRING_SVG: build_drawing(pm).to_svg(),
    }


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def check(pm: dict) -> list[str]:
    """Names (with reasons) of stale or missing generated files."""
    stale = []
    outs = text_outputs(pm)
    for path, text in outs.items():
        if not path.exists():
            stale.append("%s: missing" % rel(path))
        elif path.read_text(encoding="utf-8") != text:
            stale.append("%s: differs from what build.py generates" % rel(path))
    svg_sha = hashlib.sha256(outs[WIRING_SVG].encode("utf-8")).hexdigest()
    if not WIRING_PNG.exists():
        stale.append("%s: missing" % rel(WIRING_PNG))
    else:
        try:
            size, texts = png_info(WIRING_PNG.read_bytes())
        except ValueError as e:
            stale.append("%s: %s" % (rel(WIRING_PNG), e))
        else:
            if texts.get("svg-sha256") != svg_sha:
                stale.append("%s: not rendered from the current wiring.svg" % rel(WIRING_PNG))
            elif size != (W, H):
                stale.append("%s: wrong size %dx%d" % (rel(WIRING_PNG), *size))
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a committed generated file is stale (writes nothing)",
    )
    args = ap.parse_args(argv)
    pm = load()
    errors = validate(pm)
    if errors:
        for e in errors:
            print("pinmap.json: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        stale = check(pm)
        for s in stale:
            print("stale: %s (run: .venv/bin/python hardware/build.py)" % s, file=sys.stderr)
        if not stale:
            print("hardware: generated files are up to date")
        return 1 if stale else 0
    outs = text_outputs(pm)
    for path, text in outs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
            print("wrote %s" % rel(path))
    svg_sha = hashlib.sha256(outs[WIRING_SVG].encode("utf-8")).hexdigest()
    old_png = WIRING_PNG.read_bytes() if WIRING_PNG.exists() else b""
    build_drawing(pm).to_png(WIRING_PNG, svg_sha)  # always redraw: PNG-only code may change
    if WIRING_PNG.read_bytes() != old_png:
        print("wrote %s" % rel(WIRING_PNG))
    return 0


if __name__ == "__main__":
    sys.exit(main())
