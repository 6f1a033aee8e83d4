<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\QueuedPusherService;
use PusherRelay\Tests\Support\FakePusher;
use PusherRelay\Tests\Support\ServiceFactory;

/**
 * getChannels() and getChannelInfo() stay synchronous; a fake Pusher that
 * checks every request's signature answers them.
 */
final class ChannelQueriesTest extends TestCase
{
    private static FakePusher $pusher;

    public static function setUpBeforeClass(): void
    {
        self::$pusher = new FakePusher(ServiceFactory::APP_ID, ServiceFactory::KEY, ServiceFactory::SECRET);
    }

    public static function tearDownAfterClass(): void
    {
        self::$pusher->stop();
    }

    public function testGetChannelsListsOccupiedChannels(): void
    {
        $service = self::service();

        $answer = $service->getChannels();

        self::assertSame(['channels' => ['presence-lobby' => [], 'chat-room-1' => [], 'presence-room-2' => []]], $answer, $service->getLastError());
    }

    public function testGetChannelsFiltersByPrefixWithUserCount(): void
    {
        $service = self::service();

        $answer = $service->getChannels(['filter_by_prefix' => 'presence-', 'info' => ['user_count']]);

        self::assertSame(['channels' => ['presence-lobby' => ['user_count' => 3], 'presence-room-2' => ['user_count' => 1]]], $answer, $service->getLastError());
    }

    public function testGetChannelInfoJoinsInfoWithCommas(): void
    {
        $service = self::service();

        $answer = $service->getChannelInfo('presence-lobby', ['user_count', 'subscription_count']);

        self::assertSame(['occupied' => true, 'user_count' => 3, 'subscription_count' => 13], $answer, $service->getLastError());
        self::assertSame('', $service->getLastError());
    }

    public function testGetChannelInfoOfAnEmptyChannel(): void
    {
        self::assertSame(['occupied' => false], self::service()->getChannelInfo('nobody-here'));
    }

    public function testPusherErrorIsFalseWithStatusAndBody(): void
    {
        $service = self::service();

        self::assertFalse($service->getChannelInfo('chat-room-1', ['user_count']));
        self::assertStringContainsString('HTTP 400', $service->getLastError());
        self::assertStringContainsString('presence channel', $service->getLastError());
    }

    public function testWrongSecretIsRejectedByTheSignatureCheckAndNotLeaked(): void
    {
        $service = self::service(['PUSHER_APP_SECRET' => 'not-the-right-secret']);

        self::assertFalse($service->getChannels());
        self::assertStringContainsString('HTTP 401', $service->getLastError());
        self::assertStringNotContainsString('not-the-right-secret', $service->getLastError());
    }

    public function testInvalidChannelNameIsRejectedLocally(): void
    {
        $service = self::service();

        self::assertFalse($service->getChannelInfo('bad/channel'));
        self::assertStringContainsString('channel "bad/channel"', $service->getLastError());
    }

    public function testReservedOptionIsRejected(): void
    {
        $service = self::service();

        self::assertFalse($service->getChannels(['auth_timestamp' => 1]));
        self::assertStringContainsString('reserved', $service->getLastError());
    }

    public function testUnreachablePusherIsFalse(): void
    {
        $service = self::service(['PUSHER_PORT' => 1, 'PUSHER_HTTP_TIMEOUT' => 2]);

        self::assertFalse($service->getChannels());
        self::assertStringContainsString('failed', $service->getLastError());
    }

    /** @param array<string, mixed> $overrides */
    private static function service(array $overrides = []): QueuedPusherService
    {
        return ServiceFactory::make($overrides + [
            'PUSHER_HOST' => '127.0.0.1',
            'PUSHER_PORT' => self::$pusher->port,
            'PUSHER_SCHEME' => 'http',
        ]);
    }
}
