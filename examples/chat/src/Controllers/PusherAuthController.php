<?php

declare(strict_types=1);

namespace App\Controllers;

use App\Http\Input;
use App\Http\Response;
use App\Services\AuthService;
use App\Services\User;
use PusherRelay\Config;
use PusherRelay\QueuedPusherService as PusherService;
use PusherRelay\Signer;

/**
 * The endpoints pusher-js calls before it may join a private, presence or
 * encrypted channel (POST /api/pusher/auth), and before `pusher.signin()`
 * (POST /api/pusher/user-auth). The seed's `/api/pusher/auth` route, with
 * its rules written out:
 *
 * - public channels (chat-room-*, system) need no authorization at all;
 * - private-user-{id} and private-customer-{id}: only user {id};
 * - private-order-{id}: only the user who placed the order;
 * - presence-chat-room-{room}: any signed-in user, as user_id + user_info;
 * - private-encrypted-chat-room-{room}: any signed-in user, with the
 *   channel's shared secret (derived from the master key, which stays here).
 *
 * Every refusal is JSON with a reason: 400 for a malformed request, 401 when
 * nobody is signed in, 403 for a channel this user may not join.
 */
final class PusherAuthController
{
    private const ROOM = '(?<room>[A-Za-z0-9_-]{1,40})';

    private PusherService $pusher;

    public function __construct(private readonly AuthService $auth)
    {
        $this->pusher = new PusherService();
    }

    /** POST /api/pusher/auth (socket_id, channel_name), form-encoded by pusher-js. */
    public function authenticateChannel(): Response
    {
        $socketId = Input::socketId();
        if ($socketId instanceof Response) {
            return $socketId;
        }
        $channel = Input::channel();
        if ($channel instanceof Response) {
            return $channel;
        }
        $user = $this->auth->getUser();
        if ($user === null) {
            return Response::error(401, 'sign in before joining ' . $channel);
        }
        $this->auth->release();

        $refusal = $this->refusal($channel, $user);
        if ($refusal !== null) {
            return $refusal;
        }

        if (str_starts_with($channel, 'private-encrypted-')) {
            return $this->encryptedChannelAuth($channel, $socketId);
        }

        $customData = [];
        if (str_starts_with($channel, 'presence-')) {
            $customData = [
                'user_id' => $user->getId(),
                'user_info' => ['name' => $user->getName()],
            ];
        }
        $auth = $this->pusher->authenticateChannel($channel, $socketId, $customData);
        if ($auth === false) {
            return Response::error(500, 'cannot authorize ' . $channel . ': ' . $this->pusher->getLastError());
        }

        return Response::jsonText($auth);
    }

    /**
     * POST /api/pusher/user-auth (socket_id): the signature for
     * `pusher:signin`, so that events sent to this user (#server-to-user-{id})
     * reach this connection. Pusher's user authentication: HMAC of
     * "{socket_id}::user::{user_data}".
     */
    public function authenticateUser(): Response
    {
        $socketId = Input::socketId();
        if ($socketId instanceof Response) {
            return $socketId;
        }
        $user = $this->auth->getUser();
        if ($user === null) {
            return Response::error(401, 'sign in before pusher:signin');
        }
        $this->auth->release();

        $config = Config::fromEnvironment();
        $userData = json_encode(
            ['id' => $user->getId(), 'user_info' => ['name' => $user->getName()]],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR
        );
        $signature = hash_hmac('sha256', "{$socketId}::user::{$userData}", $config->secret);

        return Response::json(200, ['auth' => $config->key . ':' . $signature, 'user_data' => $userData]);
    }

    /** Null when $user may join $channel, else the refusal naming the rule. */
    private function refusal(string $channel, User $user): ?Response
    {
        if (!str_starts_with($channel, 'private-') && !str_starts_with($channel, 'presence-')) {
            return Response::error(400, sprintf('%s is a public channel; public channels need no authorization', $channel));
        }
        if (preg_match('/\Aprivate-(user|customer)-(?<id>.+)\z/', $channel, $m) === 1) {
            return $m['id'] === $user->getId()
                ? null
                : Response::error(403, sprintf('%s belongs to another user; you may join private-%s-%s', $channel, $m[1], $user->getId()));
        }
        if (preg_match('/\Aprivate-order-(?<id>.+)\z/', $channel, $m) === 1) {
            return $this->auth->ownsOrder($m['id'])
                ? null
                : Response::error(403, sprintf('%s is not one of your orders', $channel));
        }
        if (preg_match('/\A(presence|private-encrypted)-chat-room-' . self::ROOM . '\z/', $channel) === 1) {
            return null;
        }

        return Response::error(403, sprintf('%s is not a channel of this app', $channel));
    }

    /**
     * An encrypted channel's auth carries its shared secret:
     * SHA-256(channel name . master key), as Pusher's SDKs derive it (the
     * worker derives the same to encrypt). QueuedPusherService refuses these
     * channels (it has no master key), so the signature is made here.
     */
    private function encryptedChannelAuth(string $channel, string $socketId): Response
    {
        $masterKey = base64_decode((string) getenv('PUSHER_ENCRYPTION_MASTER_KEY_BASE64'), true);
        if ($masterKey === false || strlen($masterKey) !== 32) {
            return Response::error(503, 'encrypted rooms are off: PUSHER_ENCRYPTION_MASTER_KEY_BASE64 must be 32 bytes in base64');
        }
        $config = Config::fromEnvironment();

        return Response::json(200, [
            'auth' => Signer::channelAuth($config->key, $config->secret, $socketId, $channel),
            'shared_secret' => base64_encode(hash('sha256', $channel . $masterKey, true)),
        ]);
    }
}
