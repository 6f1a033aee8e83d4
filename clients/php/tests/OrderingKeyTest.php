<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PhpAmqpLib\Wire\AMQPAbstractCollection;
use PHPUnit\Framework\TestCase;
use PusherRelay\Config;
use PusherRelay\QueuedPusherService;
use PusherRelay\Tests\Support\OrderingKeys;
use PusherRelay\Tests\Support\RabbitQueue;
use PusherRelay\Tests\Support\ServiceFactory;

/**
 * Every intent carries its ordering key (the last channel the worker
 * delivers it to) in the `ordering-key` header, which the worker's shards
 * route on. The keys must be the worker's: tests/data/ordering-keys.json is
 * shared with tests/offline/ordering_keys.rs, which checks the worker's side.
 */
final class OrderingKeyTest extends TestCase
{
    private ?RabbitQueue $rabbit = null;

    protected function tearDown(): void
    {
        $this->rabbit?->close();
    }

    /** @return array<string, array{array<string, mixed>, string}> */
    public static function fixture(): array
    {
        return OrderingKeys::provider();
    }

    /**
     * @dataProvider fixture
     * @param array<string, mixed> $intent
     */
    public function testTheClientComputesTheWorkersKey(array $intent, string $key): void
    {
        $config = Config::fromEnvironment(ServiceFactory::settings());

        self::assertSame($key, $config->channels->orderingKey($intent));
    }

    /**
     * The fixture's intent is what the matching method publishes, and the
     * message carries its key as a long-string header.
     *
     * @dataProvider fixture
     * @param array<string, mixed> $intent
     */
    public function testThePublishedIntentCarriesItsKeyInTheHeader(array $intent, string $key): void
    {
        $this->rabbit = new RabbitQueue();
        $service = ServiceFactory::make(['AMQP_EXCHANGE' => $this->rabbit->exchange]);

        self::assertTrue(self::publish($service, $intent), $service->getLastError());

        $message = $this->rabbit->next();
        self::assertNotNull($message);
        $body = json_decode($message->getBody(), true, 512, JSON_THROW_ON_ERROR);
        unset($body['id'], $body['created_at'], $intent['id'], $intent['created_at']);
        self::assertSame($intent, $body, 'the fixture intent is what the client publishes');
        self::assertSame(
            ['ordering-key' => [AMQPAbstractCollection::T_STRING_LONG, $key]],
            iterator_to_array($message->get('application_headers')),
            'one header, a long string'
        );
    }

    public function testLegacyStyleKeysAreTheSeedAppsPublicChannels(): void
    {
        $channels = Config::fromEnvironment(ServiceFactory::settings(['RELAY_CHANNEL_STYLE' => 'legacy']))->channels;

        self::assertSame('user-42', $channels->orderingKey(['type' => 'notification', 'user_id' => 42]));
        self::assertSame('order-1001', $channels->orderingKey(['type' => 'order.status', 'order_id' => 1001]));
        self::assertSame('customer-c7', $channels->orderingKey(['type' => 'order.status', 'order_id' => 1001, 'customer_id' => 'c7']));
        self::assertSame('chat-room-5', $channels->orderingKey(['type' => 'chat.left', 'room_id' => 5, 'user_id' => 1]));
        self::assertSame('system', $channels->orderingKey(['type' => 'announcement', 'message' => 'm']));
    }

    public function testTemplateOverridesChangeTheKeysAsTheyChangeTheWorkersChannels(): void
    {
        $channels = Config::fromEnvironment(ServiceFactory::settings([
            'RELAY_CHANNEL_STYLE' => 'legacy',
            'RELAY_CHANNEL_CUSTOMER' => 'shop-{customer_id}-order-{order_id}',
            'RELAY_CHANNEL_INVENTORY' => 'stock-{product_id}',
            'RELAY_CHANNEL_CHAT' => 'room-{room_id}-{user_id}',
        ]))->channels;

        self::assertSame('shop-9-order-7', $channels->orderingKey(['type' => 'order.status', 'order_id' => 7, 'customer_id' => 9]));
        self::assertSame('order-7', $channels->orderingKey(['type' => 'order.status', 'order_id' => 7]));
        self::assertSame('stock-sku-1', $channels->orderingKey(['type' => 'inventory.stock', 'product_id' => 'sku-1', 'quantity' => 1]));
        self::assertSame('room-5-u1', $channels->orderingKey(['type' => 'chat.joined', 'room_id' => 5, 'user_id' => 'u1']));
        self::assertSame('presence-activity', $channels->orderingKey(['type' => 'presence.activity', 'user_id' => 3]), 'slots not overridden keep the style');
    }

    public function testLegacyStyleIsWhatThePublishedHeaderFollows(): void
    {
        $this->rabbit = new RabbitQueue();
        $service = ServiceFactory::make(['AMQP_EXCHANGE' => $this->rabbit->exchange, 'RELAY_CHANNEL_STYLE' => 'legacy']);

        self::assertTrue($service->updateOrderStatus(7, 'shipped', 9), $service->getLastError());
        self::assertTrue($service->updateOrderStatus('o-8', 'paid', 0), $service->getLastError());

        self::assertSame(['ordering-key' => 'customer-9'], $this->rabbit->next()->get('application_headers')->getNativeData());
        self::assertSame(['ordering-key' => 'order-o-8'], $this->rabbit->next()->get('application_headers')->getNativeData());
    }

    /**
     * Calls the method of the public API that publishes $intent.
     *
     * @param array<string, mixed> $intent
     */
    private static function publish(QueuedPusherService $service, array $intent): bool
    {
        $options = array_intersect_key($intent, ['socket_id' => true, 'info' => true]);

        return match ($intent['type']) {
            'notification' => $service->notifyUser($intent['user_id'], $intent['message'], $intent['level']),
            'announcement' => $service->announce($intent['message'], $intent['priority']),
            'chat.message' => $service->postChatMessage($intent['room_id'], $intent['user_id'], $intent['user_name'], $intent['message']),
            'chat.joined' => $service->userJoinedRoom($intent['room_id'], $intent['user_id'], $intent['user_name']),
            'chat.left' => $service->userLeftRoom($intent['room_id'], $intent['user_id'], $intent['user_name']),
            'order.status' => $service->updateOrderStatus($intent['order_id'], $intent['status'], $intent['customer_id'] ?? null),
            'dashboard.metrics' => $service->updateDashboardMetrics($intent['metrics']),
            'inventory.stock' => $service->updateInventory($intent['product_id'], $intent['quantity']),
            'presence.activity' => $service->broadcastUserActivity($intent['user_id'], $intent['activity']),
            'event' => count($intent['channels']) === 1
                ? $service->trigger($intent['channels'][0], $intent['event'], $intent['data'], $options)
                : $service->triggerBatch($intent['channels'], $intent['event'], $intent['data'], $options),
        };
    }
}
