"""The site's Flower ClientApp: three thin handlers, each one call into `answers`.

Every reply passes through the egress log first (`egress.record_egress`).
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from shared.federation.messages import FOUNDATION_ACTION, SYNTHESIZE_ACTION
from site_agent.federation.answers import answer_evaluate, answer_foundation, answer_synthesize
from site_agent.federation.egress import record_egress
from site_agent.federation.node_settings import site_settings

app = ClientApp(mods=[record_egress])


@app.query(FOUNDATION_ACTION)
def foundation(message: Message, context: Context) -> Message:
    return Message(answer_foundation(site_settings(context), message.content), reply_to=message)


@app.query(SYNTHESIZE_ACTION)
def synthesize(message: Message, context: Context) -> Message:
    return Message(answer_synthesize(site_settings(context), message.content), reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    return Message(answer_evaluate(site_settings(context), message.content), reply_to=message)
