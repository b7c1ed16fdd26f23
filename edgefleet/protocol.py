"""What the ServerApps (server/) and ClientApps (client/) agree on beyond Flower's own keys: the names in a device's
config record, how a device that leaves a SecAgg+ round says so, and the records of the first message to a device
that holds its own data. Plain strings here, so that neither side imports the other."""

ADAPTIVE = "adaptive-clip"  # 1: report whether the update was clipped (adaptive clipping)
DEADLINE = "deadline-ms"  # the round's deadline on the device's own clock
FIELD_BYTES = "field-bytes"  # width of one SecAgg+ field element on the wire
LEFT = "edgefleet-device-left "  # prefix of the error reason of a device that left the round, then its telemetry

# The server's first message to a device that holds its own data (server/placement.py, client/app.py `hello`):
# its records, and the device's answer.
BUNDLE_MODEL = "model"  # ArrayRecord: the artifact's bytes under BUNDLE_ARTIFACT
BUNDLE_ARTIFACT = "artifact"
BUNDLE_DEPLOYMENT = "deployment"  # ConfigRecord: the run's config (BUNDLE_CONFIG) and the artifact's sha256
BUNDLE_CONFIG = "sim-config"
DEVICE = "device"  # the answer's ConfigRecord and its one key: the device id its storage holds
