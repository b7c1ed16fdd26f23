"""What the secure ServerApp (server/secure.py) and ClientApp (client/secure.py) agree on beyond Flower's own keys:
the names in a device's config record, and how a device that leaves a SecAgg+ round says so. Plain strings here, so
that neither side imports the other."""

ADAPTIVE = "adaptive-clip"  # 1: report whether the update was clipped (adaptive clipping)
DEADLINE = "deadline-ms"  # the round's deadline on the device's own clock
FIELD_BYTES = "field-bytes"  # width of one SecAgg+ field element on the wire
LEFT = "edgefleet-device-left "  # prefix of the error reason of a device that left the round, then its telemetry
