<?php

declare(strict_types=1);

namespace App\Services;

use PusherRelay\QueuedPusherService as PusherService;

/** The seed's LiveDataService, the part the chat uses: order status changes. */
class LiveDataService
{
    private PusherService $pusher;

    public function __construct()
    {
        $this->pusher = new PusherService();
    }

    /**
     * To private-order-{orderId} and, with a customer, private-customer-{customerId}
     * (the worker's default channel names; the seed's were public).
     */
    public function updateOrderStatus($orderId, $status, $customerId = null): bool
    {
        return $this->pusher->updateOrderStatus($orderId, $status, $customerId);
    }

    public function getLastError(): string
    {
        return $this->pusher->getLastError();
    }
}
