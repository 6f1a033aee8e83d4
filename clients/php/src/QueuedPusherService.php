<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * Drop-in replacement for the app's synchronous PusherService.
 *
 * Same constructor (no arguments, configured from the environment), same
 * method names, signatures and return shapes. What changes is where events
 * go: trigger() and triggerBatch() no longer call Pusher from the web
 * request; they enqueue one wire-contract intent to RabbitMQ and return as
 * soon as the broker confirms it. The pusher-relay worker delivers it, with
 * retries, batching and a dead-letter store, so a Pusher outage no longer
 * loses events or slows pages.
 *
 * What needs an answer now stays synchronous and local: channel queries
 * (signed REST calls to Pusher), channel auth and webhook verification
 * (pure HMAC, no network).
 *
 * Like the seed, public methods never throw: they return false and leave a
 * sentence in getLastError(). Errors never contain the app secret.
 */
class QueuedPusherService
{
    use IntentHelpers;

    /** Channels whose events are end-to-end encrypted with a key derived from the master key. */
    private const ENCRYPTED_PREFIX = 'private-encrypted-';

    /** Transports the browser client may use, as the seed configured them. */
    private const ENABLED_TRANSPORTS = ['ws', 'wss'];

    /** JSON flags for everything we emit: compact UTF-8 like serde, Node and Go. */
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;

    /** Settings, read once at construction. */
    private readonly Config $config;

    /** Sends intents to the broker; connects on first use. */
    private ?IntentPublisher $publisher = null;

    /** Why the last call failed; '' after a success. */
    private string $lastError = '';

    /**
     * @param array<string, mixed> $overrides settings keyed by environment
     *        variable name (e.g. ['AMQP_EXCHANGE' => 'test.x']); they win over
     *        the environment. Meant for tests; the app passes nothing.
     */
    public function __construct(array $overrides = [])
    {
        $this->config = Config::fromEnvironment($overrides);
        if ($this->config->problems !== []) {
            $this->lastError = implode('; ', $this->config->problems);
        }
    }

    /**
     * Enqueues one `event` intent: $event with $data on $channel.
     *
     * @param array<mixed> $data event payload; sent to the browser as given ([] becomes {})
     * @param array<string, mixed> $options socket_id (exclude that connection), info
     */
    public function trigger(string $channel, string $event, array $data = [], array $options = []): bool
    {
        $this->lastError = '';
        $error = PusherRules::channelError('channel', $channel);
        if ($error !== null) {
            return $this->fail($error);
        }

        return $this->enqueueEvent([$channel], $event, $data, $options);
    }

    /**
     * Enqueues one `event` intent: the same $event and $data on every channel
     * in $channels (1 to 100), as the seed's triggerBatch did.
     *
     * @param array<mixed> $channels channel names
     * @param array<mixed> $data
     * @param array<string, mixed> $options socket_id, info
     */
    public function triggerBatch(array $channels, string $event, array $data = [], array $options = []): bool
    {
        $this->lastError = '';
        $error = PusherRules::channelsError($channels);
        if ($error !== null) {
            return $this->fail($error);
        }

        return $this->enqueueEvent($channels, $event, $data, $options);
    }

    /**
     * Asks Pusher about one channel (synchronous: the caller needs the answer).
     *
     * @param list<string> $info attributes such as user_count, subscription_count
     * @return array<string, mixed>|false Pusher's answer, e.g. ['occupied' => true, 'user_count' => 3]
     */
    public function getChannelInfo(string $channel, array $info = []): array|false
    {
        $this->lastError = '';
        $error = PusherRules::channelError('channel', $channel) ?? $this->credentialsError();
        if ($error !== null) {
            return $this->fail($error);
        }
        $params = [];
        if ($info !== []) {
            $params['info'] = implode(',', array_map('strval', $info));
        }

        return $this->query('/channels/' . $channel, $params);
    }

    /**
     * Lists occupied channels (synchronous).
     *
     * @param array<string, mixed> $options filter_by_prefix, info (string or list)
     * @return array<string, mixed>|false Pusher's answer: ['channels' => [name => attributes, ...]]
     */
    public function getChannels(array $options = []): array|false
    {
        $this->lastError = '';
        $error = $this->credentialsError();
        if ($error !== null) {
            return $this->fail($error);
        }
        $params = [];
        foreach ($options as $name => $value) {
            $name = strtolower((string) $name);
            if (str_starts_with($name, 'auth_') || $name === 'body_md5') {
                return $this->fail(sprintf('option "%s" is reserved for the request signature', $name));
            }
            if (is_array($value)) {
                $value = implode(',', array_map('strval', $value));
            }
            if (!is_scalar($value)) {
                return $this->fail(sprintf('option "%s" must be a string or a list of strings', $name));
            }
            $params[$name] = $value;
        }

        return $this->query('/channels', $params);
    }

    /**
     * The JSON text an auth endpoint returns for a private or presence channel.
     *
     * presence-* channels need $customData['user_id']; it is sent as a string
     * (Pusher's user ids are strings) and channel_data is compact JSON with
     * raw UTF-8 and unescaped slashes, like the Node and Go SDKs.
     * private-encrypted-* channels get the private form plus the channel's
     * shared_secret, which needs PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (the
     * worker's); without it they fail. Other channels get the private form.
     * $customData is used for presence channels only.
     *
     * @param array<string, mixed> $customData presence member: user_id, user_info
     */
    public function authenticateChannel(string $channel, string $socketId, array $customData = []): string|false
    {
        $this->lastError = '';
        $error = PusherRules::socketIdError('socket_id', $socketId)
            ?? PusherRules::channelError('channel', $channel)
            ?? $this->credentialsError();
        if ($error !== null) {
            return $this->fail($error);
        }
        if (str_starts_with($channel, self::ENCRYPTED_PREFIX)) {
            return $this->encryptedChannelAuth($channel, $socketId);
        }

        try {
            if (!str_starts_with($channel, 'presence-')) {
                $auth = Signer::channelAuth($this->config->key, $this->config->secret, $socketId, $channel);
                return json_encode(['auth' => $auth], self::JSON_FLAGS);
            }

            $userId = $customData['user_id'] ?? null;
            if (!(is_int($userId) || (is_string($userId) && $userId !== ''))) {
                return $this->fail('presence channels need customData["user_id"] (a non-empty string or an integer)');
            }
            $customData['user_id'] = (string) $userId;
            $channelData = json_encode($customData, self::JSON_FLAGS);
            $auth = Signer::channelAuth($this->config->key, $this->config->secret, $socketId, $channel, $channelData);

            return json_encode(['auth' => $auth, 'channel_data' => $channelData], self::JSON_FLAGS);
        } catch (\JsonException $e) {
            return $this->fail('customData cannot be encoded as JSON: ' . $e->getMessage());
        }
    }

    /**
     * The answer to pusher-js's user authentication (`pusher:signin`), so
     * that events sent with sendToUser() reach this connection.
     *
     * $userData needs `id` (a non-empty string or an integer, sent as a
     * string; characters as in a channel name); `user_info`, `watchlist` and
     * anything else pass through. user_data is compact JSON with raw UTF-8
     * and unescaped slashes, signed byte for byte.
     *
     * @param array<string, mixed> $userData the user: id, user_info, watchlist
     * @return array{auth: string, user_data: string}|false e.g.
     *         ['auth' => 'key:hex', 'user_data' => '{"id":"42"}'], to send as JSON
     */
    public function authenticateUser(string $socketId, array $userData): string|false
    {
        $this->lastError = '';
        $error = PusherRules::socketIdError('socket_id', $socketId) ?? $this->credentialsError();
        if ($error !== null) {
            return $this->fail($error);
        }
        $id = $userData['id'] ?? null;
        if (is_int($id)) {
            $id = (string) $id;
        }
        $error = PusherRules::userIdError('userData["id"]', $id);
        if ($error !== null) {
            return $this->fail($error);
        }
        $userData['id'] = $id;
        try {
            $json = json_encode($userData, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            return $this->fail('userData cannot be encoded as JSON: ' . $e->getMessage());
        }

        return json_encode([
            'auth' => Signer::userAuth($this->config->key, $this->config->secret, $socketId, $json),
            'user_data' => $json,
        ], self::JSON_FLAGS);
    }

    /**
     * Enqueues one `event` intent to Pusher's reserved channel
     * `#server-to-user-{userId}`: $event with $data reaches every connection
     * signed in (authenticateUser) as that user. Returns like trigger().
     *
     * @param int|string $userId a non-empty string or an integer; characters as in a channel name
     * @param mixed $data event payload, any JSON value ([] becomes {})
     */
    public function sendToUser(mixed $userId, string $event, mixed $data = []): bool
    {
        $this->lastError = '';
        if (is_int($userId)) {
            $userId = (string) $userId;
        }
        $error = PusherRules::userIdError('userId', $userId);
        if ($error !== null) {
            return $this->fail($error);
        }
        $channel = PusherRules::SERVER_TO_USER_PREFIX . $userId;
        if (strlen($channel) > PusherRules::MAX_CHANNEL_LENGTH) {
            return $this->fail(sprintf(
                'channel %s{userId} is %d characters long; Pusher allows at most %d',
                PusherRules::SERVER_TO_USER_PREFIX,
                strlen($channel),
                PusherRules::MAX_CHANNEL_LENGTH
            ));
        }

        return $this->enqueueEvent([$channel], $event, $data, []);
    }

    /**
     * Whether a webhook really comes from Pusher: X-Pusher-Key must be this
     * app's key and X-Pusher-Signature the HMAC-SHA256 of the raw body.
     *
     * @param array<string, string|list<string>> $headers names in any case;
     *        getallheaders(), PSR-7 style lists and $_SERVER's HTTP_* all work
     */
    public function verifyWebhook(array $headers, string $body): bool
    {
        $this->lastError = '';
        $error = $this->credentialsError();
        if ($error !== null) {
            return $this->fail($error);
        }
        $normalized = [];
        foreach ($headers as $name => $value) {
            $name = str_replace('_', '-', strtolower((string) $name));
            if (str_starts_with($name, 'http-')) {
                $name = substr($name, 5);
            }
            $normalized[$name] = is_array($value) ? (string) reset($value) : (string) $value;
        }
        $key = $normalized['x-pusher-key'] ?? '';
        $signature = strtolower(trim($normalized['x-pusher-signature'] ?? ''));

        if (!hash_equals($this->config->key, $key)) {
            return $this->fail('webhook X-Pusher-Key is missing or is not this app\'s key');
        }
        if (!hash_equals(Signer::webhookSignature($this->config->secret, $body), $signature)) {
            return $this->fail('webhook X-Pusher-Signature does not match the body');
        }

        return true;
    }

    /**
     * True when every setting is present and valid. Does not contact the
     * broker or Pusher (the seed did not either), so it costs nothing.
     */
    public function isReady(): bool
    {
        return $this->config->problems === [];
    }

    public function getLastError(): string
    {
        return $this->lastError;
    }

    /**
     * Settings for display or debugging; the secret and the broker password are masked.
     *
     * @return array<string, mixed>
     */
    public function getConfig(): array
    {
        return [
            'app_id' => $this->config->appId,
            'key' => $this->config->key,
            'secret' => $this->config->secret === '' ? '' : '***',
            'cluster' => $this->config->cluster,
            'use_tls' => $this->config->useTls,
            'host' => $this->config->host,
            'port' => $this->config->port,
            'scheme' => $this->config->scheme,
            'verify_ssl' => $this->config->verifySsl,
            'disable_stats' => $this->config->disableStats,
            'enabled_transports' => self::ENABLED_TRANSPORTS,
            'amqp_url' => $this->config->redactedAmqpUrl(),
            'amqp_exchange' => $this->config->exchange,
        ];
    }

    /**
     * Options for `new Pusher(key, options)` in the browser.
     *
     * @return array<string, mixed>
     */
    public function getClientConfig(): array
    {
        $client = [
            'key' => $this->config->key,
            'cluster' => $this->config->cluster,
            'forceTLS' => $this->config->useTls,
            'enabledTransports' => self::ENABLED_TRANSPORTS,
            'disableStats' => $this->config->disableStats,
        ];
        if ($this->config->host !== null) {
            $client['wsHost'] = $this->config->host;
            $client['wsPort'] = $this->config->port ?? 80;
            $client['wssPort'] = $this->config->port ?? 443;
        }

        return $client;
    }

    /**
     * Validates and enqueues the generic `event` intent behind trigger/triggerBatch.
     *
     * @param list<string> $channels already validated
     * @param mixed $data any JSON value
     * @param array<string, mixed> $options
     */
    private function enqueueEvent(array $channels, string $event, mixed $data, array $options): bool
    {
        $error = PusherRules::eventError($event);
        if ($error !== null) {
            return $this->fail($error);
        }
        // A PHP [] would encode as a JSON list; the seed's payloads are objects.
        $payload = $data === [] ? new \stdClass() : $data;
        try {
            $dataJson = json_encode($payload, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            return $this->fail('data cannot be encoded as JSON: ' . $e->getMessage());
        }
        $error = PusherRules::dataSizeError('data', $dataJson);
        if ($error !== null) {
            return $this->fail($error);
        }

        $fields = ['channels' => array_values($channels), 'event' => $event, 'data' => $payload];
        if (isset($options['info'])) {
            $info = is_array($options['info']) ? implode(',', array_map('strval', $options['info'])) : $options['info'];
            if (!is_string($info)) {
                return $this->fail('options["info"] must be a string or a list of strings');
            }
            $fields['info'] = $info;
        }

        return $this->enqueue('event', $fields, $options['socket_id'] ?? null);
    }

    /**
     * Publishes one intent of $type with $fields, plus id, socket_id and
     * created_at, and routing key $type (wire contract v1), with its
     * ordering key in the `ordering-key` header.
     *
     * @param array<string, mixed> $fields the type's own fields, validated by the caller
     */
    private function enqueue(string $type, array $fields, mixed $socketId = null): bool
    {
        if ($socketId !== null) {
            $error = PusherRules::socketIdError('socket_id', $socketId);
            if ($error !== null) {
                return $this->fail($error);
            }
            $fields['socket_id'] = $socketId;
        }
        if ($this->config->amqpNodes === []) {
            return $this->fail($this->config->amqpUrlProblem());
        }

        $createdAtMs = (int) floor(microtime(true) * 1000);
        $id = self::newIntentId();
        $intent = ['type' => $type, 'id' => $id] + $fields + ['created_at' => $createdAtMs];
        try {
            $body = json_encode($intent, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            return $this->fail($type . ' intent cannot be encoded as JSON: ' . $e->getMessage());
        }
        // The worker builds a typed intent's data from these same fields, so
        // the whole body bounds it (slightly stricter than Pusher's limit).
        if ($type !== 'event') {
            $error = PusherRules::dataSizeError($type . ' intent', $body);
            if ($error !== null) {
                return $this->fail($error);
            }
        }

        // The worker's shards route on this key (the intent's last channel),
        // keeping one channel's intents in order across workers.
        $orderingKey = $this->config->channels->orderingKey($intent);

        $this->publisher ??= new IntentPublisher($this->config->amqpNodes, $this->config->exchange, $this->config->amqpTimeout);
        try {
            $this->publisher->publish($type, $body, $id, intdiv($createdAtMs, 1000), $orderingKey);
        } catch (PublishFailed $e) {
            return $this->fail($e->getMessage());
        }

        return true;
    }

    /** Private auth plus the channel's shared_secret (private-encrypted-*). */
    private function encryptedChannelAuth(string $channel, string $socketId): string|false
    {
        if ($this->config->encryptionMasterKey === null) {
            return $this->fail(sprintf(
                '%s is an encrypted channel: its auth needs PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (the worker\'s master key, 32 bytes in base64), which is %s',
                $channel,
                $this->hasMasterKeyProblem() ? 'not valid' : 'not set'
            ));
        }

        return json_encode([
            'auth' => Signer::channelAuth($this->config->key, $this->config->secret, $socketId, $channel),
            'shared_secret' => Signer::sharedSecret($channel, $this->config->encryptionMasterKey),
        ], self::JSON_FLAGS);
    }

    private function hasMasterKeyProblem(): bool
    {
        foreach ($this->config->problems as $problem) {
            if (str_starts_with($problem, 'PUSHER_ENCRYPTION_MASTER_KEY_BASE64 ')) {
                return true;
            }
        }

        return false;
    }

    /**
     * Runs a signed GET and maps failure to false + lastError.
     *
     * @param array<string, scalar> $params
     * @return array<string, mixed>|false
     */
    private function query(string $path, array $params): array|false
    {
        try {
            return (new PusherApi($this->config))->get($path, $params);
        } catch (PusherApiError $e) {
            return $this->fail($e->getMessage());
        }
    }

    /** Names the first missing credential, for calls that sign with the secret. */
    private function credentialsError(): ?string
    {
        foreach (['PUSHER_APP_ID' => $this->config->appId, 'PUSHER_APP_KEY' => $this->config->key, 'PUSHER_APP_SECRET' => $this->config->secret] as $name => $value) {
            if ($value === '') {
                return $name . ' is not set';
            }
        }

        return null;
    }

    /** Records why a call failed and returns the seed's failure value. */
    private function fail(string $error): bool
    {
        $this->lastError = $error;

        return false;
    }

    /**
     * A random RFC 4122 version-4 UUID: unique without coordination, so the
     * worker can deduplicate redeliveries by it.
     */
    private static function newIntentId(): string
    {
        $bytes = random_bytes(16);
        $bytes[6] = chr((ord($bytes[6]) & 0x0f) | 0x40);
        $bytes[8] = chr((ord($bytes[8]) & 0x3f) | 0x80);

        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($bytes), 4));
    }
}
