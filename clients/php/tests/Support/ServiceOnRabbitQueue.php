<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

use PusherRelay\QueuedPusherService;

/**
 * For tests that read what the service enqueued: each test gets its own
 * corner of the real RabbitMQ and a service publishing into it.
 */
trait ServiceOnRabbitQueue
{
    private RabbitQueue $rabbit;
    private QueuedPusherService $service;

    protected function setUp(): void
    {
        $this->rabbit = new RabbitQueue();
        $this->service = ServiceFactory::make(['AMQP_EXCHANGE' => $this->rabbit->exchange]);
    }

    protected function tearDown(): void
    {
        $this->rabbit->close();
    }
}
