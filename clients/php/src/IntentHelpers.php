<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * One method per use case of the seed app, each enqueueing one typed intent
 * of wire contract v1 (DESIGN.md table). The worker maps the type to the
 * channel, event and payload the seed used to send, so the app states
 * what happened and the channel naming lives in one place (the worker's
 * templates).
 *
 * Identifiers go into the body as given: an int stays an int, a string a
 * string. Each method returns like trigger(): true once the broker has the
 * intent, false with getLastError() otherwise.
 */
trait IntentHelpers
{
    /** notification → private-user-{userId} (by default), event "notification". */
    public function notifyUser(int|string $userId, string $message, string $level = 'info'): bool
    {
        return $this->enqueueTyped('notification', ['user_id' => $userId, 'message' => $message, 'level' => $level], ['user_id']);
    }

    /** announcement → "system", event "announcement". */
    public function announce(string $message, string $priority = 'normal'): bool
    {
        return $this->enqueueTyped('announcement', ['message' => $message, 'priority' => $priority]);
    }

    /** chat.message → chat-room-{roomId}, event "new-message". */
    public function postChatMessage(int|string $roomId, int|string $userId, string $userName, string $message): bool
    {
        return $this->enqueueTyped(
            'chat.message',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName, 'message' => $message],
            ['room_id', 'user_id']
        );
    }

    /** chat.joined → chat-room-{roomId}, event "user-joined". */
    public function userJoinedRoom(int|string $roomId, int|string $userId, string $userName): bool
    {
        return $this->enqueueTyped(
            'chat.joined',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName],
            ['room_id', 'user_id']
        );
    }

    /** chat.left → chat-room-{roomId}, event "user-left". */
    public function userLeftRoom(int|string $roomId, int|string $userId, string $userName): bool
    {
        return $this->enqueueTyped(
            'chat.left',
            ['room_id' => $roomId, 'user_id' => $userId, 'user_name' => $userName],
            ['room_id', 'user_id']
        );
    }

    /**
     * order.status → private-order-{orderId} (+ private-customer-{customerId}),
     * event "order-status-changed". Like the seed's `if ($customerId)`, an
     * empty customer id (null, 0, '') adds no customer channel.
     */
    public function updateOrderStatus(int|string $orderId, string $status, int|string|null $customerId = null): bool
    {
        $fields = ['order_id' => $orderId, 'status' => $status];
        $identifiers = ['order_id'];
        if (!empty($customerId)) {
            $fields['customer_id'] = $customerId;
            $identifiers[] = 'customer_id';
        }

        return $this->enqueueTyped('order.status', $fields, $identifiers);
    }

    /**
     * dashboard.metrics → "dashboard", event "metrics-update".
     *
     * @param array<string, mixed> $metrics a map (the contract needs a JSON object; [] becomes {})
     */
    public function updateDashboardMetrics(array $metrics): bool
    {
        if ($metrics !== [] && array_is_list($metrics)) {
            $this->lastError = 'metrics must be an associative array (a JSON object), not a list';
            return false;
        }

        return $this->enqueueTyped('dashboard.metrics', ['metrics' => $metrics === [] ? new \stdClass() : $metrics]);
    }

    /**
     * inventory.stock → "inventory", event "stock-update". The contract wants
     * a number; a numeric string (as databases often return) is converted.
     */
    public function updateInventory(int|string $productId, int|float|string $quantity): bool
    {
        if (is_string($quantity)) {
            if (!is_numeric($quantity)) {
                $this->lastError = sprintf('quantity must be a number, got "%s"', substr($quantity, 0, 40));
                return false;
            }
            $quantity = $quantity + 0;
        }

        return $this->enqueueTyped('inventory.stock', ['product_id' => $productId, 'quantity' => $quantity], ['product_id']);
    }

    /** presence.activity → "presence-activity", event "user-activity". */
    public function broadcastUserActivity(int|string $userId, string $activity): bool
    {
        return $this->enqueueTyped('presence.activity', ['user_id' => $userId, 'activity' => $activity], ['user_id']);
    }

    /**
     * Checks identifiers the way the worker will, then enqueues.
     *
     * @param array<string, mixed> $fields
     * @param list<string> $identifiers names in $fields that must be a non-empty string or an int
     */
    private function enqueueTyped(string $type, array $fields, array $identifiers = []): bool
    {
        $this->lastError = '';
        foreach ($identifiers as $name) {
            $error = PusherRules::identifierError($name, $fields[$name]);
            if ($error !== null) {
                $this->lastError = $error;
                return false;
            }
        }

        return $this->enqueue($type, $fields);
    }
}
