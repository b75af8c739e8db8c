"""The egress log: a byte-exact copy of every message this site sends, for the hospital's audit.

A Flower mod around the ClientApp: after a handler has built its reply, the reply is split into the
objects Flower pushes to the SuperLink (the message, its records, arrays and array chunks), and each
object's bytes are written to `<egress_log>/<time>-<type>.objects` before the reply is handed back
to the SuperNode. `egress.jsonl` beside it lists every message: when, what type, which records,
array shapes, how many bytes, how long the site took to answer, and the CPU its ClientApp process
took to start. If the copy cannot be written, the reply is not sent.

File format of `.objects`: repeated [object id: 64 ASCII hex][length: 8 bytes big-endian][bytes].
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable

# Flower's own traversal of a message into the objects it pushes; the public surface has no other.
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents

from site_agent.federation.node_settings import site_settings


@dataclass(frozen=True)
class AnswerTiming:
    """How long the site took to answer: wall seconds, and CPU seconds of this process (all its
    threads), from the handler receiving the message to the reply. It tells an operator what a
    round costs the site, and the scale benchmark the sites' own work from Flower's."""

    wall_s: float
    cpu_s: float
    start_cpu_s: (
        float  # CPU seconds this ClientApp process spent before the handler: Flower starts one per message
    )


def record_egress(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    wall, cpu = time.perf_counter(), time.process_time()
    reply = call_next(message, context)
    timing = AnswerTiming(time.perf_counter() - wall, time.process_time() - cpu, cpu)
    folder = site_settings(context).federation.egress_log
    write_egress(folder, reply, timing)
    return reply


def write_egress(folder: Path, reply: Message, timing: AnswerTiming) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    kind = reply.metadata.message_type.replace(".", "-")
    path = folder / f"{stamp}-{kind}.objects"
    objects = get_all_nested_objects(reply)
    total = 0
    with path.open("xb") as fh:
        for object_id, obj in objects.items():
            data = obj.deflate()
            fh.write(object_id.encode("ascii") + struct.pack(">Q", len(data)) + data)
            total += len(data)
    summary = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "message_type": reply.metadata.message_type,
        "records": sorted(reply.content.keys()) if reply.has_content() else [],
        "arrays": {
            f"{name}.{key}": list(array.shape)
            for name, record in (reply.content.array_records.items() if reply.has_content() else [])
            for key, array in record.items()
        },
        "bytes": total,
        "file": path.name,
        "answer_s": round(timing.wall_s, 3),
        "answer_cpu_s": round(timing.cpu_s, 3),
        "start_cpu_s": round(timing.start_cpu_s, 3),
    }
    with (folder / "egress.jsonl").open("a") as fh:
        fh.write(json.dumps(summary) + "\n")
    return path


def read_egress(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (object id, bytes) from one `.objects` file."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        object_id = data[at : at + 64].decode("ascii")
        (length,) = struct.unpack(">Q", data[at + 64 : at + 72])
        yield object_id, data[at + 72 : at + 72 + length]
        at += 72 + length


def read_egress_message(path: Path) -> Message:
    """Rebuild the message of one `.objects` file, as the SuperLink would from the same bytes."""
    contents = dict(read_egress(path))
    root = list(contents)[-1]  # Flower lists children before their parent: the message is last
    message = inflate_object_from_contents(root, contents)
    if not isinstance(message, Message):
        raise ValueError(f"{path} does not hold a message")
    return message
