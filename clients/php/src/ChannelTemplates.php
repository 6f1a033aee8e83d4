<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * The worker's channel name templates, known here so each intent can carry
 * its ordering key (the `ordering-key` header).
 *
 * The worker renders a typed intent's channels from templates
 * (src/config/channels.rs, ChannelTemplates): a style, RELAY_CHANNEL_STYLE
 * (`private`, the default, or `legacy`, the seed app's public names), with
 * any slot replaced by its RELAY_CHANNEL_* variable. The ordering key is the
 * LAST channel an intent is delivered to (Intent::ordering_key); the worker's
 * shards route on it, so one channel's intents land in one shard and keep
 * their order across workers. Set the same RELAY_CHANNEL_* values here as on
 * the worker, or keys and channels disagree and that order is lost (the
 * intents are still delivered).
 */
final class ChannelTemplates
{
    /**
     * Each slot: its variable, its private and legacy templates, and the
     * placeholders it may use (identifier fields every intent of the slot
     * carries), exactly as the worker's Slot::placeholders.
     */
    private const SLOTS = [
        'notification' => ['RELAY_CHANNEL_NOTIFICATION', 'private-user-{user_id}', 'user-{user_id}', ['user_id']],
        'announcement' => ['RELAY_CHANNEL_ANNOUNCEMENT', 'system', 'system', []],
        'chat' => ['RELAY_CHANNEL_CHAT', 'chat-room-{room_id}', 'chat-room-{room_id}', ['room_id', 'user_id']],
        'order' => ['RELAY_CHANNEL_ORDER', 'private-order-{order_id}', 'order-{order_id}', ['order_id']],
        'customer' => ['RELAY_CHANNEL_CUSTOMER', 'private-customer-{customer_id}', 'customer-{customer_id}', ['customer_id', 'order_id']],
        'dashboard' => ['RELAY_CHANNEL_DASHBOARD', 'dashboard', 'dashboard', []],
        'inventory' => ['RELAY_CHANNEL_INVENTORY', 'inventory', 'inventory', ['product_id']],
        'presence_activity' => ['RELAY_CHANNEL_PRESENCE_ACTIVITY', 'presence-activity', 'presence-activity', ['user_id']],
    ];

    /** Intent type => [slot, identifier fields it renders with]. */
    private const TYPES = [
        'notification' => ['notification', ['user_id']],
        'announcement' => ['announcement', []],
        'chat.message' => ['chat', ['room_id', 'user_id']],
        'chat.joined' => ['chat', ['room_id', 'user_id']],
        'chat.left' => ['chat', ['room_id', 'user_id']],
        'order.status' => ['order', ['order_id']],
        'dashboard.metrics' => ['dashboard', []],
        'inventory.stock' => ['inventory', ['product_id']],
        'presence.activity' => ['presence_activity', ['user_id']],
    ];

    /**
     * @param array<string, string> $templates slot => template, every slot present and valid
     */
    private function __construct(private readonly array $templates)
    {
    }

    /** The worker's default (RELAY_CHANNEL_STYLE=private): per-user, per-order and per-customer channels are private-. */
    public static function private(): self
    {
        return new self(array_map(static fn (array $slot): string => $slot[1], self::SLOTS));
    }

    /** RELAY_CHANNEL_STYLE=legacy: the seed app's public user-{id}, order-{id}, customer-{id}. */
    public static function legacy(): self
    {
        return new self(array_map(static fn (array $slot): string => $slot[2], self::SLOTS));
    }

    /**
     * Reads RELAY_CHANNEL_STYLE and the RELAY_CHANNEL_* overrides as the
     * worker does. A bad value is added to $problems naming the variable,
     * and that setting keeps its default.
     *
     * @param callable(string): ?string $read a variable's value, null when unset
     * @param list<string> $problems
     */
    public static function fromSettings(callable $read, array &$problems): self
    {
        $style = $read('RELAY_CHANNEL_STYLE') ?? 'private';
        if ($style === 'legacy') {
            $base = self::legacy();
        } else {
            if ($style !== 'private') {
                $problems[] = sprintf(
                    'RELAY_CHANNEL_STYLE must be private (private-user-{id}, ...) or legacy (the seed app\'s public user-{id}, order-{id}, customer-{id}), got "%s"',
                    $style
                );
            }
            $base = self::private();
        }
        $templates = $base->templates;
        foreach (self::SLOTS as $slot => [$variable]) {
            $template = $read($variable);
            if ($template === null) {
                continue;
            }
            $error = self::templateError($slot, $template);
            if ($error !== null) {
                $problems[] = sprintf('%s %s', $variable, $error);
                continue;
            }
            $templates[$slot] = $template;
        }

        return new self($templates);
    }

    /**
     * The intent's ordering key: the last channel the worker will deliver it
     * to. For `event`, the last of its channels; for a typed intent, the
     * channel its template renders (an `order.status` with a customer_id:
     * the customer's channel). Null when the intent cannot have one (an
     * unknown type, a missing or malformed identifier): it is then published
     * without the header, which the worker also accepts.
     *
     * @param array<string, mixed> $intent the body as published (type and fields)
     */
    public function orderingKey(array $intent): ?string
    {
        $type = $intent['type'] ?? null;
        if ($type === 'event') {
            $channels = $intent['channels'] ?? null;
            if (!is_array($channels) || $channels === []) {
                return null;
            }
            $last = end($channels);
            return is_string($last) ? $last : null;
        }
        if (!is_string($type) || !isset(self::TYPES[$type])) {
            return null;
        }
        [$slot, $identifiers] = self::TYPES[$type];
        // Like the worker, a null customer_id counts as absent.
        if ($type === 'order.status' && ($intent['customer_id'] ?? null) !== null) {
            [$slot, $identifiers] = ['customer', ['customer_id', 'order_id']];
        }
        $values = [];
        foreach ($identifiers as $name) {
            $text = self::identifierText($intent[$name] ?? null);
            if ($text === null) {
                return null;
            }
            $values[$name] = $text;
        }

        return self::render($this->templates[$slot], $values);
    }

    /**
     * An identifier as a channel name shows it: integers in decimal,
     * non-empty strings as they are (the worker's Ident::text).
     */
    private static function identifierText(mixed $value): ?string
    {
        if (is_int($value)) {
            return (string) $value;
        }

        return is_string($value) && $value !== '' ? $value : null;
    }

    /**
     * Fills `{name}` placeholders; the template was checked by templateError,
     * so every placeholder has a value.
     *
     * @param array<string, string> $values
     */
    private static function render(string $template, array $values): string
    {
        return (string) preg_replace_callback(
            '/\{([^{}]*)\}/',
            static fn (array $m): string => $values[$m[1]],
            $template
        );
    }

    /**
     * Why a template cannot be used (as the worker's ChannelTemplates::validate
     * decides), or null: braces must pair, placeholders be the slot's own, and
     * the channel rendered with "0" for each be a valid channel name.
     */
    private static function templateError(string $slot, string $template): ?string
    {
        $allowed = self::SLOTS[$slot][3];
        $stripped = preg_replace('/\{[^{}]*\}/', '', $template);
        if (str_contains((string) $stripped, '{') || str_contains((string) $stripped, '}')) {
            return sprintf('"%s" has a "{" or "}" without its pair', $template);
        }
        preg_match_all('/\{([^{}]*)\}/', $template, $found);
        foreach ($found[1] as $name) {
            if (!in_array($name, $allowed, true)) {
                $known = $allowed === [] ? 'none' : implode(', ', array_map(static fn (string $p): string => '{' . $p . '}', $allowed));
                return sprintf('"%s" uses unknown placeholder {%s} (allowed: %s)', $template, $name, $known);
            }
        }
        $sample = self::render($template, array_fill_keys($allowed, '0'));

        return PusherRules::channelError('template', $sample) === null
            ? null
            : sprintf('"%s" does not render a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ; at most %d characters)', $template, PusherRules::MAX_CHANNEL_LENGTH);
    }
}
