# bedside: the pure core of the Bedside alarm controller (no `machine`, no clock reads).
# MIT license. Not a certified medical device.
VERSION = "0.1.0"
