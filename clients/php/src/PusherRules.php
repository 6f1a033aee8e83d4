<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * Pusher's input rules, checked before anything is enqueued.
 *
 * The worker applies the same rules (docs/producers.md, "Wire contract v1") and would
 * dead-letter an intent that breaks one; checking here turns that silent,
 * later failure into an immediate `false` the calling code can see.
 * Each check returns null when the value is fine, else a sentence that names
 * the field.
 */
final class PusherRules
{
    /** Characters Pusher allows in a channel name. */
    public const CHANNEL_PATTERN = '/\A[-a-zA-Z0-9_=@,.;]+\z/';

    /** Longest channel name, per Pusher's docs (the SDKs allow 200; the service decides). */
    public const MAX_CHANNEL_LENGTH = 164;

    /** Most channels one event may go to. */
    public const MAX_CHANNELS = 100;

    /** Longest event name. */
    public const MAX_EVENT_LENGTH = 200;

    /** Largest JSON-encoded `data` Pusher accepts (10 KB); it answers 413 above. */
    public const MAX_DATA_BYTES = 10240;

    /** Longest user id (pusher:signin, #server-to-user-), as the worker and Pusher's SDKs allow. */
    public const MAX_USER_ID_LENGTH = 200;

    /** Prefix of Pusher's reserved channel for events to one signed-in user. */
    public const SERVER_TO_USER_PREFIX = '#server-to-user-';

    /** socket_id shape; strict because a crafted id could delegate auth. */
    public const SOCKET_ID_PATTERN = '/\A\d+\.\d+\z/';

    public static function channelError(string $field, mixed $channel): ?string
    {
        if (!is_string($channel)) {
            return sprintf('%s must be a string, got %s', $field, get_debug_type($channel));
        }
        if (strlen($channel) > self::MAX_CHANNEL_LENGTH) {
            return sprintf('%s is %d characters long; Pusher allows at most %d', $field, strlen($channel), self::MAX_CHANNEL_LENGTH);
        }
        if (preg_match(self::CHANNEL_PATTERN, $channel) !== 1) {
            return sprintf('%s "%s" is not a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ;)', $field, self::excerpt($channel));
        }

        return null;
    }

    /**
     * @param array<mixed> $channels
     */
    public static function channelsError(array $channels): ?string
    {
        $count = count($channels);
        if ($count === 0) {
            return 'channels must name at least one channel';
        }
        if ($count > self::MAX_CHANNELS) {
            return sprintf('channels has %d entries; Pusher allows at most %d per event', $count, self::MAX_CHANNELS);
        }
        if (!array_is_list($channels)) {
            return 'channels must be a list of channel names';
        }
        foreach ($channels as $i => $channel) {
            $error = self::channelError("channels[$i]", $channel);
            if ($error !== null) {
                return $error;
            }
        }

        return null;
    }

    public static function eventError(string $event): ?string
    {
        if ($event === '') {
            return 'event must not be empty';
        }
        if (strlen($event) > self::MAX_EVENT_LENGTH) {
            return sprintf('event is %d characters long; Pusher allows at most %d', strlen($event), self::MAX_EVENT_LENGTH);
        }

        return null;
    }

    public static function socketIdError(string $field, mixed $socketId): ?string
    {
        if (!is_string($socketId) || preg_match(self::SOCKET_ID_PATTERN, $socketId) !== 1) {
            return sprintf('%s must look like "123.456"', $field);
        }

        return null;
    }

    /**
     * A user id for user authentication or #server-to-user-{id}: 1 to 200
     * characters from the channel charset (the worker's validate_user_id).
     */
    public static function userIdError(string $field, mixed $userId): ?string
    {
        if (!is_string($userId) || $userId === '') {
            return sprintf('%s must be a non-empty string or an integer', $field);
        }
        if (strlen($userId) > self::MAX_USER_ID_LENGTH) {
            return sprintf('%s is %d characters long; Pusher allows at most %d', $field, strlen($userId), self::MAX_USER_ID_LENGTH);
        }
        if (preg_match(self::CHANNEL_PATTERN, $userId) !== 1) {
            return sprintf('%s "%s" has characters Pusher does not allow in a user id (allowed: a-z A-Z 0-9 _ - = @ , . ;)', $field, self::excerpt($userId));
        }

        return null;
    }

    public static function dataSizeError(string $field, string $json): ?string
    {
        if (strlen($json) > self::MAX_DATA_BYTES) {
            return sprintf('%s is %d bytes as JSON; Pusher allows at most %d', $field, strlen($json), self::MAX_DATA_BYTES);
        }

        return null;
    }

    /** Identifiers (user_id, room_id, ...) are JSON strings or integers in the wire contract. */
    public static function identifierError(string $field, mixed $value): ?string
    {
        if (is_int($value) || (is_string($value) && $value !== '')) {
            return null;
        }

        return sprintf('%s must be an integer or a non-empty string, got %s', $field, get_debug_type($value));
    }

    public static function stringError(string $field, mixed $value): ?string
    {
        return is_string($value) ? null : sprintf('%s must be a string, got %s', $field, get_debug_type($value));
    }

    /** Keeps error messages short when the bad value is huge. */
    private static function excerpt(string $value): string
    {
        return strlen($value) > 40 ? substr($value, 0, 40) . '...' : $value;
    }
}
