"""The ordering keys this client puts in the ``ordering-key`` header are the
worker's: tests/data/ordering-keys.json (repository root) is shared with
tests/offline/ordering_keys.rs (the worker's side) and the PHP client's tests. A key
that disagrees would send one channel's intents to different shards and lose
their order across workers."""

from __future__ import annotations

import json
import unittest
from pathlib import Path
from typing import Any, Dict

from pusher_relay import INTENT_TYPES, ChannelTemplates, check_intent, intents

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "data" / "ordering-keys.json"
ENTRIES = json.loads(FIXTURE.read_text(encoding="utf-8"))


def build(intent: Dict[str, Any]) -> Dict[str, Any]:
    """The builder call that makes ``intent``, as an app would write it."""
    socket_id = intent.get("socket_id")
    kind = intent["type"]
    if kind == "notification":
        return intents.notification(intent["user_id"], intent["message"], intent["level"], socket_id=socket_id)
    if kind == "announcement":
        return intents.announcement(intent["message"], intent["priority"], socket_id=socket_id)
    if kind == "chat.message":
        return intents.chat_message(
            intent["room_id"], intent["user_id"], intent["user_name"], intent["message"], socket_id=socket_id
        )
    if kind == "chat.joined":
        return intents.chat_joined(intent["room_id"], intent["user_id"], intent["user_name"], socket_id=socket_id)
    if kind == "chat.left":
        return intents.chat_left(intent["room_id"], intent["user_id"], intent["user_name"], socket_id=socket_id)
    if kind == "order.status":
        return intents.order_status(
            intent["order_id"], intent["status"], intent.get("customer_id"), socket_id=socket_id
        )
    if kind == "dashboard.metrics":
        return intents.dashboard_metrics(intent["metrics"], socket_id=socket_id)
    if kind == "inventory.stock":
        return intents.inventory_stock(intent["product_id"], intent["quantity"], socket_id=socket_id)
    if kind == "presence.activity":
        return intents.presence_activity(intent["user_id"], intent["activity"], socket_id=socket_id)
    if kind == "event":
        return intents.event(
            intent["channels"], intent["event"], intent["data"], info=intent.get("info"), socket_id=socket_id
        )
    raise AssertionError(f"no builder for {kind}")


def without_generated(intent: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in intent.items() if k not in ("id", "created_at")}


class OrderingKeyFixture(unittest.TestCase):
    def test_the_fixture_covers_every_intent_type(self) -> None:
        self.assertEqual(len(ENTRIES), 19)
        for kind in INTENT_TYPES:
            self.assertTrue(any(e["intent"]["type"] == kind for e in ENTRIES), f"no {kind} intent in {FIXTURE}")

    def test_the_client_computes_the_workers_key(self) -> None:
        for i, entry in enumerate(ENTRIES):
            with self.subTest(entry=i, type=entry["intent"]["type"]):
                self.assertEqual(ChannelTemplates.private().ordering_key(entry["intent"]), entry["key"])
                self.assertEqual(
                    ChannelTemplates.from_env({}).ordering_key(entry["intent"]),
                    entry["key"],
                    "an empty environment is the private style",
                )

    def test_the_builder_makes_the_fixture_intent_which_passes_the_workers_rules(self) -> None:
        for i, entry in enumerate(ENTRIES):
            intent = entry["intent"]
            with self.subTest(entry=i, type=intent["type"]):
                built = build(intent)
                self.assertEqual(without_generated(built), without_generated(intent))
                self.assertEqual(ChannelTemplates.private().ordering_key(built), entry["key"])
                check_intent(intent)


class OtherTemplates(unittest.TestCase):
    def test_legacy_style_keys_are_the_seed_apps_public_channels(self) -> None:
        channels = ChannelTemplates.from_env({"RELAY_CHANNEL_STYLE": "legacy"})
        self.assertEqual(channels.ordering_key({"type": "notification", "user_id": 42}), "user-42")
        self.assertEqual(channels.ordering_key({"type": "order.status", "order_id": 1001}), "order-1001")
        self.assertEqual(
            channels.ordering_key({"type": "order.status", "order_id": 1001, "customer_id": "c7"}), "customer-c7"
        )
        self.assertEqual(
            channels.ordering_key({"type": "order.status", "order_id": 1001, "customer_id": None}), "order-1001"
        )
        self.assertEqual(channels.ordering_key({"type": "chat.left", "room_id": 5, "user_id": 1}), "chat-room-5")
        self.assertEqual(channels.ordering_key({"type": "announcement", "message": "m"}), "system")

    def test_template_overrides_change_the_keys_as_they_change_the_workers_channels(self) -> None:
        channels = ChannelTemplates.from_env(
            {
                "RELAY_CHANNEL_STYLE": "legacy",
                "RELAY_CHANNEL_CUSTOMER": "shop-{customer_id}-order-{order_id}",
                "RELAY_CHANNEL_INVENTORY": "stock-{product_id}",
                "RELAY_CHANNEL_CHAT": "room-{room_id}-{user_id}",
            }
        )
        order = {"type": "order.status", "order_id": 7, "customer_id": 9}
        self.assertEqual(channels.channels(order), ["order-7", "shop-9-order-7"])
        self.assertEqual(channels.ordering_key(order), "shop-9-order-7")
        self.assertEqual(
            channels.ordering_key({"type": "inventory.stock", "product_id": "sku-1", "quantity": 1}), "stock-sku-1"
        )
        self.assertEqual(channels.ordering_key({"type": "chat.joined", "room_id": 5, "user_id": "u1"}), "room-5-u1")
        self.assertEqual(channels.ordering_key({"type": "presence.activity", "user_id": 3}), "presence-activity")

    def test_an_intent_without_a_usable_identifier_has_no_key(self) -> None:
        channels = ChannelTemplates.private()
        self.assertIsNone(channels.ordering_key({"type": "notification", "user_id": ""}))
        self.assertIsNone(channels.ordering_key({"type": "notification", "user_id": True}))
        self.assertIsNone(channels.ordering_key({"type": "notification", "user_id": 1.5}))
        self.assertIsNone(channels.ordering_key({"type": "chat.typing", "room_id": 1}))
        self.assertIsNone(channels.ordering_key({"type": "event", "channels": []}))


if __name__ == "__main__":
    unittest.main()
