<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * Where the broker is, parsed from an AMQP URL
 * (amqp[s]://user:password@host:port/vhost, vhost percent-encoded so that
 * "%2f" is the default "/").
 */
final class AmqpTarget
{
    private function __construct(
        public readonly bool $secure,
        public readonly string $host,
        public readonly int $port,
        public readonly string $user,
        public readonly string $password,
        public readonly string $vhost,
    ) {
    }

    public static function fromUrl(string $url): ?self
    {
        $parts = parse_url($url);
        if ($parts === false || !isset($parts['scheme'], $parts['host'])) {
            return null;
        }
        $scheme = strtolower($parts['scheme']);
        if ($scheme !== 'amqp' && $scheme !== 'amqps') {
            return null;
        }
        $secure = $scheme === 'amqps';
        $path = $parts['path'] ?? '';
        $vhost = ($path === '' || $path === '/') ? '/' : rawurldecode(substr($path, 1));

        return new self(
            secure: $secure,
            host: $parts['host'],
            port: $parts['port'] ?? ($secure ? 5671 : 5672),
            user: rawurldecode($parts['user'] ?? 'guest'),
            password: rawurldecode($parts['pass'] ?? 'guest'),
            vhost: $vhost,
        );
    }

    /** The URL with its password replaced, safe for logs and getConfig(). */
    public function redacted(): string
    {
        return sprintf(
            '%s://%s:***@%s:%d/%s',
            $this->secure ? 'amqps' : 'amqp',
            rawurlencode($this->user),
            $this->host,
            $this->port,
            rawurlencode($this->vhost)
        );
    }
}
