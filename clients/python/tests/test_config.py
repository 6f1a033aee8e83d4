from __future__ import annotations

import unittest

from pusher_relay import DEFAULT_MAX_EVENT_BYTES, ConfigError, Settings, parse_amqp_urls


class Config(unittest.TestCase):
    def assert_config_error(self, env: dict, variable: str, pattern: str) -> None:
        with self.assertRaises(ConfigError) as caught:
            Settings.from_env(env)
        self.assertEqual(caught.exception.variable, variable)
        self.assertRegex(str(caught.exception), pattern)

    def test_an_empty_environment_gives_the_workers_defaults(self) -> None:
        settings = Settings.from_env({})
        self.assertEqual([n.url for n in settings.nodes], ["amqp://guest:guest@127.0.0.1:5672/%2f"])
        self.assertEqual([n.redacted for n in settings.nodes], ["amqp://guest:***@127.0.0.1:5672/%2F"])
        self.assertEqual(settings.exchange, "pusher.intents")
        self.assertEqual(settings.timeout, 5.0)
        self.assertEqual(settings.max_event_bytes, DEFAULT_MAX_EVENT_BYTES)
        self.assertEqual(settings.templates.templates["notification"], "private-user-{user_id}")

    def test_amqps_urls_take_rabbitmqs_tls_parameters_and_a_bad_one_is_named(self) -> None:
        (node,) = parse_amqp_urls(
            "amqps://u:s3cret@mq.example/%2f?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem"
            "&server_name_indication=rabbit.internal"
        )
        assert node.tls is not None
        self.assertEqual((node.tls.cacertfile, node.tls.certfile, node.tls.keyfile), ("/ca.pem", "/c.pem", "/k.pem"))
        self.assertTrue(node.tls.verify)
        self.assertEqual(node.tls.server_name, "rabbit.internal")
        none = parse_amqp_urls("amqps://u:p@mq/%2f?verify=verify_none")[0].tls
        assert none is not None
        self.assertFalse(none.verify)
        with self.assertRaisesRegex(ConfigError, "verify='yes' is not one of verify_peer, verify_none"):
            parse_amqp_urls("amqps://u:s3cret@mq/%2f?verify=yes")
        with self.assertRaisesRegex(ConfigError, "certfile is set without keyfile"):
            parse_amqp_urls("amqps://u:p@mq/%2f?certfile=/c.pem")

    def test_amqp_url_lists_several_nodes_with_passwords_redacted(self) -> None:
        nodes = parse_amqp_urls(" amqp://relay:s3cret@10.0.0.1:5672/%2f , amqp://relay:s3cret@10.0.0.2/prod,, ")
        self.assertEqual(
            [n.redacted for n in nodes],
            ["amqp://relay:***@10.0.0.1:5672/%2F", "amqp://relay:***@10.0.0.2:5672/prod"],
        )
        self.assertEqual(nodes[1].url, "amqp://relay:s3cret@10.0.0.2/prod")

    def test_a_bad_amqp_url_entry_is_named_by_its_number_never_its_text(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_amqp_urls("amqp://u:pw1@a:5672/%2f,http://u:pw2@b/,amqp://u:pw3@c")
        self.assertEqual(caught.exception.variable, "AMQP_URL")
        self.assertRegex(str(caught.exception), r"^AMQP_URL entry 2 of 3 must look like amqp://user:password@host")
        self.assertNotIn("pw", str(caught.exception))
        for value in ("not a url", " , ", "amqp://h:99999/"):
            with self.subTest(value=value), self.assertRaisesRegex(ConfigError, r"^AMQP_URL must look like"):
                parse_amqp_urls(value)
        with self.assertRaisesRegex(ConfigError, r"entry 2 uses amqps:// but entry 1 uses amqp://"):
            parse_amqp_urls("amqp://a,amqps://b")

    def test_bad_numbers_and_templates_name_their_variable(self) -> None:
        self.assert_config_error({"AMQP_TIMEOUT": "0"}, "AMQP_TIMEOUT", r'positive number of seconds, got "0"')
        self.assert_config_error({"AMQP_TIMEOUT": "soon"}, "AMQP_TIMEOUT", r'got "soon"')
        self.assert_config_error({"AMQP_TIMEOUT": "nan"}, "AMQP_TIMEOUT", r'got "nan"')
        self.assert_config_error({"PUSHER_MAX_EVENT_BYTES": "10.5"}, "PUSHER_MAX_EVENT_BYTES", r"whole number")
        self.assert_config_error({"RELAY_CHANNEL_STYLE": "public"}, "RELAY_CHANNEL_STYLE", r'got "public"')
        self.assert_config_error(
            {"RELAY_CHANNEL_ORDER": "order-{user_id}"},
            "RELAY_CHANNEL_ORDER",
            r"unknown placeholder \{user_id\} \(allowed: \{order_id\}\)",
        )
        self.assert_config_error({"RELAY_CHANNEL_CHAT": "room-{room_id"}, "RELAY_CHANNEL_CHAT", r"without its pair")
        self.assert_config_error(
            {"RELAY_CHANNEL_DASHBOARD": "dash board"}, "RELAY_CHANNEL_DASHBOARD", r"does not render a valid channel"
        )

    def test_settings_are_taken_as_given(self) -> None:
        settings = Settings.from_env(
            {"AMQP_TIMEOUT": "0.5", "AMQP_EXCHANGE": "app.intents", "RELAY_CHANNEL_NOTIFICATION": "u-{user_id}"}
        )
        self.assertEqual(settings.timeout, 0.5)
        self.assertEqual(settings.exchange, "app.intents")
        self.assertEqual(settings.templates.ordering_key({"type": "notification", "user_id": 3}), "u-3")


if __name__ == "__main__":
    unittest.main()
