<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Tests\Support\ServiceOnRabbitQueue;

/**
 * sendToUser() (an `event` intent to #server-to-user-{id}) and
 * postChatMessage()'s socket id, against the real RabbitMQ.
 */
final class SendToUserTest extends TestCase
{
    use ServiceOnRabbitQueue;

    public function testSendToUserEnqueuesOneEventIntentToTheUsersReservedChannel(): void
    {
        self::assertTrue($this->service->sendToUser('ada', 'direct-message', ['from' => 'Bob', 'message' => 'hi/there ✓']), $this->service->getLastError());
        self::assertSame('', $this->service->getLastError());

        $message = $this->rabbit->next();
        self::assertNotNull($message);
        self::assertNull($this->rabbit->next(), 'exactly one intent');
        self::assertSame('event', $message->getRoutingKey());
        self::assertSame('application/json', $message->get('content_type'));
        self::assertSame(2, $message->get('delivery_mode'));
        $body = json_decode($message->getBody(), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame(['type', 'id', 'channels', 'event', 'data', 'created_at'], array_keys($body));
        self::assertSame('event', $body['type']);
        self::assertSame(['#server-to-user-ada'], $body['channels']);
        self::assertSame('direct-message', $body['event']);
        self::assertSame(['from' => 'Bob', 'message' => 'hi/there ✓'], $body['data']);
        self::assertSame($body['id'], $message->get('message_id'));
        self::assertSame('#server-to-user-ada', $message->get('application_headers')->getNativeData()['ordering-key']);
    }

    public function testSendToUserTakesAnIntegerIdAndAnyJsonData(): void
    {
        self::assertTrue($this->service->sendToUser(123, 'ping', 'just text'), $this->service->getLastError());
        self::assertTrue($this->service->sendToUser('u=1@x', 'empty'), $this->service->getLastError());

        $first = json_decode($this->rabbit->next()->getBody(), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame(['#server-to-user-123'], $first['channels']);
        self::assertSame('just text', $first['data']);
        $second = $this->rabbit->next()->getBody();
        self::assertStringContainsString('"channels":["#server-to-user-u=1@x"]', $second);
        self::assertStringContainsString('"data":{}', $second, '[] is sent as {} like trigger()');
    }

    /**
     * @dataProvider invalidSendToUserCases
     */
    public function testInvalidSendToUserIsRejectedBeforeEnqueueing(mixed $userId, string $event, mixed $data, string $expected): void
    {
        self::assertFalse($this->service->sendToUser($userId, $event, $data));
        self::assertStringContainsString($expected, $this->service->getLastError());
        self::assertSame(0, $this->rabbit->count());
    }

    /** @return array<string, array{mixed, string, mixed, string}> */
    public static function invalidSendToUserCases(): array
    {
        return [
            'empty user id' => ['', 'e', [], 'userId'],
            'null user id' => [null, 'e', [], 'userId'],
            'float user id' => [1.5, 'e', [], 'userId'],
            'user id with a space' => ['a b', 'e', [], 'userId'],
            'user id with a #' => ['#x', 'e', [], 'userId'],
            'channel too long' => [str_repeat('a', 149), 'e', [], 'at most 164'],
            'empty event' => ['ada', '', [], 'event'],
            'oversized data' => ['ada', 'e', ['x' => str_repeat('x', 10300)], 'at most 10240'],
        ];
    }

    public function testLongestUserIdThatFitsTheChannelLimit(): void
    {
        self::assertTrue($this->service->sendToUser(str_repeat('a', 148), 'e', []), $this->service->getLastError());
        self::assertSame(1, $this->rabbit->count());
    }

    public function testPostChatMessageCarriesTheSendersSocketId(): void
    {
        self::assertTrue($this->service->postChatMessage('lobby', 'ada', 'Ada', 'hello', '123.456'), $this->service->getLastError());

        $message = $this->rabbit->next();
        self::assertSame('chat.message', $message->getRoutingKey());
        $body = json_decode($message->getBody(), true, 512, JSON_THROW_ON_ERROR);
        unset($body['id'], $body['created_at']);
        self::assertSame(
            ['type' => 'chat.message', 'room_id' => 'lobby', 'user_id' => 'ada', 'user_name' => 'Ada', 'message' => 'hello', 'socket_id' => '123.456'],
            $body
        );
        self::assertSame('chat-room-lobby', $message->get('application_headers')->getNativeData()['ordering-key']);
    }

    public function testPostChatMessageWithoutSocketIdHasNone(): void
    {
        self::assertTrue($this->service->postChatMessage(1, 2, 'Ann', 'hi', null), $this->service->getLastError());

        self::assertArrayNotHasKey('socket_id', json_decode($this->rabbit->next()->getBody(), true, 512, JSON_THROW_ON_ERROR));
    }

    /**
     * @dataProvider badSocketIds
     */
    public function testPostChatMessageRejectsAMalformedSocketId(string $socketId): void
    {
        self::assertFalse($this->service->postChatMessage('lobby', 'ada', 'Ada', 'hello', $socketId));
        self::assertStringContainsString('socket_id', $this->service->getLastError());
        self::assertSame(0, $this->rabbit->count());
    }

    /** @return array<string, array{string}> */
    public static function badSocketIds(): array
    {
        return [
            'trailing colon' => ['1.1:'],
            'leading colon' => [':1.1'],
            'newline' => ["1.1\n"],
            'no dot' => ['123'],
            'empty' => [''],
        ];
    }
}
