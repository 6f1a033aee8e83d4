<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Config;
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
    public static function userAuthVectors(): array
    {
        return Vectors::provider('user_auth');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function encryptedAuthVectors(): array
    {
        return Vectors::provider('encrypted_channel_auth');
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function sharedSecretVectors(): array
    {
        return Vectors::provider('shared_secret');
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
            'encrypted channel without a master key' => ['private-encrypted-a', '1.1', [], 'PUSHER_ENCRYPTION_MASTER_KEY_BASE64'],
        ];
    }

    /**
     * Every user-auth vector through authenticateUser(), from the decoded
     * user_data (compact JSON reproduces each vector's text), and the signer.
     *
     * @dataProvider userAuthVectors
     * @param array<string, mixed> $vector
     */
    public function testUserAuthMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];
        $service = self::serviceFor($in['key'], $in['secret']);
        $userData = json_decode($in['user_data'], true, 512, JSON_THROW_ON_ERROR);

        $answer = self::decoded($service->authenticateUser($in['socket_id'], $userData));

        self::assertSame(['auth' => $vector['expected']['auth'], 'user_data' => $vector['expected']['user_data']], $answer, $service->getLastError());
        self::assertSame($vector['expected']['auth'], Signer::userAuth($in['key'], $in['secret'], $in['socket_id'], $in['user_data']));
    }

    public function testUserAuthSendsAnIntegerIdAsAStringAndKeepsUserInfoCompactUtf8(): void
    {
        $service = self::serviceFor('278d425bdf160c739803', '7ad3773142a6692b25b8');

        $answer = self::decoded($service->authenticateUser('1234.1234', ['id' => 12345]));
        self::assertSame('{"id":"12345"}', $answer['user_data'] ?? null, $service->getLastError());
        self::assertSame('278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba', $answer['auth']);

        $answer = self::decoded($service->authenticateUser('1.1', ['id' => 'ada', 'user_info' => ['name' => 'Zoë', 'url' => 'a/b'], 'watchlist' => ['bob']]));
        self::assertSame('{"id":"ada","user_info":{"name":"Zoë","url":"a/b"},"watchlist":["bob"]}', $answer['user_data'] ?? null);
        self::assertSame(Signer::userAuth('278d425bdf160c739803', '7ad3773142a6692b25b8', '1.1', $answer['user_data']), $answer['auth']);
    }

    /**
     * authenticateUser()'s answer, the JSON text to echo, as an array (false
     * stays false, so a failure shows in the assertion that follows).
     *
     * @return array<string, mixed>|false
     */
    private static function decoded(string|false $answer): array|false
    {
        return $answer === false ? false : json_decode($answer, true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * @dataProvider badUserAuthRequests
     * @param array<string, mixed> $userData
     */
    public function testAuthenticateUserRejectsBadInput(string $socketId, array $userData, string $expected): void
    {
        $service = self::serviceFor('key', 'secret-value');

        self::assertFalse($service->authenticateUser($socketId, $userData));
        self::assertStringContainsString($expected, $service->getLastError());
        self::assertStringNotContainsString('secret-value', $service->getLastError());
    }

    /** @return array<string, array{string, array<string, mixed>, string}> */
    public static function badUserAuthRequests(): array
    {
        return [
            'socket id with trailing colon' => ['1.1:', ['id' => 'a'], 'socket_id'],
            'socket id with leading colon' => [':1.1', ['id' => 'a'], 'socket_id'],
            'socket id with newline' => ["1.1\n:", ['id' => 'a'], 'socket_id'],
            'empty socket id' => ['', ['id' => 'a'], 'socket_id'],
            'no id' => ['1.1', ['user_info' => ['name' => 'a']], 'userData["id"]'],
            'empty id' => ['1.1', ['id' => ''], 'userData["id"]'],
            'id not a string' => ['1.1', ['id' => ['a']], 'userData["id"]'],
            'id with a space' => ['1.1', ['id' => 'a b'], 'userData["id"]'],
            'id too long' => ['1.1', ['id' => str_repeat('a', 201)], 'at most 200'],
        ];
    }

    public function testAuthenticateUserNeedsCredentials(): void
    {
        $service = new QueuedPusherService(['PUSHER_APP_ID' => '1', 'PUSHER_APP_KEY' => 'k', 'PUSHER_APP_SECRET' => null]);

        self::assertFalse($service->authenticateUser('1.1', ['id' => 'a']));
        self::assertSame('PUSHER_APP_SECRET is not set', $service->getLastError());
    }

    /**
     * authenticateChannel() on private-encrypted- channels: the private
     * signature (channel_data is never signed there) plus the shared secret.
     * The Python vector goes through the public API; the Node one signs a
     * channel_data, which this client does not for encrypted channels, so its
     * signature is checked through the signer and its shared secret both ways.
     *
     * @dataProvider encryptedAuthVectors
     * @param array<string, mixed> $vector
     */
    public function testEncryptedChannelAuthMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];
        $expected = $vector['expected'];
        $service = self::serviceFor($in['key'], $in['secret'], ['PUSHER_ENCRYPTION_MASTER_KEY_BASE64' => $in['encryption_master_key_base64']]);
        self::assertTrue($service->isReady(), $service->getLastError());

        $json = $service->authenticateChannel($in['channel'], $in['socket_id']);

        self::assertIsString($json, $service->getLastError());
        $answer = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
        self::assertSame(['auth', 'shared_secret'], array_keys($answer));
        self::assertSame($expected['shared_secret'], $answer['shared_secret']);
        self::assertSame(Signer::channelAuth($in['key'], $in['secret'], $in['socket_id'], $in['channel']), $answer['auth']);
        self::assertSame($expected['auth'], Signer::channelAuth($in['key'], $in['secret'], $in['socket_id'], $in['channel'], $in['channel_data'] ?? null));
        if (!isset($in['channel_data'])) {
            self::assertSame($expected['auth'], $answer['auth']);
        }
    }

    /**
     * @dataProvider sharedSecretVectors
     * @param array<string, mixed> $vector
     */
    public function testSharedSecretMatchesVector(array $vector): void
    {
        $in = $vector['inputs'];
        $secret = Signer::sharedSecret($in['channel'], $in['master_key_raw_bytes_ascii']);

        if (isset($vector['expected']['shared_secret_base64'])) {
            self::assertSame($vector['expected']['shared_secret_base64'], $secret);
        } else {
            self::assertSame($vector['expected']['shared_secret_hex'], bin2hex(base64_decode($secret, true)));
        }
    }

    public function testMasterKeyIsParsedLikeTheSdks(): void
    {
        [$vector] = Vectors::ofKind('master_key_parse');
        foreach ($vector['inputs']['encryption_master_key_base64'] as $i => $key) {
            $expected = $vector['expected']['results'][$i];
            $service = self::serviceFor('k', 's', ['PUSHER_ENCRYPTION_MASTER_KEY_BASE64' => $key]);
            if (str_starts_with($expected, 'error:')) {
                self::assertNull(Config::parseMasterKey($key), $key);
                self::assertFalse($service->isReady(), $key);
                self::assertStringContainsString('PUSHER_ENCRYPTION_MASTER_KEY_BASE64 must be 32 bytes', $service->getLastError());
                self::assertStringNotContainsString($key, $service->getLastError(), 'the key is never shown');
                self::assertFalse($service->authenticateChannel('private-encrypted-x', '1.1'));
                self::assertStringContainsString('not valid', $service->getLastError());
                self::assertStringNotContainsString($key, $service->getLastError());
            } else {
                self::assertSame($expected, Config::parseMasterKey($key), $key);
                self::assertTrue($service->isReady(), $service->getLastError());
                self::assertIsString($service->authenticateChannel('private-encrypted-x', '1.1'), $service->getLastError());
            }
        }
    }

    public function testEncryptedChannelWithoutMasterKeyNamesTheSetting(): void
    {
        $service = self::serviceFor('k', 's');

        self::assertTrue($service->isReady());
        self::assertFalse($service->authenticateChannel('private-encrypted-room', '1.1'));
        self::assertStringContainsString('PUSHER_ENCRYPTION_MASTER_KEY_BASE64', $service->getLastError());
        self::assertStringContainsString('not set', $service->getLastError());
        self::assertIsString($service->authenticateChannel('private-room', '1.1'), 'other channels need no master key');
    }

    public function testMasterKeyDoesNotChangeOtherChannels(): void
    {
        $service = self::serviceFor('k', 's', ['PUSHER_ENCRYPTION_MASTER_KEY_BASE64' => base64_encode(str_repeat('a', 32))]);

        self::assertSame(json_encode(['auth' => Signer::channelAuth('k', 's', '1.1', 'private-room')]), $service->authenticateChannel('private-room', '1.1'));
        $answer = json_decode((string) $service->authenticateChannel('private-encrypted-channel-a', '1.1'), true);
        self::assertSame('Rp+wpkNpL89qhqco1JkIG31AVXyU8PUVJBr1B2MvdoA=', $answer['shared_secret'], 'the PHP SDK vector through the service');
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

    /** @param array<string, mixed> $more */
    private static function serviceFor(string $key, string $secret, array $more = []): QueuedPusherService
    {
        return new QueuedPusherService($more + [
            'PUSHER_APP_ID' => '1',
            'PUSHER_APP_KEY' => $key,
            'PUSHER_APP_SECRET' => $secret,
            'PUSHER_ENCRYPTION_MASTER_KEY_BASE64' => null,
        ]);
    }
}
