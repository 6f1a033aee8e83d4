"""The README's helper examples publish exactly the intents it shows beside
them; tests/offline/schema.rs checks those intents against the schema and the
worker's decoder, so a call in the README cannot drift from a valid intent."""

from __future__ import annotations

import json
import re
import unittest
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from pusher_relay import AmqpNode, ChannelTemplates, IntentPublisher, Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- checked by tests/test_readme.py"


def block(lang: str, start: int) -> Tuple[List[str], int]:
    """The non-blank lines of the first fenced block of ``lang`` after ``start``, and where it ends."""
    match = re.compile(r"^```" + lang + r"\n(.*?)^```", re.S | re.M).search(README, start)
    if match is None:
        raise AssertionError(f"no ```{lang} block after offset {start} of README.md")
    return [line for line in match.group(1).splitlines() if line.strip()], match.end()


class RecordingPublisher(IntentPublisher):
    """Records what it would send instead of sending it."""

    def __init__(self) -> None:
        node = AmqpNode(url="amqp://unused", redacted="amqp://unused", secure=False, host="unused")
        super().__init__(Settings(nodes=[node], templates=ChannelTemplates.private()))
        self.sent: List[Tuple[Dict[str, Any], Optional[str]]] = []

    def _send(self, body: Dict[str, Any], ordering_key: Optional[str]) -> None:
        self.sent.append((body, ordering_key))


class ReadmeExamples(unittest.TestCase):
    def test_each_helper_call_publishes_the_intent_on_the_same_line_of_the_json_block(self) -> None:
        at = README.find(MARKER)
        self.assertNotEqual(at, -1, "README.md has the checked example")
        calls, end = block("python", at)
        bodies, _ = block("json", end)
        self.assertEqual(len(calls), len(bodies), "one intent per call")
        self.assertGreaterEqual(len(calls), 11, "every helper is shown")
        for call, shown in zip(calls, bodies):
            with self.subTest(call=call):
                publisher = RecordingPublisher()
                exec(call, {"publisher": publisher})  # noqa: S102 - the README's own example lines
                self.assertEqual(len(publisher.sent), 1)
                body = dict(publisher.sent[0][0])
                uuid.UUID(body.pop("id"))
                self.assertIsInstance(body.pop("created_at"), int)
                self.assertEqual(body, json.loads(shown))

    def test_the_wire_example_is_the_first_calls_intent_with_its_id_and_created_at(self) -> None:
        [line], _ = block("json", README.index("## On the wire"))
        wire = json.loads(line)
        self.assertIsInstance(wire.pop("id"), str)
        self.assertIsInstance(wire.pop("created_at"), int)
        _, end = block("python", README.index(MARKER))
        first = json.loads(block("json", end)[0][0])
        self.assertEqual(wire, first)


if __name__ == "__main__":
    unittest.main()
