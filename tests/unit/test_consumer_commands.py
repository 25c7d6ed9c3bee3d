"""Consumer commands read as Pulsar's ConsumerCommand is mapped by Jackson (local Pulsar's gateway
and MemoryPulsar both read them with these rules)."""

from __future__ import annotations

import base64

import pytest

from rxstargate._service_rules.commands import Command, CommandError, parse_command
from rxstargate._service_rules.jackson import INT_MAX, INT_MIN


@pytest.mark.parametrize(
    ("text", "permits"),
    [
        ('{"type":"permit","permitMessages":7}', 7),
        ('{"type":"permit","permitMessages":"7"}', 7),  # Jackson converts numeric text
        ('{"type":"permit","permitMessages":7.9}', 7),  # and truncates a fraction
        ('{"type":"permit","permitMessages":-5}', -5),
        (f'{{"type":"permit","permitMessages":{INT_MAX}}}', INT_MAX),
        (f'{{"type":"permit","permitMessages":{INT_MIN}}}', INT_MIN),
    ],
)
def test_permits_are_read_as_a_java_integer(text: str, permits: int) -> None:
    assert parse_command(text) == Command("permit", permits=permits)


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"permit"}',
        '{"type":"permit","permitMessages":null}',
        '{"type":"permit","permitMessages":""}',
        f'{{"type":"permit","permitMessages":{INT_MAX + 1}}}',
        f'{{"type":"permit","permitMessages":{INT_MIN - 1}}}',
        '{"type":"permit","permitMessages":1e300}',
        '{"type":"permit","permitMessages":true}',
        '{"type":"permit","permitMessages":[1]}',
        '{"type":"permit","permitMessages":"12abc"}',
        '{"messageId":"CAAQAw==","permitMessages":"x"}',  # Pulsar maps every field first
        '{"type":{"nested":1},"messageId":"CAAQAw=="}',
        "[" * 100_000,
        "[1]",
        "",
    ],
)
def test_what_pulsar_cannot_map_is_a_command_error(text: str) -> None:
    with pytest.raises(CommandError):
        parse_command(text)


def test_an_unknown_or_missing_type_is_an_ack() -> None:
    for text in ('{"messageId":"CAAQAw=="}', '{"type":"ack","messageId":"CAAQAw=="}'):
        assert parse_command(text).kind == "ack"
    assert parse_command('{"type":"other","messageId":"CAAQAw=="}').kind == "ack"


@pytest.mark.parametrize(
    "text",
    [
        '{"messageId":"CAAQAw=="}',  # what clients send: read without a JSON parser
        '{"messageId":""}',
        '{"messageId":"not base64!"}',
        '{"messageId":"CAAQ\\u0041w=="}',  # an escape: only JSON knows what it means
        '{"messageId":"CAAQAw==","type":"negativeAcknowledge"}',
        '{"messageId":"CAAQAw==","x":"}',
        '{"messageId":"CAAQAw==" }',
    ],
)
def test_the_plain_ack_shortcut_reads_commands_as_json_does(text: str) -> None:
    try:  # led by a space the text is not the plain shape: parsed as JSON
        expected: Command | type[CommandError] = parse_command(" " + text)
    except CommandError:
        expected = CommandError
    try:
        got: Command | type[CommandError] = parse_command(text)
    except CommandError:
        got = CommandError
    assert got == expected
    if text == '{"messageId":"CAAQAw=="}':
        assert got == Command("ack", "CAAQAw==", base64.b64decode("CAAQAw=="))
