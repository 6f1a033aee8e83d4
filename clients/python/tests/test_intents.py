"""check_intent refuses what the worker would dead-letter, naming the field;
the cases follow tests/offline/schema.rs's tables of invalid and valid intents."""

from __future__ import annotations

import unittest

from pusher_relay import (
    AmqpNode,
    ChannelTemplates,
    IntentPublisher,
    InvalidIntent,
    PublishFailed,
    Settings,
    check_intent,
    intents,
)

CHANNELS_101 = [f"c{n}" for n in range(101)]

INVALID = [
    ("not a dict", ["type", "announcement"], "intent", r"dict"),
    ("no type", {"message": "m"}, "type", r"type must be one of notification, announcement"),
    ("unknown type", {"type": "chat.typing", "room_id": 1}, "type", r'got "chat.typing"'),
    ("missing field", {"type": "chat.message", "user_id": 1, "user_name": "n", "message": "m"}, "room_id",
     r'chat.message intent is missing field "room_id"'),
    ("required field None", {"type": "announcement", "message": None}, "message", r'missing field "message"'),
    ("event without data", {"type": "event", "channels": ["a"], "event": "e"}, "data", r'missing field "data"'),
    ("bad channel name", {"type": "event", "channels": ["a b"], "event": "e", "data": 1}, "channels[0]",
     r'"a b" is not a valid channel name'),
    ("channel of 165 characters", {"type": "event", "channels": ["a" * 165], "event": "e", "data": 1}, "channels[0]",
     r"165 characters long; Pusher allows at most 164"),
    ("bare #server-to-user- channel", {"type": "event", "channels": ["#server-to-user-"], "event": "e", "data": 1},
     "channels[0]", r"not a valid channel name"),
    ("101 channels", {"type": "event", "channels": CHANNELS_101, "event": "e", "data": 1}, "channels",
     r"101 entries; Pusher allows at most 100"),
    ("no channels", {"type": "event", "channels": [], "event": "e", "data": 1}, "channels", r"at least one"),
    ("channels a str", {"type": "event", "channels": "a", "event": "e", "data": 1}, "channels", r"must be a list"),
    ("channel not a str", {"type": "event", "channels": ["a", 1], "event": "e", "data": 1}, "channels[1]",
     r"must be a channel name \(a str\), got int"),
    ("encrypted channel among others",
     {"type": "event", "channels": ["private-encrypted-a", "b"], "event": "e", "data": 1}, "channels", r"only channel"),
    ("empty event name", {"type": "event", "channels": ["a"], "event": "", "data": 1}, "event", r"non-empty str"),
    ("event name of 201 characters", {"type": "event", "channels": ["a"], "event": "e" * 201, "data": 1}, "event",
     r"201 characters long"),
    ("info not a str", {"type": "event", "channels": ["a"], "event": "e", "data": 1, "info": 1}, "info",
     r"info must be a str"),
    ("data not JSON", {"type": "event", "channels": ["a"], "event": "e", "data": {1, 2}}, "data",
     r"cannot be encoded as JSON"),
    ("data with NaN", {"type": "event", "channels": ["a"], "event": "e", "data": float("nan")}, "data",
     r"cannot be encoded as JSON"),
    ("message not a str", {"type": "announcement", "message": 5}, "message", r"message must be a str, got int"),
    ("metrics not a dict", {"type": "dashboard.metrics", "metrics": [1]}, "metrics", r"must be a dict .* got list"),
    ("quantity not a number", {"type": "inventory.stock", "product_id": 1, "quantity": "3"}, "quantity",
     r"finite number, got str"),
    ("quantity a bool", {"type": "inventory.stock", "product_id": 1, "quantity": True}, "quantity", r"got bool"),
    ("quantity infinite", {"type": "inventory.stock", "product_id": 1, "quantity": float("inf")}, "quantity",
     r"finite number"),
    ("identifier a fraction", {"type": "notification", "user_id": 1.5, "message": "m"}, "user_id",
     r"int or a non-empty str, got the number 1.5"),
    ("identifier empty", {"type": "notification", "user_id": "", "message": "m"}, "user_id", r"got str"),
    ("identifier a bool", {"type": "notification", "user_id": True, "message": "m"}, "user_id", r"got bool"),
    ("identifier past 64 bits", {"type": "notification", "user_id": 2**64, "message": "m"}, "user_id",
     r"outside 64 bits"),
    ("optional identifier a dict", {"type": "order.status", "order_id": 1, "status": "s", "customer_id": {"id": 1}},
     "customer_id", r"got dict"),
    ("level not a str", {"type": "notification", "user_id": 1, "message": "m", "level": 2}, "level",
     r"level must be a str"),
    ("id an int", {"type": "announcement", "message": "m", "id": 5}, "id", r"id must be a non-empty str, got int"),
    ("id empty", {"type": "announcement", "message": "m", "id": ""}, "id", r"non-empty str"),
    ("created_at a str", {"type": "announcement", "message": "m", "created_at": "2024"}, "created_at",
     r"unix milliseconds"),
    ("created_at a fraction", {"type": "announcement", "message": "m", "created_at": 1.5}, "created_at",
     r"unix milliseconds"),
    ("created_at past i64", {"type": "announcement", "message": "m", "created_at": 2**63}, "created_at",
     r"unix milliseconds"),
    ("bad socket_id", {"type": "announcement", "message": "m", "socket_id": "1.1:"}, "socket_id", r'"123.456"'),
    ("socket_id without a dot", {"type": "announcement", "message": "m", "socket_id": "123456"}, "socket_id",
     r'"123.456"'),
    ("socket_id with non-ASCII digits", {"type": "announcement", "message": "m", "socket_id": "\u0661.\u0662"},
     "socket_id", r'"123.456"'),
    ("socket_id a number", {"type": "announcement", "message": "m", "socket_id": 1.5}, "socket_id", r'"123.456"'),
    ("event data over 10 240 bytes", {"type": "event", "channels": ["a"], "event": "e", "data": "x" * 10241}, "data",
     r"10241 bytes as JSON; Pusher allows at most 10240"),
    ("typed intent over 10 240 bytes", {"type": "announcement", "message": "x" * 10240}, "announcement intent",
     r"bytes as JSON; Pusher allows at most 10240"),
]

VALID = [
    ("None optional fields", {"type": "order.status", "order_id": 1, "status": "s", "customer_id": None, "id": None,
                              "socket_id": None, "created_at": None}),
    ("unknown fields", {"type": "announcement", "message": "m", "extra": {"nested": True}}),
    ("every common field", {"type": "announcement", "message": "", "priority": "high", "id": "a-1",
                            "socket_id": "123.456", "created_at": 1700000000123}),
    ("largest and smallest integer identifiers",
     {"type": "chat.joined", "room_id": 2**64 - 1, "user_id": -(2**63), "user_name": "n"}),
    ("identifier outside the channel charset where no template uses it",
     {"type": "chat.left", "room_id": 1, "user_id": "Ada Lovelace", "user_name": "n"}),
    ("fractional quantity", {"type": "inventory.stock", "product_id": "p", "quantity": 1.5}),
    ("empty metrics", {"type": "dashboard.metrics", "metrics": {}}),
    ("None data and info", {"type": "event", "channels": ["a"], "event": "e", "data": None, "info": None}),
    ("100 channels", {"type": "event", "channels": CHANNELS_101[:100], "event": "e", "data": {}}),
    ("channel of 164 characters and every allowed character",
     {"type": "event", "channels": ["a" * 164, "-_=@,.;AZaz09"], "event": "e", "data": "x"}),
    ("#server-to-user- channel", {"type": "event", "channels": ["#server-to-user-42"], "event": "e", "data": 1}),
    ("encrypted channel alone", {"type": "event", "channels": ["private-encrypted-a"], "event": "e", "data": 1}),
    ("event name of 200 characters", {"type": "event", "channels": ["a"], "event": "é" * 200, "data": [1]}),
    ("data of exactly 10 240 bytes", {"type": "event", "channels": ["a"], "event": "e", "data": "x" * 10240}),
]


def offline_publisher(password: str = "guest") -> IntentPublisher:
    """A publisher whose only node refuses connections: a test that reaches the broker fails."""
    node = AmqpNode(
        url=f"amqp://app:{password}@127.0.0.1:1/%2f", redacted="amqp://app:***@127.0.0.1:1/%2F", secure=False,
        host="127.0.0.1",
    )
    return IntentPublisher(Settings(nodes=[node], exchange="unused", timeout=1.0, templates=ChannelTemplates.private()))


class CheckIntent(unittest.TestCase):
    def test_refuses_what_the_worker_would_dead_letter_naming_the_field(self) -> None:
        for what, intent, field, pattern in INVALID:
            with self.subTest(what):
                with self.assertRaises(InvalidIntent) as caught:
                    check_intent(intent)
                self.assertEqual(caught.exception.field, field)
                self.assertRegex(str(caught.exception), pattern)

    def test_accepts_the_valid_edge_cases(self) -> None:
        for what, intent in VALID:
            with self.subTest(what):
                check_intent(intent)

    def test_a_smaller_max_event_bytes_is_the_limit(self) -> None:
        with self.assertRaisesRegex(InvalidIntent, r"at most 100"):
            check_intent({"type": "event", "channels": ["a"], "event": "e", "data": "x" * 101}, 100)

    def test_builders_keep_identifiers_as_given_and_leave_out_what_was_not_given(self) -> None:
        self.assertEqual(
            intents.notification("u-1", "hi"), {"type": "notification", "user_id": "u-1", "message": "hi", "level": "info"}
        )
        self.assertEqual(intents.announcement("m"), {"type": "announcement", "message": "m", "priority": "normal"})
        self.assertEqual(intents.order_status(7, "paid"), {"type": "order.status", "order_id": 7, "status": "paid"})
        self.assertEqual(
            intents.order_status(7, "paid", 0), {"type": "order.status", "order_id": 7, "status": "paid", "customer_id": 0}
        )
        self.assertEqual(
            intents.chat_message(5, 7, "Ada", "hi", socket_id="1.2", intent_id="msg-1"),
            {"type": "chat.message", "room_id": 5, "user_id": 7, "user_name": "Ada", "message": "hi",
             "socket_id": "1.2", "id": "msg-1"},
        )
        self.assertEqual(
            intents.event(("a",), "e", {"x": 1}), {"type": "event", "channels": ["a"], "event": "e", "data": {"x": 1}}
        )


class PublisherBeforeTheBroker(unittest.TestCase):
    def test_the_publisher_refuses_an_invalid_intent_before_it_connects(self) -> None:
        publisher = offline_publisher()
        with self.assertRaises(InvalidIntent) as caught:
            publisher.notify_user(True, "hi")
        self.assertEqual(caught.exception.field, "user_id")
        with self.assertRaises(InvalidIntent) as caught:
            publisher.trigger("a b", "e", {})
        self.assertEqual(caught.exception.field, "channels[0]")
        with self.assertRaisesRegex(InvalidIntent, r"chat.message intent's identifiers render channel \"chat-room-room 5\""):
            publisher.post_chat_message("room 5", 7, "Ada", "hi")
        with self.assertRaisesRegex(InvalidIntent, r'render channel "private-order-o 1"'):
            publisher.update_order_status("o 1", "paid", 9)

    def test_an_unreachable_broker_is_publish_failed_naming_the_node_without_its_password(self) -> None:
        publisher = offline_publisher("hunter2")
        with self.assertRaises(PublishFailed) as caught:
            publisher.announce("hi")
        self.assertEqual(caught.exception.reason, "unreachable")
        self.assertRegex(str(caught.exception), r"could not connect to RabbitMQ at amqp://app:\*\*\*@127.0.0.1:1/%2F")
        self.assertNotIn("hunter2", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
