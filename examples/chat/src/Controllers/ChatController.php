<?php

declare(strict_types=1);

namespace App\Controllers;

use App\Http\Input;
use App\Http\Response;
use App\Services\AuthService;
use App\Services\ChatService;
use App\Services\LiveDataService;
use App\Services\NotificationService;
use App\Services\User;

/**
 * The pages and the actions behind the chat's buttons. Each action enqueues
 * one intent through the services and answers JSON: 202 once RabbitMQ has
 * it (the worker delivers it a moment later), 503 with the reason when the
 * broker did not take it.
 */
final class ChatController
{
    /** Order statuses the page offers; anything else is a 400. */
    private const ORDER_STATUSES = ['placed', 'packed', 'shipped', 'delivered'];

    public function __construct(private readonly AuthService $auth)
    {
    }

    /** GET /: the sign-in form, or the chat for the signed-in user. */
    public function index(string $realtimeConfig): Response
    {
        $user = $this->auth->getUser();
        if ($user === null) {
            return Response::html(self::render('signin', []));
        }
        $room = $_GET['room'] ?? 'lobby';
        if (!is_string($room) || preg_match(Input::ROOM_PATTERN, $room) !== 1) {
            $room = 'lobby';
        }

        return Response::html(self::render('chat', ['user' => $user, 'room' => $room, 'realtimeConfig' => $realtimeConfig]));
    }

    /** POST /signin (name). */
    public function signIn(): Response
    {
        $name = Input::text('name', 40);
        if ($name instanceof Response) {
            return $name;
        }
        if ($this->auth->signIn($name) === null) {
            return Response::error(400, 'name needs at least one letter or digit');
        }

        return Response::redirect('/');
    }

    /** POST /signout. */
    public function signOut(): Response
    {
        $this->auth->signOut();

        return Response::redirect('/');
    }

    /** POST /api/rooms/{room}/join: tells the room (chat.joined). */
    public function join(string $room): Response
    {
        return $this->inRoom($room, fn (User $user, string $room, ChatService $chat): bool
            => $chat->userJoinedRoom($room, $user->getId(), $user->getName()));
    }

    /** POST /api/rooms/{room}/leave: tells the room (chat.left). */
    public function leave(string $room): Response
    {
        return $this->inRoom($room, fn (User $user, string $room, ChatService $chat): bool
            => $chat->userLeftRoom($room, $user->getId(), $user->getName()));
    }

    /** POST /api/rooms/{room}/messages (message, socket_id?): the sender's socket is left out. */
    public function postMessage(string $room): Response
    {
        $message = Input::text('message');
        if ($message instanceof Response) {
            return $message;
        }
        $socketId = Input::optionalSocketId();
        if ($socketId instanceof Response) {
            return $socketId;
        }

        return $this->inRoom($room, fn (User $user, string $room, ChatService $chat): bool
            => $chat->sendMessage($room, $user->getId(), $message, $user->getName(), $socketId));
    }

    /** POST /api/rooms/{room}/secrets (message): to the room's encrypted channel. */
    public function postSecret(string $room): Response
    {
        $message = Input::text('message');
        if ($message instanceof Response) {
            return $message;
        }

        return $this->inRoom($room, fn (User $user, string $room, ChatService $chat): bool
            => $chat->sendSecretMessage($room, $user->getId(), $message, $user->getName()));
    }

    /** POST /api/notifications (user_id, message): to private-user-{user_id}. */
    public function notify(): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        $to = Input::userId('user_id');
        $message = Input::text('message');
        foreach ([$to, $message] as $value) {
            if ($value instanceof Response) {
                return $value;
            }
        }
        $notifications = new NotificationService();

        return self::enqueued($notifications->sendUserNotification($to, "{$user->getName()}: {$message}", 'info'), $notifications->getLastError());
    }

    /** POST /api/users/{id}/events (message): to that user's signed-in connections. */
    public function sendToUser(string $to): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        if (preg_match(AuthService::USER_ID_PATTERN, $to) !== 1) {
            return Response::error(400, 'user id must be 1 to 32 of a-z 0-9 -');
        }
        $message = Input::text('message');
        if ($message instanceof Response) {
            return $message;
        }
        $notifications = new NotificationService();
        $sent = $notifications->sendToUser($to, 'direct-message', [
            'from' => $user->getName(),
            'message' => $message,
            'timestamp' => time(),
        ]);

        return self::enqueued($sent, $notifications->getLastError());
    }

    /** POST /api/announcements (message): to the public `system` channel. */
    public function announce(): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        $message = Input::text('message');
        if ($message instanceof Response) {
            return $message;
        }
        $notifications = new NotificationService();

        return self::enqueued($notifications->broadcastSystemMessage($message), $notifications->getLastError());
    }

    /** POST /api/orders: places an order (remembered in the session) and announces it "placed". */
    public function placeOrder(): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        // Unguessable: the id names the private-order- channel, and the
        // auth endpoint's ownership check is only as good as its uniqueness.
        $orderId = 'A-' . bin2hex(random_bytes(12));
        $this->auth->addOrder($orderId);
        $this->auth->release();
        $orders = new LiveDataService();
        if (!$orders->updateOrderStatus($orderId, 'placed', $user->getId())) {
            return Response::error(503, 'not enqueued: ' . $orders->getLastError());
        }

        return Response::json(202, ['order_id' => $orderId, 'status' => 'placed']);
    }

    /** POST /api/orders/{id}/status (status). */
    public function changeOrderStatus(string $orderId): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        if (!$this->auth->ownsOrder($orderId)) {
            return Response::error(403, sprintf('order %s is not one of yours', substr($orderId, 0, 20)));
        }
        $status = $_POST['status'] ?? null;
        if (!in_array($status, self::ORDER_STATUSES, true)) {
            return Response::error(400, 'status must be one of ' . implode(', ', self::ORDER_STATUSES));
        }
        $orders = new LiveDataService();

        return self::enqueued($orders->updateOrderStatus($orderId, $status, $user->getId()), $orders->getLastError());
    }

    /**
     * Runs $action for the signed-in user in a valid room.
     *
     * @param callable(User, string, ChatService): bool $action
     */
    private function inRoom(string $room, callable $action): Response
    {
        $user = $this->signedIn();
        if ($user instanceof Response) {
            return $user;
        }
        $room = Input::room($room);
        if ($room instanceof Response) {
            return $room;
        }
        $this->auth->release();
        $chat = new ChatService();

        return self::enqueued($action($user, $room, $chat), $chat->getLastError());
    }

    /** The signed-in user, or the 401 for a request without one. */
    private function signedIn(): User|Response
    {
        $user = $this->auth->getUser();
        if ($user === null) {
            return Response::error(401, 'sign in first');
        }

        return $user;
    }

    private static function enqueued(bool $ok, string $error): Response
    {
        return $ok
            ? Response::json(202, ['enqueued' => true])
            : Response::error(503, 'not enqueued: ' . $error);
    }

    /** @param array<string, mixed> $vars */
    private static function render(string $view, array $vars): string
    {
        extract($vars);
        ob_start();
        require __DIR__ . '/../../views/' . $view . '.php';

        return (string) ob_get_clean();
    }
}
