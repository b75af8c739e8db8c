"""The Flower side of a round's phase: send one message to each site, collect and unpack replies.

The round runner decides what a reply means; this module only moves messages. Every message has a
TTL and every collection a deadline, so no wait is unbounded. Flower's own errors (a site offline,
a crashed ClientApp, an expired message) become a sentence the report can show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from shared.errors import FedsynthError
from shared.federation.messages import SiteAnswer, read_reply

POLL_S = 1.0
TTL_MARGIN_S = 60.0  # a message outlives its phase's deadline, so a late site gets "no answer", not a TTL
FLOWER_ERRORS = {
    # Flower: the SuperLink no longer holds the message. Seen for a reply whose push failed under
    # load (bench.scale), not only for a message that outlived its TTL.
    3: "the SuperLink lost the message or its reply (expired, or a failed push)",
    4: "the site's reply was lost or expired",
    5: "the site went offline during the round",
    8: "the site agent crashed while answering",
    2: "the site agent raised an error while answering",
    1: "the site agent could not load its app",
}


@dataclass(frozen=True)
class Reply:
    """One site's reply, unpacked, or why there is none (`answer` None, `error` the reason).

    `site_id` is the name the site was asked under, except in an unauthenticated round, where a
    site can only be known by the name it gives itself in its reply."""

    node_id: int
    site_id: str
    answer: SiteAnswer | None
    error: str = ""


@dataclass(frozen=True)
class Outgoing:
    message_type: str
    content: RecordDict
    timeout_s: float


def exchange(
    grid: Grid,
    nodes: dict[int, str],
    outgoing: Outgoing,
    *,
    authenticated: bool,
    on_reply: Callable[[Reply], None],
    on_progress: Callable[[int, int], None],
) -> None:
    """Send `outgoing` to each node (node id -> site id) and hand every reply to `on_reply` as it
    arrives, until all have answered or the timeout has passed; the rest are handed over as missing.
    `on_progress(answered, asked)` is called after every poll."""
    timeout_s = outgoing.timeout_s
    messages = [
        Message(
            outgoing.content,
            dst_node_id=node,
            message_type=outgoing.message_type,
            ttl=timeout_s + TTL_MARGIN_S,
        )
        for node in nodes
    ]
    sent = dict(zip(grid.push_messages(messages), nodes, strict=True))
    pending = dict(sent)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(list(pending)):
            node = pending.pop(reply.metadata.reply_to_message_id, None)
            if node is not None:
                on_reply(_unpack(node, nodes[node], reply, authenticated=authenticated))
        on_progress(len(sent) - len(pending), len(sent))
        if pending:
            time.sleep(POLL_S)
    for node in pending.values():
        on_reply(Reply(node, nodes[node], None, f"no answer within {timeout_s:.0f} s"))


def _unpack(node: int, site: str, reply: Message, *, authenticated: bool) -> Reply:
    if reply.has_error():
        code = int(reply.error.code)
        return Reply(node, site, None, FLOWER_ERRORS.get(code, f"Flower error {code}"))
    try:
        answer = read_reply(reply.content)
    except FedsynthError as exc:
        return Reply(node, site, None, f"unreadable reply: {exc}")
    claimed = None if authenticated else _claimed_site(answer)
    return Reply(node, claimed or site, answer)


def _claimed_site(answer: SiteAnswer) -> str | None:
    for doc in (answer.manifest, answer.refusal, answer.metrics):
        if doc is not None:
            return str(doc.site_id)
    return None
