<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\QueuedPusherService;
use PusherRelay\Signer;
use PusherRelay\Tests\Support\Vectors;

/** Signing, channel auth and webhook checks against the official SDK vectors. */
final class VectorsTest extends TestCase
{
    /** @return array<string, array{array<string, mixed>}> */
    public static function restSignatureVectors(): array
    {
        return Vectors::provider('rest_signature');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function privateAuthVectors(): array
    {
        return Vectors::provider('private_channel_auth');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function presenceAuthVectors(): array
    {
        return Vectors::provider('presence_channel_auth');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function webhookValidVectors(): array
    {
        return Vectors::provider('webhook_valid');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function webhookInvalidVectors(): array
    {
        return Vectors::provider('webhook_invalid');
    }

    /**
     * @dataProvider restSignatureVectors
     * @param array<string, mixed> $vector
     */
    public function testRestSignatureMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];
        $expected = $vector['expected'];

        $query = Signer::sign($in['key'], $in['secret'], $in['method'], $in['path'], $in['params'], $in['auth_timestamp'], $in['body']);

        self::assertSame($expected['auth_signature'], $query['auth_signature']);
        self::assertSame($in['key'], $query['auth_key']);
        self::assertSame('1.0', $query['auth_version']);
        if (isset($expected['body_md5'])) {
            self::assertSame($expected['body_md5'], $query['body_md5']);
        } else {
            self::assertArrayNotHasKey('body_md5', $query);
        }
        if (isset($expected['string_to_sign'])) {
            self::assertSame($expected['string_to_sign'], Signer::stringToSign($in['method'], $in['path'], $query));
        }
    }

    public function testStringToSignLowercasesKeysButNotValues(): void
    {
        self::assertSame(
            "GET\n/apps/1/channels\nauth_key=k&name=Something else&zeta=A,B",
            Signer::stringToSign('get', '/apps/1/channels', ['Zeta' => 'A,B', 'Name' => 'Something else', 'auth_key' => 'k', 'auth_signature' => 'x'])
        );
    }

    /**
     * authenticateChannel() itself, through the public API, for every private vector.
     *
     * @dataProvider privateAuthVectors
     * @param array<string, mixed> $vector
     */
    public function testPrivateChannelAuthMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];
        $service = self::serviceFor($in['key'], $in['secret']);

        $json = $service->authenticateChannel($in['channel'], $in['socket_id']);

        self::assertIsString($json, $service->getLastError());
        self::assertSame(json_encode(['auth' => $vector['expected']['auth']]), $json);
        self::assertSame($vector['expected']['auth'], Signer::channelAuth($in['key'], $in['secret'], $in['socket_id'], $in['channel']));
    }

    /**
     * Every presence vector through the low-level signer (some channel_data
     * strings, e.g. with spaces or an integer user_id, are not what
     * authenticateChannel would build from an array).
     *
     * @dataProvider presenceAuthVectors
     * @param array<string, mixed> $vector
     */
    public function testPresenceChannelAuthMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];

        $auth = Signer::channelAuth($in['key'], $in['secret'], $in['socket_id'], $in['channel'], $in['channel_data']);

        self::assertSame($vector['expected']['auth'], $auth);
        self::assertSame($vector['expected']['channel_data'], $in['channel_data']);
    }

    /**
     * The presence vectors authenticateChannel can produce from an array
     * (presence- channel, string user_id, compact JSON), through the public API.
     */
    public function testAuthenticateChannelProducesThePresenceVectorsItCan(): void
    {
        $checked = 0;
        foreach (Vectors::ofKind('presence_channel_auth') as $vector) {
            $in = $vector['inputs'];
            $customData = json_decode($in['channel_data'], true);
            if (!str_starts_with($in['channel'], 'presence-') || !is_array($customData)
                || !is_string($customData['user_id'] ?? null)
                || json_encode($customData, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) !== $in['channel_data']) {
                continue;
            }
            $service = self::serviceFor($in['key'], $in['secret']);

            $json = $service->authenticateChannel($in['channel'], $in['socket_id'], $customData);

            self::assertIsString($json, $service->getLastError());
            self::assertSame(['auth' => $vector['expected']['auth'], 'channel_data' => $vector['expected']['channel_data']], json_decode($json, true));
            $checked++;
        }
        self::assertGreaterThanOrEqual(1, $checked, 'at least the Go presence vector applies');
    }

    public function testPresenceUserIdIsSentAsAStringAndChannelDataIsCompactUtf8(): void
    {
        $service = self::serviceFor('278d425bdf160c739803', '7ad3773142a6692b25b8');

        $json = $service->authenticateChannel('presence-foobar', '1234.1234', ['user_id' => 10, 'user_info' => ['name' => 'Mr. Pusher']]);

        $response = json_decode((string) $json, true);
        self::assertSame('{"user_id":"10","user_info":{"name":"Mr. Pusher"}}', $response['channel_data']);
        self::assertSame('278d425bdf160c739803:48dac51d2d7569e1e9c0f48c227d4b26f238fa68e5c0bb04222c966909c4f7c4', $response['auth']);

        $json = $service->authenticateChannel('presence-x', '1.1', ['user_id' => 'ü/1', 'user_info' => ['url' => 'a/b']]);
        self::assertStringContainsString('{\"user_id\":\"ü/1\",\"user_info\":{\"url\":\"a/b\"}}', (string) $json);
    }

    /**
     * @dataProvider badAuthRequests
     * @param array<string, mixed> $customData
     */
    public function testAuthenticateChannelRejectsBadInput(string $channel, string $socketId, array $customData, string $expected): void
    {
        $service = self::serviceFor('key', 'secret-value');

        self::assertFalse($service->authenticateChannel($channel, $socketId, $customData));
        self::assertStringContainsString($expected, $service->getLastError());
        self::assertStringNotContainsString('secret-value', $service->getLastError());
    }

    /** @return array<string, array{string, string, array<string, mixed>, string}> */
    public static function badAuthRequests(): array
    {
        return [
            'socket id with trailing colon' => ['private-a', '1.1:', [], 'socket_id'],
            'socket id with leading colon' => ['private-a', ':1.1', [], 'socket_id'],
            'socket id with newline' => ['private-a', "1.1\n:", [], 'socket_id'],
            'bad channel' => ['private-a:b', '1.1', [], 'channel'],
            'presence without user id' => ['presence-a', '1.1', ['user_info' => []], 'user_id'],
            'encrypted channel' => ['private-encrypted-a', '1.1', [], 'master key'],
        ];
    }

    /**
     * @dataProvider webhookValidVectors
     * @param array<string, mixed> $vector
     */
    public function testValidWebhookVectorIsAccepted(array $vector): void
    {
        $in = $vector['inputs'];
        $service = self::serviceFor($in['app_key'], $in['secret']);

        self::assertTrue($service->verifyWebhook($in['headers'], $in['body']), $service->getLastError());
        self::assertSame($vector['expected']['signature'], Signer::webhookSignature($in['secret'], $in['body']));

        $lowercased = array_change_key_case($in['headers'], CASE_LOWER);
        self::assertTrue($service->verifyWebhook($lowercased, $in['body']), 'header names are case-insensitive');
        $serverStyle = [];
        foreach ($in['headers'] as $name => $value) {
            $serverStyle['HTTP_' . strtoupper(str_replace('-', '_', $name))] = $value;
        }
        self::assertTrue($service->verifyWebhook($serverStyle, $in['body']), '$_SERVER-style names work');
        self::assertFalse($service->verifyWebhook($in['headers'], $in['body'] . ' '), 'a changed body fails');
    }

    /**
     * @dataProvider webhookInvalidVectors
     * @param array<string, mixed> $vector
     */
    public function testInvalidWebhookVectorIsRejected(array $vector): void
    {
        $in = $vector['inputs'];
        $service = self::serviceFor($in['app_key'], $in['secret']);
        $cases = $in['cases'] ?? [$in['headers']];

        foreach ($cases as $i => $headers) {
            self::assertSame($vector['expected']['valid'][$i] ?? $vector['expected']['valid'], $service->verifyWebhook($headers, $in['body']));
            self::assertStringContainsString('X-Pusher-', $service->getLastError());
        }
    }

    public function testWebhookWithoutHeadersIsRejected(): void
    {
        self::assertFalse(self::serviceFor('key', 'secret')->verifyWebhook([], '{}'));
    }

    private static function serviceFor(string $key, string $secret): QueuedPusherService
    {
        return new QueuedPusherService(['PUSHER_APP_ID' => '1', 'PUSHER_APP_KEY' => $key, 'PUSHER_APP_SECRET' => $secret]);
    }
}
