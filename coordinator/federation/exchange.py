"""The Flower side of a round's phase: send one message to each site, collect and unpack replies.

The round runner decides what a reply means; this module only moves messages, and sends again
what Flower lost. Every message has a TTL and every collection a deadline, so no wait is unbounded.
Flower's own errors (a site offline, a crashed ClientApp, an expired message) become a sentence the
report can show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from shared.errors import FedsynthError
from shared.federation.messages import SiteAnswer, read_reply

log = logging.getLogger(__name__)

POLL_S = 1.0
TTL_MARGIN_S = 60.0  # a message outlives its phase's deadline, so a late site gets "no answer", not a TTL
# Flower's errors for a message or reply the SuperLink no longer holds, with the site still there:
# bench.scale saw a reply push fail on the SuperLink's "database is locked" under load. Asked again.
LOST = frozenset({3, 4})
OFFLINE = 5  # Flower: the site's SuperNode missed its heartbeats or stopped; it may come back
MAX_ASKS = 3
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
    asks: int = 1  # times the message was sent: more than once after Flower lost one or its reply


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

    Sent again, up to MAX_ASKS times in all, while the phase has time left: a message Flower lost,
    or whose reply it lost; the message of a site that went offline, once it is back online (a
    restarted agent: the site resumes its run under the same reservation); and the message of a
    site with no answer after a MAX_ASKS-th of the phase's timeout. The first answer is taken.
    Every answer is safe to ask for twice: a site releases a round's set once and sends that same
    set again (site_agent/federation/answers.py). `on_progress(answered, asked)` is called after
    every poll."""
    timeout_s = outgoing.timeout_s
    deadline = time.monotonic() + timeout_s
    overdue_s = timeout_s / MAX_ASKS
    asks: dict[int, int] = {}
    last_asked: dict[int, float] = {}
    offline: dict[int, Reply] = {}  # what is reported for each if it does not come back in time

    def send(to: list[int]) -> dict[str, int]:
        ttl = max(deadline - time.monotonic(), POLL_S) + TTL_MARGIN_S
        messages = [
            Message(outgoing.content, dst_node_id=node, message_type=outgoing.message_type, ttl=ttl)
            for node in to
        ]
        for node in to:
            asks[node] = asks.get(node, 0) + 1
            last_asked[node] = time.monotonic()
        return dict(zip(grid.push_messages(messages), to, strict=True))

    pending = send(list(nodes))  # message id -> node: a node asked again has several
    answered = 0
    while (pending or offline) and time.monotonic() < deadline:
        again: list[int] = []
        for reply in grid.pull_messages(list(pending)) if pending else []:
            node = pending.pop(reply.metadata.reply_to_message_id, None)
            if node is None:
                continue
            unpacked = _unpack(node, nodes[node], reply, authenticated=authenticated, asks=asks[node])
            code = int(reply.error.code) if reply.has_error() else None
            if code is not None and node in pending.values():
                continue  # an earlier ask failed; a later one is still out
            if code in LOST and asks[node] < MAX_ASKS:
                log.warning("%s: asking %s again: %s", outgoing.message_type, nodes[node], unpacked.error)
                again.append(node)
            elif code == OFFLINE and asks[node] < MAX_ASKS:
                log.warning(
                    "%s: %s went offline; it is asked again if it is back in time",
                    outgoing.message_type,
                    nodes[node],
                )
                offline[node] = unpacked
            else:
                answered += 1
                pending = {m: n for m, n in pending.items() if n != node}  # its other asks: ignored
                on_reply(unpacked)
        if offline:
            for node in set(offline) & set(grid.get_node_ids()):
                log.warning("%s: %s is back online: asking it again", outgoing.message_type, nodes[node])
                del offline[node]
                again.append(node)
        # A SuperNode that fails to fetch a message it was given (bench.scale: an HTTP 500 from the
        # SuperLink's locked database) drops it without a word: it is asked again when overdue. A
        # site merely slow answers the first of its asks; the later one waits its turn at its
        # SuperNode, which takes one message at a time, and is answered from the same release.
        for node in set(pending.values()):
            if time.monotonic() - last_asked[node] >= overdue_s and asks[node] < MAX_ASKS:
                log.warning(
                    "%s: no answer from %s after %.0f s: asking again",
                    outgoing.message_type,
                    nodes[node],
                    overdue_s,
                )
                again.append(node)
        if again:
            pending.update(send(again))
        on_progress(answered, len(nodes))
        if pending or offline:
            time.sleep(POLL_S)
    for node in set(pending.values()):
        on_reply(Reply(node, nodes[node], None, f"no answer within {timeout_s:.0f} s", asks=asks[node]))
    for gone in offline.values():
        on_reply(gone)


def _unpack(node: int, site: str, reply: Message, *, authenticated: bool, asks: int) -> Reply:
    if reply.has_error():
        code = int(reply.error.code)
        return Reply(node, site, None, FLOWER_ERRORS.get(code, f"Flower error {code}"), asks=asks)
    try:
        answer = read_reply(reply.content)
    except FedsynthError as exc:
        return Reply(node, site, None, f"unreadable reply: {exc}", asks=asks)
    claimed = None if authenticated else _claimed_site(answer)
    return Reply(node, claimed or site, answer, asks=asks)


def _claimed_site(answer: SiteAnswer) -> str | None:
    for doc in (answer.manifest, answer.refusal, answer.metrics):
        if doc is not None:
            return str(doc.site_id)
    return None
