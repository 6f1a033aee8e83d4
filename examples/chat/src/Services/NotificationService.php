<?php

declare(strict_types=1);

namespace App\Services;

use PusherRelay\Config;
use PusherRelay\IntentPublisher;
use PusherRelay\PublishFailed;
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
     * QueuedPusherService has no sendToUser() and its trigger() refuses the
     * '#' of the reserved name, so this publishes the `event` intent itself,
     * as the wire contract describes; the worker accepts the reserved name.
     *
     * @param array<string, mixed> $data
     */
    public function sendToUser(string $userId, string $event, array $data): bool
    {
        $config = Config::fromEnvironment();
        if ($config->amqpNodes === []) {
            return $this->done(false, $config->amqpUrlProblem());
        }
        $channel = "#server-to-user-{$userId}";
        $createdAtMs = (int) floor(microtime(true) * 1000);
        $id = bin2hex(random_bytes(16));
        $body = json_encode(
            ['type' => 'event', 'id' => $id, 'channels' => [$channel], 'event' => $event, 'data' => $data, 'created_at' => $createdAtMs],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR
        );
        try {
            // The ordering key is the intent's last channel, as every producer sets it.
            (new IntentPublisher($config->amqpNodes, $config->exchange, $config->amqpTimeout))
                ->publish('event', $body, $id, intdiv($createdAtMs, 1000), $channel);
        } catch (PublishFailed $e) {
            return $this->done(false, $e->getMessage());
        }

        return $this->done(true, '');
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
