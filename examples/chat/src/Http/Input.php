<?php

declare(strict_types=1);

namespace App\Http;

use PusherRelay\PusherRules;

/**
 * Checks request fields before they reach the Pusher service, so that a bad
 * value is a 400 naming the field, not a false from deep inside.
 */
final class Input
{
    /** Room names end up in channel names, so they keep to a safe subset of Pusher's charset. */
    public const ROOM_PATTERN = '/\A[A-Za-z0-9_-]{1,40}\z/';

    /** Longest chat message, well under Pusher's 10 KB per event. */
    public const MAX_TEXT = 2000;

    /** A required string field from the POST body, or the reason it is unusable. */
    public static function text(string $field, int $max = self::MAX_TEXT): string|Response
    {
        $value = $_POST[$field] ?? null;
        if (!is_string($value) || trim($value) === '') {
            return Response::error(400, sprintf('%s is required', $field));
        }
        if (mb_strlen($value) > $max) {
            return Response::error(400, sprintf('%s is longer than %d characters', $field, $max));
        }

        return trim($value);
    }

    public static function room(string $room): string|Response
    {
        if (preg_match(self::ROOM_PATTERN, $room) !== 1) {
            return Response::error(400, sprintf('room "%s" is not a room name (1 to 40 of A-Z a-z 0-9 _ -)', self::excerpt($room)));
        }

        return $room;
    }

    /** A user id as AuthService makes them (also the tail of private-user-{id}). */
    public static function userId(string $field): string|Response
    {
        $value = $_POST[$field] ?? null;
        if (!is_string($value) || preg_match(\App\Services\AuthService::USER_ID_PATTERN, $value) !== 1) {
            return Response::error(400, sprintf('%s must be a user id (1 to 32 of a-z 0-9 -)', $field));
        }

        return $value;
    }

    /**
     * The optional socket_id of the sender's connection (to exclude it from
     * the broadcast); strict like Pusher's SDKs, since a crafted id could
     * delegate auth.
     */
    public static function optionalSocketId(): string|Response|null
    {
        $value = $_POST['socket_id'] ?? null;
        if ($value === null || $value === '') {
            return null;
        }

        return self::socketId();
    }

    public static function socketId(): string|Response
    {
        $value = $_POST['socket_id'] ?? null;
        if (!is_string($value) || preg_match(PusherRules::SOCKET_ID_PATTERN, $value) !== 1) {
            return Response::error(400, sprintf('socket_id "%s" is malformed: expected digits.digits, as pusher-js sends', self::excerpt(is_string($value) ? $value : '')));
        }

        return $value;
    }

    public static function channel(): string|Response
    {
        $value = $_POST['channel_name'] ?? null;
        $error = is_string($value) ? PusherRules::channelError('channel_name', $value) : 'channel_name is required';
        if ($error !== null) {
            return Response::error(400, $error);
        }

        return $value;
    }

    /** Enough of a bad value to recognise it, never a whole pasted payload. */
    private static function excerpt(string $value): string
    {
        return mb_strlen($value) > 40 ? mb_substr($value, 0, 40) . '…' : $value;
    }
}
