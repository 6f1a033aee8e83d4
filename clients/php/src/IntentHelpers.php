<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * One method per use case of the seed app, each enqueueing one typed intent
 * of wire contract v1 (the table in docs/producers.md, "Wire contract v1"). The worker maps the type to the
 * channel, event and payload the seed used to send, so the app states
 * what happened and the channel naming lives in one place (the worker's
 * templates).
 *
 * Identifiers go into the body as given: an int stays an int, a string a
 * string. Parameters are untyped like the seed's, and checked here instead
 * of by PHP, so a wrong type gives `false` and a getLastError() naming the
 * field rather than a TypeError in the page. Each method returns like
 * trigger(): true once the broker has the intent, false otherwise.
 */
trait IntentHelpers
{
    /** notification → private-user-{userId} (by default), event "notification". */
    public function notifyUser(mixed $userId, mixed $message, mixed $level = 'info'): bool
    {
        return $this->enqueueTyped(
            'notification',
            ['user_id' => $userId, 'message' => $message, 'level' => $level],
            ['user_id'],
            ['message', 'level']
        );
    }

    /** announcement → "system", event "announcement". */
    public function announce(mixed $message, mixed $priority = 'normal'): bool
    {
        return $this->enqueueTyped('announcement', ['message' => $message, 'priority' => $priority], [], ['message', 'priority']);
    }

    /**
     * chat.message → chat-room-{roomId}, event "new-message". With the
     * sender's $socketId (pusher-js's `pusher.connection.socket_id`), Pusher
     * leaves that connection out, so the sender's page is not echoed.
     */
    public function postChatMessage(mixed $roomId, mixed $userId, mixed $userName, mixed $message, ?string $socketId = null): bool
    {
        return $this->enqueueTyped(
            'chat.message',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName, 'message' => $message],
            ['room_id', 'user_id'],
            ['user_name', 'message'],
            $socketId
        );
    }

    /** chat.joined → chat-room-{roomId}, event "user-joined". */
    public function userJoinedRoom(mixed $roomId, mixed $userId, mixed $userName): bool
    {
        return $this->enqueueTyped(
            'chat.joined',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName],
            ['room_id', 'user_id'],
            ['user_name']
        );
    }

    /** chat.left → chat-room-{roomId}, event "user-left". */
    public function userLeftRoom(mixed $roomId, mixed $userId, mixed $userName): bool
    {
        return $this->enqueueTyped(
            'chat.left',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName],
            ['room_id', 'user_id'],
            ['user_name']
        );
    }

    /**
     * order.status → private-order-{orderId} (+ private-customer-{customerId}),
     * event "order-status-changed". Like the seed's `if ($customerId)`, an
     * empty customer id (null, 0, '') adds no customer channel.
     */
    public function updateOrderStatus(mixed $orderId, mixed $status, mixed $customerId = null): bool
    {
        $fields = ['order_id' => $orderId, 'status' => $status];
        $identifiers = ['order_id'];
        if (!empty($customerId)) {
            $fields['customer_id'] = $customerId;
            $identifiers[] = 'customer_id';
        }

        return $this->enqueueTyped('order.status', $fields, $identifiers, ['status']);
    }

    /**
     * dashboard.metrics → "dashboard", event "metrics-update".
     *
     * @param array<string, mixed> $metrics a map (the contract needs a JSON object; [] becomes {})
     */
    public function updateDashboardMetrics(mixed $metrics): bool
    {
        if (!is_array($metrics) || ($metrics !== [] && array_is_list($metrics))) {
            $this->lastError = 'metrics must be an associative array (a JSON object), not a list';
            return false;
        }

        return $this->enqueueTyped('dashboard.metrics', ['metrics' => $metrics === [] ? new \stdClass() : $metrics]);
    }

    /**
     * inventory.stock → "inventory", event "stock-update". The contract wants
     * a number; a numeric string (as databases often return) is converted.
     */
    public function updateInventory(mixed $productId, mixed $quantity): bool
    {
        if (is_string($quantity) && is_numeric($quantity)) {
            $quantity = $quantity + 0;
        }
        if (!is_int($quantity) && !is_float($quantity)) {
            $this->lastError = sprintf('quantity must be a number, got %s', get_debug_type($quantity));
            return false;
        }

        return $this->enqueueTyped('inventory.stock', ['product_id' => $productId, 'quantity' => $quantity], ['product_id']);
    }

    /** presence.activity → "presence-activity", event "user-activity". */
    public function broadcastUserActivity(mixed $userId, mixed $activity): bool
    {
        return $this->enqueueTyped(
            'presence.activity',
            ['user_id' => $userId, 'activity' => $activity],
            ['user_id'],
            ['activity']
        );
    }

    /**
     * Checks field types the way the worker will, then enqueues.
     *
     * @param array<string, mixed> $fields
     * @param list<string> $identifiers names in $fields that must be a non-empty string or an int
     * @param list<string> $strings names in $fields that must be strings
     * @param ?string $socketId connection to leave out (checked by enqueue())
     */
    private function enqueueTyped(string $type, array $fields, array $identifiers = [], array $strings = [], ?string $socketId = null): bool
    {
        $this->lastError = '';
        $errors = array_merge(
            array_map(static fn (string $name): ?string => PusherRules::identifierError($name, $fields[$name]), $identifiers),
            array_map(static fn (string $name): ?string => PusherRules::stringError($name, $fields[$name]), $strings),
        );
        foreach ($errors as $error) {
            if ($error !== null) {
                $this->lastError = $error;
                return false;
            }
        }

        return $this->enqueue($type, $fields, $socketId);
    }
}
