<?php

declare(strict_types=1);

namespace App\Services;

use PusherRelay\QueuedPusherService as PusherService;

/**
 * The seed's NotificationService: a notification to one user, an
 * announcement to everyone, and (new) an event to a signed-in user's
 * connections, Pusher's "send to user".
 */
class NotificationService
{
    private PusherService $pusher;

    /** Why the last call failed. */
    private string $lastError = '';

    public function __construct()
    {
        $this->pusher = new PusherService();
    }

    /** To private-user-{userId}: only that user's page can subscribe (see PusherAuthController). */
    public function sendUserNotification($userId, $message, $type = 'info'): bool
    {
        return $this->done($this->pusher->notifyUser($userId, $message, $type), $this->pusher->getLastError());
    }

    /** To the public `system` channel. */
    public function broadcastSystemMessage($message): bool
    {
        return $this->done($this->pusher->announce($message, 'high'), $this->pusher->getLastError());
    }

    /**
     * An event to every connection that signed in (pusher:signin) as $userId,
     * on Pusher's reserved #server-to-user-{id} channel, which no one can
     * subscribe to.
     *
     * @param array<string, mixed> $data
     */
    public function sendToUser(string $userId, string $event, array $data): bool
    {
        return $this->done($this->pusher->sendToUser($userId, $event, $data), $this->pusher->getLastError());
    }

    public function getLastError(): string
    {
        return $this->lastError;
    }

    private function done(bool $ok, string $error): bool
    {
        $this->lastError = $ok ? '' : $error;

        return $ok;
    }
}
