<?php

declare(strict_types=1);

namespace App\Controllers;

use App\Http\Input;
use App\Http\Response;
use App\Services\AuthService;
use App\Services\User;
use PusherRelay\QueuedPusherService as PusherService;

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

        $customData = [];
        if (str_starts_with($channel, 'presence-')) {
            $customData = [
                'user_id' => $user->getId(),
                'user_info' => ['name' => $user->getName()],
            ];
        }
        // private-encrypted- channels get their shared_secret too, from
        // PUSHER_ENCRYPTION_MASTER_KEY_BASE64 (which never leaves the server).
        $auth = $this->pusher->authenticateChannel($channel, $socketId, $customData);
        if ($auth === false) {
            // Encrypted rooms are off when the master key is not configured.
            $status = str_starts_with($channel, 'private-encrypted-') ? 503 : 500;
            return Response::error($status, 'cannot authorize ' . $channel . ': ' . $this->pusher->getLastError());
        }

        return Response::jsonText($auth);
    }

    /**
     * POST /api/pusher/user-auth (socket_id): the answer to `pusher:signin`,
     * so that events sent to this user (#server-to-user-{id}) reach this
     * connection.
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

        $auth = $this->pusher->authenticateUser($socketId, [
            'id' => $user->getId(),
            'user_info' => ['name' => $user->getName()],
        ]);
        if ($auth === false) {
            return Response::error(500, 'cannot sign in ' . $user->getId() . ': ' . $this->pusher->getLastError());
        }

        return Response::jsonText($auth);
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

}
