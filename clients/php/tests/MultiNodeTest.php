<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Tests\Support\NodeProxy;
use PusherRelay\Tests\Support\RabbitQueue;
use PusherRelay\Tests\Support\ServiceFactory;

/**
 * AMQP_URL listing several RabbitMQ nodes: the client connects to the first
 * that accepts, in a random order, and replaces a lost connection from the
 * same list. The real broker plays the live node; dead ports and
 * tests/node_proxy.php (listeners passing through to it) play the others.
 */
final class MultiNodeTest extends TestCase
{
    private RabbitQueue $rabbit;
    private ?NodeProxy $nodes = null;

    protected function setUp(): void
    {
        $this->rabbit = new RabbitQueue();
    }

    protected function tearDown(): void
    {
        $this->nodes?->stop();
        $this->rabbit->close();
    }

    public function testDeadNodesAreSkippedUntilOneAccepts(): void
    {
        $url = implode(',', [
            'amqp://guest:guest@127.0.0.1:1/%2f',
            sprintf('amqp://guest:guest@127.0.0.1:%d/%%2f', self::closedPort()),
            RabbitQueue::URL,
        ]);

        // A new service per publish: each shuffles the list again, so the
        // live node comes first, second and last in turn.
        for ($i = 0; $i < 6; $i++) {
            $service = ServiceFactory::make(['AMQP_URL' => $url, 'AMQP_EXCHANGE' => $this->rabbit->exchange]);
            self::assertTrue($service->trigger('orders', 'order-created', ['n' => $i]), $service->getLastError());
            self::assertSame('', $service->getLastError());
        }

        self::assertSame(6, $this->rabbit->count());
        self::assertSame(['ordering-key' => 'orders'], $this->rabbit->next()->get('application_headers')->getNativeData());
    }

    public function testEveryNodeDownIsAFailureNamingTheNodesWithoutPasswords(): void
    {
        $closed = self::closedPort();
        $service = ServiceFactory::make([
            'AMQP_URL' => "amqp://guest:first-secret@127.0.0.1:1/%2f, amqp://guest:second-secret@127.0.0.1:$closed/%2f",
            'AMQP_EXCHANGE' => $this->rabbit->exchange,
            'AMQP_TIMEOUT' => 2,
        ]);

        self::assertFalse($service->trigger('a', 'e'));

        $error = $service->getLastError();
        self::assertStringContainsString('could not publish to RabbitMQ: no RabbitMQ node of AMQP_URL accepted a connection', $error);
        self::assertStringContainsString('amqp://guest:***@127.0.0.1:1/%2F', $error);
        self::assertStringContainsString("amqp://guest:***@127.0.0.1:$closed/%2F", $error);
        self::assertStringNotContainsString('first-secret', $error);
        self::assertStringNotContainsString('second-secret', $error);
        self::assertFalse($service->notifyUser(1, 'hi'));
    }

    public function testConnectionsSpreadOverTheNodes(): void
    {
        $this->nodes = new NodeProxy(2);
        $url = $this->nodes->url(0) . ',' . $this->nodes->url(1);

        for ($i = 0; $i < 24; $i++) {
            $service = ServiceFactory::make(['AMQP_URL' => $url, 'AMQP_EXCHANGE' => $this->rabbit->exchange]);
            self::assertTrue($service->announce("n$i"), $service->getLastError());
        }

        // Listed first, node 0 would take all 24 without the shuffle; with
        // it, both take some (all on one node: odds 2 in 2^24).
        [$first, $second] = $this->nodes->accepted();
        self::assertSame(24, $first + $second);
        self::assertGreaterThan(0, $first, 'node 0 never chosen');
        self::assertGreaterThan(0, $second, 'node 1 never chosen');
        self::assertSame(24, $this->rabbit->count());
    }

    public function testALostConnectionIsReplacedOnAnotherNodeOfTheList(): void
    {
        $this->nodes = new NodeProxy(2);
        $service = ServiceFactory::make([
            'AMQP_URL' => $this->nodes->url(0) . ',' . $this->nodes->url(1),
            'AMQP_EXCHANGE' => $this->rabbit->exchange,
        ]);
        self::assertTrue($service->notifyUser(1, 'before'), $service->getLastError());
        self::assertSame(1, array_sum($this->nodes->accepted()));

        // The node in use dies: its connection drops and it refuses new ones.
        $this->nodes->cutNodesInUse();

        self::assertTrue($service->notifyUser(1, 'after'), $service->getLastError());
        self::assertSame([1, 1], $this->nodes->accepted(), 'the second connection went to the other node');
        $before = json_decode($this->rabbit->next()->getBody(), true);
        $after = json_decode($this->rabbit->next()->getBody(), true);
        self::assertSame(['before', 'after'], [$before['message'], $after['message']]);
    }

    /** A port nothing listens on: connecting is refused at once. */
    private static function closedPort(): int
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr((string) strrchr((string) stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);

        return $port;
    }
}
