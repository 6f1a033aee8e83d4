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
        /**
         * amqps:// only: PHP's ssl stream context options from the URL's TLS
         * parameters (RabbitMQ's URI specification: cacertfile, certfile,
         * keyfile, verify, server_name_indication).
         *
         * @var array<string, mixed>
         */
        public readonly array $sslOptions = [],
    ) {
    }

    /**
     * What is wrong with an amqps:// URL's TLS parameters, or null; the
     * message names the parameter, never the URL (it holds a password).
     */
    public static function tlsProblem(string $url): ?string
    {
        parse_str((string) parse_url($url, PHP_URL_QUERY), $query);
        $verify = $query['verify'] ?? 'verify_peer';
        if ($verify !== 'verify_peer' && $verify !== 'verify_none') {
            return sprintf('verify=%s is not one of verify_peer, verify_none', json_encode($verify));
        }
        $cert = ($query['certfile'] ?? '') !== '';
        $key = ($query['keyfile'] ?? '') !== '';
        if ($cert !== $key) {
            return sprintf(
                '%s is set without %s; expected both (a client certificate and its key) or neither',
                $cert ? 'certfile' : 'keyfile',
                $cert ? 'keyfile' : 'certfile'
            );
        }
        return null;
    }

    /**
     * The ssl context options for the TLS parameters: the node's certificate
     * and name checked against the system's CAs (or cacertfile: PHP's
     * OpenSSL streams trust that file instead of the system store), a client
     * certificate presented when given.
     *
     * @param array<string, mixed> $query
     * @return array<string, mixed>
     */
    private static function sslOptionsOf(array $query): array
    {
        $verify = ($query['verify'] ?? 'verify_peer') !== 'verify_none';
        $options = ['verify_peer' => $verify, 'verify_peer_name' => $verify];
        if (($query['cacertfile'] ?? '') !== '') {
            $options['cafile'] = $query['cacertfile'];
        }
        if (($query['certfile'] ?? '') !== '') {
            $options['local_cert'] = $query['certfile'];
            $options['local_pk'] = $query['keyfile'] ?? '';
        }
        $sni = $query['server_name_indication'] ?? '';
        if ($sni === 'disable') {
            $options['SNI_enabled'] = false;
        } elseif ($sni !== '') {
            $options['peer_name'] = $sni;
        }
        return $options;
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
        parse_str($parts['query'] ?? '', $query);
        $path = $parts['path'] ?? '';
        $vhost = ($path === '' || $path === '/') ? '/' : rawurldecode(substr($path, 1));

        return new self(
            secure: $secure,
            host: $parts['host'],
            port: $parts['port'] ?? ($secure ? 5671 : 5672),
            user: rawurldecode($parts['user'] ?? 'guest'),
            password: rawurldecode($parts['pass'] ?? 'guest'),
            vhost: $vhost,
            sslOptions: $secure ? self::sslOptionsOf($query) : [],
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
