<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Tests\Support\ServiceFactory;

/**
 * Pusher's rules are checked before anything is enqueued. The service here
 * points at a closed port: a rule violation must be reported as such, never
 * as a broker error, which proves nothing was sent.
 */
final class ValidationTest extends TestCase
{
    /**
     * @dataProvider invalidTriggers
     * @param array<mixed> $channels
     * @param array<mixed> $data
     * @param array<string, mixed> $options
     */
    public function testInvalidTriggerReturnsFalseNamingTheField(array $channels, string $event, array $data, array $options, string $expected): void
    {
        $service = ServiceFactory::make(['AMQP_URL' => 'amqp://guest:guest@127.0.0.1:1/%2f']);

        $ok = count($channels) === 1 && is_string($channels[0])
            ? $service->trigger($channels[0], $event, $data, $options)
            : $service->triggerBatch($channels, $event, $data, $options);

        self::assertFalse($ok);
        self::assertStringContainsString($expected, $service->getLastError());
        self::assertStringNotContainsString('RabbitMQ', $service->getLastError());
    }

    /** @return array<string, array{array<mixed>, string, array<mixed>, array<string, mixed>, string}> */
    public static function invalidTriggers(): array
    {
        return [
            'bad character in channel' => [['chat room'], 'e', [], [], 'channel "chat room" is not a valid channel name'],
            'hash channel' => [['#server-to-user-1'], 'e', [], [], 'channel'],
            'channel over 164 characters' => [[str_repeat('a', 165)], 'e', [], [], 'channel is 165 characters long'],
            'no channels' => [[], 'e', [], [], 'channels must name at least one channel'],
            '101 channels' => [array_map(static fn (int $i): string => "c$i", range(1, 101)), 'e', [], [], 'channels has 101 entries'],
            'bad channel in batch' => [['ok', 'not ok'], 'e', [], [], 'channels[1]'],
            'non-string channel in batch' => [['ok', 5], 'e', [], [], 'channels[1] must be a string'],
            'empty event' => [['c'], '', [], [], 'event must not be empty'],
            'event over 200 characters' => [['c'], str_repeat('e', 201), [], [], 'event is 201 characters long'],
            'malformed socket id' => [['c'], 'e', [], ['socket_id' => '1.1:'], 'socket_id must look like "123.456"'],
            'socket id with newline' => [['c'], 'e', [], ['socket_id' => "1.1\n"], 'socket_id'],
            'data over 10240 bytes' => [['c'], 'e', ['blob' => str_repeat('x', 10240)], [], 'data is 10251 bytes as JSON'],
            'data not encodable' => [['c'], 'e', ['bad' => "\xB1\x31"], [], 'data cannot be encoded as JSON'],
        ];
    }

    public function testDataAtTheLimitIsAccepted(): void
    {
        // 10240 bytes exactly: {"blob":"…"} is 11 bytes of framing.
        $service = ServiceFactory::make(['AMQP_URL' => 'amqp://guest:guest@127.0.0.1:1/%2f', 'AMQP_TIMEOUT' => 1]);
        self::assertFalse($service->trigger('c', 'e', ['blob' => str_repeat('x', 10240 - 11)]));
        self::assertStringContainsString('could not publish to RabbitMQ', $service->getLastError(), 'validation passed; only the broker failed');
    }
}
