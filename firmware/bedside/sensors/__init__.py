# sensors: wire-protocol decoders and drivers for the OEM modules (one module per format).
# Every oximeter decoder has the same shape (see nonin2.py, the model):
#   Decoder(reading, **options); feed(buf, n, now_ms) -> events; reset(); counters.
# Only the chosen format's module is imported (load_oximeter), to save RAM on the Pico.
from bedside.compat import const

EV_FRAME = const(1)  # at least one valid frame/packet/line was decoded
EV_READING = const(2)  # the OxiReading was completed/updated (values and flags)
EV_ERROR = const(4)  # bytes were rejected: checksum, structure, frame loss, overlong line

# format name -> (module, class). The one source of truth for the list of formats.
OXIMETER_FORMATS = {
    "nonin2": ("bedside.sensors.nonin2", "Nonin2Decoder"),
    "nonin7": ("bedside.sensors.nonin7", "Nonin7Decoder"),
    "nonin1": ("bedside.sensors.nonin1", "Nonin1Decoder"),
    "berrymed": ("bedside.sensors.berrymed", "BerryMedDecoder"),
    "masimo": ("bedside.sensors.masimo", "MasimoDecoder"),
}


def oximeter_module(fmt):
    """The decoder module for `fmt`: its FORMAT, BAUD (and PARITY, BITS) link settings."""
    try:
        modname, clsname = OXIMETER_FORMATS[fmt]
    except KeyError:
        raise ValueError("unknown oximeter format: %s" % fmt) from None
    return __import__(modname, None, None, [clsname])


def oximeter_link(settings):
    """(baud, bits, parity "N"/"E"/"O") for the oximeter UART from the settings in force:
    the format's documented link, or the oxi_baud setting where it is not 0."""
    mod = oximeter_module(settings["oxi_format"])
    baud = settings["oxi_baud"] or mod.BAUD
    return baud, getattr(mod, "BITS", 8), getattr(mod, "PARITY", "N")


def load_oximeter(fmt, reading, **options):
    """Build the decoder for `fmt` (a key of OXIMETER_FORMATS) around `reading`."""
    return getattr(oximeter_module(fmt), OXIMETER_FORMATS[fmt][1])(reading, **options)
