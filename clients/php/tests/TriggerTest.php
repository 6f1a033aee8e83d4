<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PhpAmqpLib\Message\AMQPMessage;
use PHPUnit\Framework\TestCase;
use PusherRelay\Tests\Support\ServiceFactory;
use PusherRelay\Tests\Support\ServiceOnRabbitQueue;

/** trigger() and triggerBatch() against the real RabbitMQ. */
final class TriggerTest extends TestCase
{
    use ServiceOnRabbitQueue;

    public function testTriggerEnqueuesOneEventIntentWithContractProperties(): void
    {
        $before = (int) floor(microtime(true) * 1000);
        $ok = $this->service->trigger('notifications', 'new-message', ['message' => 'Hello/World ✓', 'user' => 'John']);
        $after = (int) floor(microtime(true) * 1000);

        self::assertTrue($ok, $this->service->getLastError());
        self::assertSame('', $this->service->getLastError());
        $message = $this->rabbit->next();
        self::assertNotNull($message);
        self::assertNull($this->rabbit->next(), 'exactly one message');

        $body = json_decode($message->getBody(), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame(['type', 'id', 'channels', 'event', 'data', 'created_at'], array_keys($body));
        self::assertSame('event', $body['type']);
        self::assertSame(['notifications'], $body['channels']);
        self::assertSame('new-message', $body['event']);
        self::assertSame(['message' => 'Hello/World ✓', 'user' => 'John'], $body['data']);
        self::assertMatchesRegularExpression('/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/', $body['id']);
        self::assertIsInt($body['created_at']);
        self::assertGreaterThanOrEqual($before, $body['created_at']);
        self::assertLessThanOrEqual($after, $body['created_at']);
        self::assertStringContainsString('"Hello/World ✓"', $message->getBody(), 'compact UTF-8 JSON, slashes unescaped');

        self::assertSame('event', $message->getRoutingKey());
        self::assertSame('application/json', $message->get('content_type'));
        self::assertSame(AMQPMessage::DELIVERY_MODE_PERSISTENT, $message->get('delivery_mode'));
        self::assertSame($body['id'], $message->get('message_id'));
        self::assertSame(intdiv($body['created_at'], 1000), $message->get('timestamp'));
    }

    public function testTriggerPassesSocketIdAndInfo(): void
    {
        self::assertTrue($this->service->trigger('user-123', 'profile-updated', ['name' => 'x'], [
            'socket_id' => '123.456',
            'info' => ['subscription_count', 'user_count'],
        ]), $this->service->getLastError());

        $body = json_decode($this->rabbit->next()->getBody(), true);
        self::assertSame('123.456', $body['socket_id']);
        self::assertSame('subscription_count,user_count', $body['info']);
    }

    public function testEmptyDataIsSentAsAnObject(): void
    {
        self::assertTrue($this->service->trigger('system', 'ping'));
        self::assertStringContainsString('"data":{}', $this->rabbit->next()->getBody());
    }

    public function testTriggerBatchEnqueuesOneIntentForAllChannels(): void
    {
        $ok = $this->service->triggerBatch(
            ['order-7', 'customer-9'],
            'order-status-changed',
            ['order_id' => 7, 'status' => 'shipped', 'timestamp' => 1700000000]
        );

        self::assertTrue($ok, $this->service->getLastError());
        self::assertSame(1, $this->rabbit->count());
        $message = $this->rabbit->next();
        $body = json_decode($message->getBody(), true);
        self::assertSame('event', $message->getRoutingKey());
        self::assertSame(['order-7', 'customer-9'], $body['channels']);
        self::assertSame('order-status-changed', $body['event']);
        self::assertSame(['order_id' => 7, 'status' => 'shipped', 'timestamp' => 1700000000], $body['data']);
        self::assertSame($body['id'], $message->get('message_id'));
    }

    public function testEachIntentGetsItsOwnId(): void
    {
        $this->service->trigger('a', 'e');
        $this->service->trigger('a', 'e');
        $first = $this->rabbit->next();
        $second = $this->rabbit->next();
        self::assertNotSame($first->get('message_id'), $second->get('message_id'));
    }

    public function testUnroutableIntentIsAFailure(): void
    {
        $lonely = 'test.pusher-relay-php.unbound.' . bin2hex(random_bytes(4));
        $admin = new \PhpAmqpLib\Connection\AMQPStreamConnection('127.0.0.1', 5672, 'guest', 'guest');
        $channel = $admin->channel();
        $channel->exchange_declare($lonely, 'topic', false, false, false);
        try {
            $service = ServiceFactory::make(['AMQP_EXCHANGE' => $lonely]);
            self::assertFalse($service->trigger('a', 'e', ['x' => 1]));
            self::assertStringContainsString('could not route', $service->getLastError());
            self::assertStringContainsString('NO_ROUTE', $service->getLastError());
        } finally {
            $channel->exchange_delete($lonely);
            $admin->close();
        }
    }

    public function testMissingExchangeIsAFailureAndTheServiceRecovers(): void
    {
        $service = ServiceFactory::make(['AMQP_EXCHANGE' => 'test.pusher-relay-php.does-not-exist']);
        self::assertFalse($service->trigger('a', 'e'));
        self::assertStringContainsString('NOT_FOUND', $service->getLastError());
        self::assertStringContainsString('does-not-exist', $service->getLastError());
        // The broker closed the channel; a second call must fail the same way, not crash.
        self::assertFalse($service->trigger('a', 'e'));
        self::assertStringContainsString('NOT_FOUND', $service->getLastError());
    }

    public function testClosedPortIsAFailureNotAnException(): void
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);

        $service = ServiceFactory::make(['AMQP_URL' => "amqp://guest:guest@127.0.0.1:$port/%2f", 'AMQP_TIMEOUT' => 2]);
        self::assertFalse($service->trigger('a', 'e'));
        self::assertStringContainsString('could not publish to RabbitMQ', $service->getLastError());
        self::assertFalse($service->notifyUser(1, 'hi'));
    }

    public function testBrokerErrorsNeverContainTheSecret(): void
    {
        $service = ServiceFactory::make(['AMQP_URL' => 'amqp://guest:wrong-password@127.0.0.1:5672/%2f']);
        self::assertFalse($service->trigger('a', 'e'));
        self::assertNotSame('', $service->getLastError());
        self::assertStringNotContainsString(ServiceFactory::SECRET, $service->getLastError());
        self::assertStringNotContainsString('wrong-password', $service->getLastError());
    }

    public function testAmqpsSpeaksTlsNeverPlainAmqp(): void
    {
        // 5672 answers plain AMQP only: a TLS client cannot get through, where
        // a plaintext one (sending the password in clear) would publish.
        $service = ServiceFactory::make([
            'AMQP_URL' => 'amqps://guest:guest@127.0.0.1:5672/%2f',
            'AMQP_EXCHANGE' => $this->rabbit->exchange,
            'AMQP_TIMEOUT' => 2,
        ]);

        self::assertFalse($service->trigger('a', 'e'));
        self::assertStringContainsString('could not publish to RabbitMQ', $service->getLastError());
        self::assertSame(0, $this->rabbit->count());
    }
}
