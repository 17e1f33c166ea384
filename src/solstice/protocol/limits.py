"""Sizes derived from the gRPC message cap: one data_collection call and the bodies of one record."""

from solstice.protocol.transport import MAX_MESSAGE_BYTES

# The most one DataCollection request may encode to. Records and config_id are counted exactly; the
# margin keeps gRPC's own framing, and fields a later protocol version adds, clear of the cap.
BATCH_BYTES = MAX_MESSAGE_BYTES - (4 << 20)
# What the request and response bodies of one proxy record may hold together (the settings refuse
# larger body limits), leaving the rest of a call to the record's context, metadata, path and model.
RECORD_BODY_BYTES = BATCH_BYTES - (4 << 20)
