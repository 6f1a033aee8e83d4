<?php

declare(strict_types=1);

namespace App\Services;

use PusherRelay\QueuedPusherService as PusherService;

/**
 * The seed's ChatService on the `use` line above: messages, joins and
 * leaves now go to RabbitMQ as typed intents (chat.message, chat.joined,
 * chat.left) and the pusher-relay worker delivers them to chat-room-{roomId}
 * with the seed's events and payloads.
 */
class ChatService
{
    private PusherService $pusher;

    public function __construct()
    {
        $this->pusher = new PusherService();
    }

    /**
     * Broadcasts a message to the room. With the sender's $socketId, the
     * sender's own connection is left out (its page has shown the message
     * already), as Pusher's socket_id does.
     */
    public function sendMessage($roomId, $userId, $message, $userName, ?string $socketId = null): bool
    {
        return $this->pusher->postChatMessage($roomId, $userId, $userName, $message, $socketId);
    }

    public function userJoinedRoom($roomId, $userId, $userName): bool
    {
        return $this->pusher->userJoinedRoom($roomId, $userId, $userName);
    }

    public function userLeftRoom($roomId, $userId, $userName): bool
    {
        return $this->pusher->userLeftRoom($roomId, $userId, $userName);
    }

    /**
     * A message only the room's members can read: the worker encrypts it for
     * private-encrypted-chat-room-{roomId} with the master key, so neither
     * Pusher nor anything between sees the text.
     */
    public function sendSecretMessage($roomId, $userId, $message, $userName): bool
    {
        return $this->pusher->trigger("private-encrypted-chat-room-{$roomId}", 'secret-message', [
            'id' => uniqid(),
            'user_id' => $userId,
            'user_name' => $userName,
            'message' => $message,
            'timestamp' => time(),
        ]);
    }

    public function getLastError(): string
    {
        return $this->pusher->getLastError();
    }
}
