"""Each service's checked-in AsyncAPI document matches what its code consumes and publishes.

Run `make asyncapi` after changing a contract, a consumer or a service's `publishes`, and
commit the diff: a contract change is then always visible in review.
"""

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from contracts import MESSAGE_TYPES
from contracts.envelope import Envelope
from shopdev.stack import SERVICES, ServiceSpec
from shopdev.testing import repo_root
from shopkit.asyncapi import document


def build(spec: ServiceSpec) -> Any:
    module, factory = spec.factory.split(":")
    return getattr(importlib.import_module(module), factory)()


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
def test_checked_in_asyncapi_matches_the_code(spec: ServiceSpec) -> None:
    checked_in = repo_root() / spec.directory / "asyncapi.json"
    assert checked_in.is_file(), f"missing {checked_in}; run make asyncapi"
    assert json.loads(checked_in.read_text()) == document(build(spec)), (
        f"{checked_in} is stale; run make asyncapi and commit the diff"
    )


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
def test_everything_a_service_handles_or_publishes_is_a_contract(spec: ServiceSpec) -> None:
    app = build(spec)
    handled = {name for c in app.state.consumers for name in c.handled_types}
    published = {m.__name__ for m in app.state.publishes}
    for name in handled | published:
        assert name in MESSAGE_TYPES, f"{spec.name} uses {name}, which is not in libs/contracts"
    for consumer in app.state.consumers:
        for name, message_type in consumer.handled_types.items():
            assert MESSAGE_TYPES[name] is message_type


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
def test_every_payload_is_the_envelope_with_the_message_as_its_payload(spec: ServiceSpec) -> None:
    doc = document(build(spec))
    schemas = doc["components"]["schemas"]
    envelope_fields = set(Envelope.model_fields)
    for name, message in doc["components"]["messages"].items():
        envelope = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert set(envelope["properties"]) == envelope_fields, name
        assert set(envelope["required"]) >= {"message_id", "type", "key", "payload"}
        type_name = envelope["properties"]["type"]["const"]
        assert name.endswith(f":{type_name}:Message") or name.endswith(
            f":{type_name}:SubscribeMessage"
        ), name
        inner = envelope["properties"]["payload"]["$ref"].rsplit("/", 1)[1]
        assert inner in schemas and (inner == type_name or type_name == "DeadLetter")


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
def test_every_consumed_topic_lists_its_dead_letter_topic(spec: ServiceSpec) -> None:
    app = build(spec)
    addresses = {c["address"] for c in document(app)["channels"].values()}
    consumed = {m.TOPIC.name for c in app.state.consumers for m in c.handled_types.values()}
    assert {f"{t}.dlt" for t in consumed} <= addresses
    assert all(a.removesuffix(".dlt") in consumed for a in addresses if a.endswith(".dlt"))


def test_every_command_has_a_consumer_and_every_reply_a_producer() -> None:
    apps = [build(s) for s in SERVICES]
    handled = {name for app in apps for c in app.state.consumers for name in c.handled_types}
    published = {m.__name__ for app in apps for m in app.state.publishes}
    commands = {n for n, m in MESSAGE_TYPES.items() if m.TOPIC.name.endswith(".commands")}
    assert commands <= handled, f"commands nobody handles: {sorted(commands - handled)}"
    assert commands <= published, f"commands nobody sends: {sorted(commands - published)}"
    replies = {n for n, m in MESSAGE_TYPES.items() if m.TOPIC.name.endswith(".replies")}
    assert replies <= published, f"replies nobody sends: {sorted(replies - published)}"


def test_repo_root_is_found() -> None:
    assert (repo_root() / "libs" / "contracts").is_dir()
    assert Path(__file__).resolve().is_relative_to(repo_root())
