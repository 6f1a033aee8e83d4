<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Tests\Support\ServiceOnRabbitQueue;

/** Each helper enqueues exactly one typed intent (the "Wire contract v1" table of docs/producers.md) on the real RabbitMQ. */
final class HelpersTest extends TestCase
{
    use ServiceOnRabbitQueue;

    /**
     * @dataProvider helperCases
     * @param array<mixed> $args
     * @param array<string, mixed> $fields the body without id and created_at
     */
    public function testHelperEnqueuesOneTypedIntent(string $method, array $args, string $type, array $fields): void
    {
        self::assertTrue($this->service->{$method}(...$args), $this->service->getLastError());

        $message = $this->rabbit->next();
        self::assertNotNull($message);
        self::assertNull($this->rabbit->next(), 'exactly one intent');
        self::assertSame($type, $message->getRoutingKey());
        self::assertSame('application/json', $message->get('content_type'));
        self::assertSame(2, $message->get('delivery_mode'));

        $body = json_decode($message->getBody(), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame($body['id'], $message->get('message_id'));
        self::assertSame(intdiv($body['created_at'], 1000), $message->get('timestamp'));
        unset($body['id'], $body['created_at']);
        self::assertSame(['type' => $type] + $fields, $body);
    }

    /** @return array<string, array{string, array<mixed>, string, array<string, mixed>}> */
    public static function helperCases(): array
    {
        return [
            'notifyUser with int id' => ['notifyUser', [123, 'Your order shipped', 'success'], 'notification',
                ['user_id' => 123, 'message' => 'Your order shipped', 'level' => 'success']],
            'notifyUser default level, string id' => ['notifyUser', ['u-7', 'hi'], 'notification',
                ['user_id' => 'u-7', 'message' => 'hi', 'level' => 'info']],
            'announce' => ['announce', ['Maintenance tonight', 'high'], 'announcement',
                ['message' => 'Maintenance tonight', 'priority' => 'high']],
            'announce default priority' => ['announce', ['m'], 'announcement', ['message' => 'm', 'priority' => 'normal']],
            'postChatMessage' => ['postChatMessage', [42, '7', 'Ann', 'hello'], 'chat.message',
                ['room_id' => 42, 'user_id' => '7', 'user_name' => 'Ann', 'message' => 'hello']],
            'userJoinedRoom' => ['userJoinedRoom', ['lobby', 7, 'Ann'], 'chat.joined',
                ['room_id' => 'lobby', 'user_id' => 7, 'user_name' => 'Ann']],
            'userLeftRoom' => ['userLeftRoom', [5, 'u7', 'Ann'], 'chat.left',
                ['room_id' => 5, 'user_id' => 'u7', 'user_name' => 'Ann']],
            'updateOrderStatus with customer' => ['updateOrderStatus', [99, 'shipped', 'c-5'], 'order.status',
                ['order_id' => 99, 'status' => 'shipped', 'customer_id' => 'c-5']],
            'updateOrderStatus without customer' => ['updateOrderStatus', ['A1', 'paid'], 'order.status',
                ['order_id' => 'A1', 'status' => 'paid']],
            'updateDashboardMetrics' => ['updateDashboardMetrics', [['users' => 10, 'load' => 0.5]], 'dashboard.metrics',
                ['metrics' => ['users' => 10, 'load' => 0.5]]],
            'updateInventory' => ['updateInventory', [17, 3], 'inventory.stock', ['product_id' => 17, 'quantity' => 3]],
            'updateInventory numeric string quantity' => ['updateInventory', ['sku-1', '12'], 'inventory.stock',
                ['product_id' => 'sku-1', 'quantity' => 12]],
            'broadcastUserActivity' => ['broadcastUserActivity', [8, 'typing'], 'presence.activity',
                ['user_id' => 8, 'activity' => 'typing']],
        ];
    }

    public function testEmptyMetricsAreAnObject(): void
    {
        self::assertTrue($this->service->updateDashboardMetrics([]));
        self::assertStringContainsString('"metrics":{}', $this->rabbit->next()->getBody());
    }

    /**
     * @dataProvider invalidHelperCases
     * @param array<mixed> $args
     */
    public function testInvalidHelperArgumentsAreRejectedBeforeEnqueueing(string $method, array $args, string $field): void
    {
        self::assertFalse($this->service->{$method}(...$args));
        self::assertStringContainsString($field, $this->service->getLastError());
        self::assertSame(0, $this->rabbit->count());
    }

    /** @return array<string, array{string, array<mixed>, string}> */
    public static function invalidHelperCases(): array
    {
        return [
            'null user id' => ['notifyUser', [null, 'm'], 'user_id'],
            'empty room id' => ['postChatMessage', ['', 1, 'Ann', 'm'], 'room_id'],
            'float order id' => ['updateOrderStatus', [1.5, 'paid'], 'order_id'],
            'array message' => ['announce', [['x']], 'message'],
            'non-numeric quantity' => ['updateInventory', [1, 'lots'], 'quantity'],
            'list metrics' => ['updateDashboardMetrics', [[1, 2]], 'metrics'],
            'oversized chat message' => ['postChatMessage', [1, 1, 'Ann', str_repeat('x', 10300)], 'at most 10240'],
        ];
    }
}
