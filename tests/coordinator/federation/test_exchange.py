"""A phase's messages: a message or reply Flower lost is sent again while the phase has time, and so
is the message of a site that went offline and came back; a site that stays away, or keeps losing
its reply, is reported, not asked for ever.

The SuperLink cannot be made to lose one chosen reply on purpose (bench.scale saw it under load:
a reply push refused with "database is locked"), so these tests drive `exchange` through a Grid
that loses the replies each test names; `bench.scale` runs the real thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from flwr.app import Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from coordinator.federation.exchange import FLOWER_ERRORS, MAX_ASKS, Outgoing, Reply, exchange
from shared.federation.messages import refusal_reply
from shared.schemas import Refusal

SITES = {1: "site_a", 2: "site_b", 3: "site_c"}


@pytest.fixture(autouse=True)
def _a_serverapp_identity() -> Iterator[None]:
    """Flower builds a Message only inside a task (a ServerApp's run); this stands in for one."""
    saved = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 7, 7, 0
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved


class LossyGrid(Grid):
    """Answers every message at once, except that the first `failures[node]` replies to that node
    come back as Flower error `code` (3: the SuperLink lost the message or its reply), and the first
    `dropped[node]` messages to it are never answered at all."""

    def __init__(
        self,
        failures: dict[int, int],
        code: int = 3,
        online: Iterable[int] = SITES,
        dropped: dict[int, int] | None = None,
    ) -> None:
        self.failures, self.code, self.online = dict(failures), code, set(online)
        self.dropped = dict(dropped or {})  # messages a SuperNode drops without a word, per node
        self.pushed: list[Message] = []
        self._waiting: list[Message] = []

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = message.object_id  # as the SuperLink names it
            self.pushed.append(message)
            ids.append(message.metadata.message_id)
            node = message.metadata.dst_node_id
            if self.dropped.get(node, 0) > 0:
                self.dropped[node] -= 1
                continue
            self._waiting.append(message)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        replies, self._waiting = [m for m in self._waiting if m.metadata.message_id in wanted], []
        return [self._reply(m) for m in replies]

    def _reply(self, message: Message) -> Message:
        node = message.metadata.dst_node_id
        if self.failures.get(node, 0) > 0:
            self.failures[node] -= 1
            return Message(Error(code=self.code, reason="gone"), reply_to=message)
        refusal = Refusal(round_id="r1", site_id=SITES[node], reason="budget", detail="no budget left")
        return Message(refusal_reply(refusal), reply_to=message)

    # Not used by `exchange`.
    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return sorted(self.online)

    def send_and_receive(self, *args: object, **kwargs: object) -> Iterable[Message]:
        raise NotImplementedError

    def set_run(self, run_id: int) -> None:
        raise NotImplementedError

    @property
    def run(self) -> object:
        raise NotImplementedError


def _exchange(grid: LossyGrid, timeout_s: float = 30.0) -> dict[str, Reply]:
    replies: dict[str, Reply] = {}

    def on_reply(reply: Reply) -> None:
        assert reply.site_id not in replies, "a site's reply was handed over twice"
        replies[reply.site_id] = reply

    outgoing = Outgoing("query.synthesize", RecordDict(), timeout_s=timeout_s)
    exchange(grid, dict(SITES), outgoing, authenticated=True, on_reply=on_reply, on_progress=lambda *_: None)
    return replies


def test_a_lost_reply_is_asked_for_again_and_its_answer_arrives() -> None:
    grid = LossyGrid({2: 1})
    replies = _exchange(grid)
    assert {site: r.asks for site, r in replies.items()} == {"site_a": 1, "site_b": 2, "site_c": 1}
    assert all(r.answer is not None and r.answer.refusal is not None for r in replies.values())
    resent = [m for m in grid.pushed if m.metadata.dst_node_id == 2]
    assert [m.metadata.message_type for m in resent] == ["query.synthesize"] * 2
    assert resent[1].metadata.ttl <= resent[0].metadata.ttl  # the second ask lives no longer than the phase


def test_a_site_whose_reply_keeps_being_lost_is_asked_at_most_max_asks_times() -> None:
    grid = LossyGrid({3: 99})
    replies = _exchange(grid)
    assert replies["site_c"].asks == MAX_ASKS and replies["site_c"].answer is None
    assert replies["site_c"].error == FLOWER_ERRORS[3]
    assert sum(m.metadata.dst_node_id == 3 for m in grid.pushed) == MAX_ASKS
    assert replies["site_a"].answer is not None and replies["site_a"].asks == 1


def test_a_site_that_went_offline_is_asked_again_once_it_is_back_online() -> None:
    grid = LossyGrid({1: 1}, code=5)  # offline at the first pull, then online again
    replies = _exchange(grid)
    assert replies["site_a"].asks == 2 and replies["site_a"].answer is not None
    assert sum(m.metadata.dst_node_id == 1 for m in grid.pushed) == 2


def test_a_site_that_stays_offline_is_reported_offline_when_the_phase_ends() -> None:
    grid = LossyGrid({1: 1}, code=5, online=[2, 3])
    replies = _exchange(grid, timeout_s=2.0)
    assert replies["site_a"].asks == 1 and replies["site_a"].error == FLOWER_ERRORS[5]
    assert replies["site_b"].answer is not None and replies["site_c"].answer is not None
    assert len(grid.pushed) == len(SITES)


def test_a_message_dropped_without_a_word_is_asked_again_when_overdue() -> None:
    grid = LossyGrid({}, dropped={2: 1})
    replies = _exchange(grid, timeout_s=3.0)  # overdue after a third of it
    assert replies["site_b"].asks == 2 and replies["site_b"].answer is not None
    assert replies["site_a"].asks == 1 and replies["site_c"].asks == 1


def test_a_site_that_never_answers_is_asked_max_asks_times_and_named_when_the_phase_ends() -> None:
    grid = LossyGrid({}, dropped={3: 99})
    replies = _exchange(grid, timeout_s=3.0)
    assert replies["site_c"].answer is None and replies["site_c"].error == "no answer within 3 s"
    assert replies["site_c"].asks == MAX_ASKS
    assert sum(m.metadata.dst_node_id == 3 for m in grid.pushed) == MAX_ASKS
