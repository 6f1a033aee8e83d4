<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * Pusher's signatures, as pure functions so they can be checked against the
 * official SDK test vectors without a network or a configured service.
 *
 * Every method takes the secret as an argument and returns only derived
 * values: nothing here stores or prints it.
 */
final class Signer
{
    /** Signature scheme version Pusher's REST API expects (docs/architecture.md, "Signing"). */
    public const AUTH_VERSION = '1.0';

    /**
     * Signs a REST request (auth_version 1.0) and returns every query
     * parameter to send, auth_signature included.
     *
     * Keys are lowercased in what is signed and in what is returned, so the
     * query sent is exactly the one signed. body_md5 is added only when there
     * is a body: GET requests carry none, like the Node, PHP and Go SDKs.
     *
     * @param array<string, scalar> $params caller parameters (not the auth_* ones)
     * @return array<string, string> parameters to put in the query string
     */
    public static function sign(
        string $key,
        string $secret,
        string $method,
        string $path,
        array $params,
        int $timestamp,
        ?string $body = null
    ): array {
        $signed = [];
        foreach ($params as $name => $value) {
            $signed[strtolower((string) $name)] = self::scalarToString($value);
        }
        $signed['auth_key'] = $key;
        $signed['auth_timestamp'] = (string) $timestamp;
        $signed['auth_version'] = self::AUTH_VERSION;
        if ($body !== null && $body !== '') {
            $signed['body_md5'] = md5($body);
        }
        unset($signed['auth_signature']);

        $signed['auth_signature'] = hash_hmac('sha256', self::stringToSign($method, $path, $signed), $secret);

        return $signed;
    }

    /**
     * The text Pusher signs: method, path and the sorted `key=value` list,
     * one per line, with nothing URL-escaped (a comma stays a comma).
     *
     * @param array<string, scalar> $params every query parameter; auth_signature is skipped
     */
    public static function stringToSign(string $method, string $path, array $params): string
    {
        $pairs = [];
        foreach ($params as $name => $value) {
            $name = strtolower((string) $name);
            if ($name === 'auth_signature') {
                continue;
            }
            $pairs[$name] = $name . '=' . self::scalarToString($value);
        }
        ksort($pairs, SORT_STRING);

        return strtoupper($method) . "\n" . $path . "\n" . implode('&', $pairs);
    }

    /**
     * The `auth` value a private or presence channel subscription needs:
     * "key:hex(HMAC-SHA256(secret, socket_id:channel[:channel_data]))".
     *
     * $channelData is signed byte for byte, so the caller must return the very
     * same string to the browser.
     */
    public static function channelAuth(
        string $key,
        string $secret,
        string $socketId,
        string $channel,
        ?string $channelData = null
    ): string {
        $toSign = $socketId . ':' . $channel;
        if ($channelData !== null) {
            $toSign .= ':' . $channelData;
        }

        return $key . ':' . hash_hmac('sha256', $toSign, $secret);
    }

    /**
     * The `auth` value for `pusher:signin` (user authentication):
     * "key:hex(HMAC-SHA256(secret, socket_id::user::user_data))".
     * $userData is signed byte for byte, like channel_data.
     */
    public static function userAuth(string $key, string $secret, string $socketId, string $userData): string
    {
        return $key . ':' . hash_hmac('sha256', $socketId . '::user::' . $userData, $secret);
    }

    /**
     * A private-encrypted- channel's shared secret, as its auth response
     * carries it: base64(SHA-256(channel name . master key)), the master key
     * as raw bytes (32 once decoded from PUSHER_ENCRYPTION_MASTER_KEY_BASE64).
     * The worker derives the same key to encrypt the channel's events.
     */
    public static function sharedSecret(string $channel, string $masterKey): string
    {
        return base64_encode(hash('sha256', $channel . $masterKey, true));
    }

    /** Hex HMAC-SHA256 of a webhook's raw body, as Pusher puts in X-Pusher-Signature. */
    public static function webhookSignature(string $secret, string $body): string
    {
        return hash_hmac('sha256', $body, $secret);
    }

    /** Booleans as Pusher's SDKs write them in a query string. */
    private static function scalarToString(mixed $value): string
    {
        if (is_bool($value)) {
            return $value ? 'true' : 'false';
        }
        if (!is_scalar($value)) {
            throw new \InvalidArgumentException('query parameters must be scalars; put arrays in a JSON body');
        }

        return (string) $value;
    }
}
