<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;

/**
 * A private corner of the real RabbitMQ for one test: its own topic
 * exchange and an exclusive queue bound with '#', so every intent the
 * service publishes there can be read back, and tests never see each
 * other's messages.
 */
final class RabbitQueue
{
    public const URL = 'amqp://guest:guest@127.0.0.1:5672/%2f';

    public readonly string $exchange;
    private AMQPStreamConnection $connection;
    private AMQPChannel $channel;
    private string $queue;

    public function __construct()
    {
        $this->exchange = 'test.pusher-relay-php.' . bin2hex(random_bytes(6));
        $this->connection = new AMQPStreamConnection('127.0.0.1', 5672, 'guest', 'guest');
        $this->channel = $this->connection->channel();
        $this->channel->exchange_declare($this->exchange, 'topic', false, false, false);
        [$this->queue] = $this->channel->queue_declare('', false, false, true, true);
        $this->channel->queue_bind($this->queue, $this->exchange, '#');
    }

    /** The next message on the queue, or null when it is empty. */
    public function next(): ?AMQPMessage
    {
        return $this->channel->basic_get($this->queue, true);
    }

    public function count(): int
    {
        [, $count] = $this->channel->queue_declare($this->queue, true);
        return (int) $count;
    }

    public function close(): void
    {
        $this->channel->exchange_delete($this->exchange);
        $this->channel->close();
        $this->connection->close();
    }
}
