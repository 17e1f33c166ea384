#!/usr/bin/env python3
"""A data_collection plugin that appends one JSON line per call to config "record_file".

Each line lists the call's records: request id, body lengths, the solstice.truncated mark, and the
encoded size of the whole request as the plugin received it.
"""

from __future__ import annotations

import json
from typing import Any

from solstice.sdk import Plugin, pb, serve


class BatchRecorder(Plugin):
    name = "batch-recorder"
    version = "0.0.1"

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def data_collection(self, records: list[pb.ProxyRecord]) -> int:
        call = {
            "bytes": pb.DataCollectionRequest(records=records).ByteSize(),
            "records": [
                {
                    "id": r.context.request_id,
                    "request": len(r.request_body),
                    "response": len(r.response_body),
                    "metadata": dict(r.context.metadata),
                }
                for r in records
            ],
        }
        with open(self.config["record_file"], "a") as fh:
            fh.write(json.dumps(call) + "\n")
        return len(records)


if __name__ == "__main__":
    serve(BatchRecorder())
