<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * Settings read once from the environment, with the seed PusherService's
 * variable names and defaults, plus where to enqueue intents.
 *
 * A bad value does not throw: the drop-in must not break the page that
 * constructs it (the seed never threw either). It is recorded in $problems,
 * which makes isReady() false and getLastError() name the variable.
 */
final class Config
{
    public const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f';
    public const DEFAULT_EXCHANGE = 'pusher.intents';
    /** What an AMQP_URL entry must look like, for error messages. */
    private const AMQP_URL_SHAPE = 'must look like amqp://user:password@host:5672/vhost (or amqps://), several separated by commas';
    /** Seconds to wait for the broker (connect, confirm); a web request must not hang on it. */
    public const DEFAULT_AMQP_TIMEOUT = 5.0;
    /** Seconds to wait for Pusher's REST API on the calls that stay synchronous. */
    public const DEFAULT_HTTP_TIMEOUT = 10.0;

    /**
     * @param list<string> $problems one sentence per invalid or missing setting
     */
    private function __construct(
        public readonly string $appId,
        public readonly string $key,
        public readonly string $secret,
        public readonly string $cluster,
        public readonly bool $useTls,
        public readonly ?string $host,
        public readonly ?int $port,
        public readonly string $scheme,
        public readonly bool $verifySsl,
        public readonly bool $disableStats,
        /**
         * The RabbitMQ nodes of AMQP_URL, in the order given (one URL, or
         * several separated by commas); empty when an entry does not parse:
         * enqueueing then fails rather than guess a broker.
         *
         * @var list<AmqpTarget>
         */
        public readonly array $amqpNodes,
        public readonly string $exchange,
        public readonly float $amqpTimeout,
        public readonly float $httpTimeout,
        /** The worker's channel templates (RELAY_CHANNEL_*), for each intent's ordering key. */
        public readonly ChannelTemplates $channels,
        public readonly array $problems,
        /**
         * PUSHER_ENCRYPTION_MASTER_KEY_BASE64 decoded: 32 raw bytes, or null
         * when unset or invalid (private-encrypted- channel auth then fails).
         */
        public readonly ?string $encryptionMasterKey = null,
    ) {
    }

    /**
     * Decodes an encryption master key: canonical, padded, standard-alphabet
     * base64 of exactly 32 bytes, as Pusher's SDKs require. Null otherwise.
     */
    public static function parseMasterKey(string $base64): ?string
    {
        $raw = base64_decode($base64, true);
        if ($raw === false || strlen($raw) !== 32 || base64_encode($raw) !== $base64) {
            return null;
        }

        return $raw;
    }

    /**
     * @param array<string, mixed> $overrides values keyed by variable name; they win over the environment
     */
    public static function fromEnvironment(array $overrides = []): self
    {
        $problems = [];
        $read = static function (string $name) use ($overrides): ?string {
            if (array_key_exists($name, $overrides)) {
                $value = $overrides[$name];
                return $value === null ? null : (is_bool($value) ? ($value ? 'true' : 'false') : (string) $value);
            }
            $value = $_ENV[$name] ?? getenv($name);
            if ($value === false || $value === null) {
                return null;
            }
            $value = trim((string) $value);
            return $value === '' ? null : $value;
        };
        $bool = static function (string $name, bool $default) use ($read, &$problems): bool {
            $value = $read($name);
            if ($value === null) {
                return $default;
            }
            $parsed = filter_var($value, FILTER_VALIDATE_BOOLEAN, FILTER_NULL_ON_FAILURE);
            if ($parsed === null) {
                $problems[] = sprintf('%s must be true or false, got "%s"', $name, $value);
                return $default;
            }
            return $parsed;
        };
        $seconds = static function (string $name, float $default) use ($read, &$problems): float {
            $value = $read($name);
            if ($value === null) {
                return $default;
            }
            if (!is_numeric($value) || (float) $value <= 0) {
                $problems[] = sprintf('%s must be a positive number of seconds, got "%s"', $name, $value);
                return $default;
            }
            return (float) $value;
        };

        foreach (['PUSHER_APP_ID', 'PUSHER_APP_KEY', 'PUSHER_APP_SECRET'] as $required) {
            if ($read($required) === null) {
                $problems[] = sprintf('%s is not set', $required);
            }
        }

        $useTls = $bool('PUSHER_USE_TLS', true);

        $port = null;
        $portText = $read('PUSHER_PORT');
        if ($portText !== null) {
            if (ctype_digit($portText) && (int) $portText > 0 && (int) $portText < 65536) {
                $port = (int) $portText;
            } else {
                $problems[] = sprintf('PUSHER_PORT must be a port number, got "%s"', $portText);
            }
        }

        $scheme = strtolower($read('PUSHER_SCHEME') ?? ($useTls ? 'https' : 'http'));
        if ($scheme !== 'http' && $scheme !== 'https') {
            $problems[] = sprintf('PUSHER_SCHEME must be http or https, got "%s"', $scheme);
            $scheme = $useTls ? 'https' : 'http';
        }

        $amqpNodes = self::amqpNodes($read('AMQP_URL') ?? self::DEFAULT_AMQP_URL, $problems);
        $channels = ChannelTemplates::fromSettings($read, $problems);

        $masterKey = null;
        $masterKeyText = $read('PUSHER_ENCRYPTION_MASTER_KEY_BASE64');
        if ($masterKeyText !== null) {
            $masterKey = self::parseMasterKey($masterKeyText);
            if ($masterKey === null) {
                // Never echo the value: it is a secret.
                $problems[] = 'PUSHER_ENCRYPTION_MASTER_KEY_BASE64 must be 32 bytes in base64 (openssl rand -base64 32)';
            }
        }

        return new self(
            appId: $read('PUSHER_APP_ID') ?? '',
            key: $read('PUSHER_APP_KEY') ?? '',
            secret: $read('PUSHER_APP_SECRET') ?? '',
            cluster: $read('PUSHER_APP_CLUSTER') ?? 'mt1',
            useTls: $useTls,
            host: $read('PUSHER_HOST'),
            port: $port,
            scheme: $scheme,
            verifySsl: $bool('PUSHER_VERIFY_SSL', true),
            disableStats: $bool('PUSHER_DISABLE_STATS', false),
            amqpNodes: $amqpNodes,
            exchange: $read('AMQP_EXCHANGE') ?? self::DEFAULT_EXCHANGE,
            amqpTimeout: $seconds('AMQP_TIMEOUT', self::DEFAULT_AMQP_TIMEOUT),
            httpTimeout: $seconds('PUSHER_HTTP_TIMEOUT', self::DEFAULT_HTTP_TIMEOUT),
            channels: $channels,
            problems: $problems,
            encryptionMasterKey: $masterKey,
        );
    }

    /**
     * AMQP_URL as it may be shown: each node's URL with its password
     * replaced, separated by commas; null when AMQP_URL does not parse.
     */
    public function redactedAmqpUrl(): ?string
    {
        if ($this->amqpNodes === []) {
            return null;
        }

        return implode(',', array_map(static fn (AmqpTarget $node): string => $node->redacted(), $this->amqpNodes));
    }

    /** Why AMQP_URL cannot be used ('' when it can), for the error of a failed enqueue. */
    public function amqpUrlProblem(): string
    {
        $problems = array_filter($this->problems, static fn (string $p): bool => str_starts_with($p, 'AMQP_URL '));

        return implode('; ', $problems);
    }

    /**
     * Parses AMQP_URL: one URL, or several nodes' URLs separated by commas
     * (blanks around them and empty entries ignored, as the worker does).
     * Every entry must parse and all must share one scheme; otherwise the
     * problems name the entry by number (never its text, which holds a
     * password) and no node is returned.
     *
     * @param list<string> $problems
     * @return list<AmqpTarget>
     */
    private static function amqpNodes(string $value, array &$problems): array
    {
        $entries = array_values(array_filter(
            array_map('trim', explode(',', $value)),
            static fn (string $entry): bool => $entry !== ''
        ));
        if ($entries === []) {
            $problems[] = 'AMQP_URL ' . self::AMQP_URL_SHAPE;
            return [];
        }
        $nodes = [];
        $bad = [];
        foreach ($entries as $i => $entry) {
            $node = AmqpTarget::fromUrl($entry);
            $tlsProblem = $node?->secure ? AmqpTarget::tlsProblem($entry) : null;
            if ($node === null) {
                $bad[] = $i + 1;
            } elseif ($tlsProblem !== null) {
                $problems[] = count($entries) === 1
                    ? "AMQP_URL: $tlsProblem"
                    : sprintf('AMQP_URL entry %d of %d: %s', $i + 1, count($entries), $tlsProblem);
                return [];
            } else {
                $nodes[] = $node;
            }
        }
        if (count($entries) === 1) {
            if ($bad !== []) {
                $problems[] = 'AMQP_URL ' . self::AMQP_URL_SHAPE;
                return [];
            }
            return $nodes;
        }
        foreach ($bad as $number) {
            $problems[] = sprintf('AMQP_URL entry %d of %d %s', $number, count($entries), self::AMQP_URL_SHAPE);
        }
        if ($bad !== []) {
            return [];
        }
        // One connection class serves the whole list (AMQPSSLConnection or
        // AMQPStreamConnection), so TLS cannot differ between nodes.
        foreach ($nodes as $i => $node) {
            if ($node->secure !== $nodes[0]->secure) {
                $problems[] = sprintf(
                    'AMQP_URL entry %d uses %s:// but entry 1 uses %s://; every node must use the same scheme',
                    $i + 1,
                    $node->secure ? 'amqps' : 'amqp',
                    $nodes[0]->secure ? 'amqps' : 'amqp'
                );
                return [];
            }
        }

        return $nodes;
    }

    /** Base URL of Pusher's REST API: PUSHER_HOST when set, else api-{cluster}.pusher.com. */
    public function apiBaseUrl(): string
    {
        $host = $this->host ?? sprintf('api-%s.pusher.com', $this->cluster);
        $port = $this->port !== null ? ':' . $this->port : '';

        return $this->scheme . '://' . $host . $port;
    }
}
