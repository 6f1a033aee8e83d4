<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

use PusherRelay\QueuedPusherService;

/** Builds services with test settings, never from the runner's environment. */
final class ServiceFactory
{
    public const APP_ID = '4242';
    public const KEY = 'test-key';
    public const SECRET = 'test-secret-never-shown';

    /** @param array<string, mixed> $overrides */
    public static function make(array $overrides = []): QueuedPusherService
    {
        return new QueuedPusherService(self::settings($overrides));
    }

    /**
     * Test settings: $overrides over fixed values; the variables tests
     * depend on are all given (null: unset), so the runner's environment
     * cannot change a result.
     *
     * @param array<string, mixed> $overrides
     * @return array<string, mixed>
     */
    public static function settings(array $overrides = []): array
    {
        return $overrides + [
            'PUSHER_APP_ID' => self::APP_ID,
            'PUSHER_APP_KEY' => self::KEY,
            'PUSHER_APP_SECRET' => self::SECRET,
            'PUSHER_APP_CLUSTER' => 'eu',
            'PUSHER_HOST' => null,
            'PUSHER_PORT' => null,
            'PUSHER_SCHEME' => null,
            'PUSHER_USE_TLS' => null,
            'PUSHER_VERIFY_SSL' => null,
            'PUSHER_DISABLE_STATS' => null,
            'PUSHER_ENCRYPTION_MASTER_KEY_BASE64' => null,
            'AMQP_URL' => RabbitQueue::URL,
            'AMQP_EXCHANGE' => 'pusher.intents',
            'AMQP_TIMEOUT' => 5,
            'RELAY_CHANNEL_STYLE' => null,
            'RELAY_CHANNEL_NOTIFICATION' => null,
            'RELAY_CHANNEL_ANNOUNCEMENT' => null,
            'RELAY_CHANNEL_CHAT' => null,
            'RELAY_CHANNEL_ORDER' => null,
            'RELAY_CHANNEL_CUSTOMER' => null,
            'RELAY_CHANNEL_DASHBOARD' => null,
            'RELAY_CHANNEL_INVENTORY' => null,
            'RELAY_CHANNEL_PRESENCE_ACTIVITY' => null,
        ];
    }
}
