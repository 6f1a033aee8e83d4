<?php

declare(strict_types=1);

namespace App\Services;

/**
 * Who is signed in: a PHP session behind an HttpOnly, SameSite=Lax cookie.
 * The example has no passwords: signing in is choosing a name. Everything
 * that matters for Pusher (which private channels a user may join) follows
 * from the id derived here, as it would from a real login.
 */
final class AuthService
{
    /** A user id: it becomes part of channel names, so it keeps to a-z 0-9 -. */
    public const USER_ID_PATTERN = '/\A[a-z0-9-]{1,32}\z/';

    public function __construct()
    {
        if (session_status() !== PHP_SESSION_ACTIVE) {
            // SameSite=Lax: another site cannot post messages with our cookie.
            session_name('chat_session');
            session_start(['cookie_httponly' => true, 'cookie_samesite' => 'Lax', 'use_strict_mode' => true]);
        }
    }

    /**
     * Signs in as $name; the id is its slug ("Ada Lovelace" → "ada-lovelace").
     * Returns null when the name has no letter or digit to make an id from.
     */
    public function signIn(string $name): ?User
    {
        $id = trim((string) preg_replace('/[^a-z0-9]+/', '-', strtolower($name)), '-');
        $id = substr($id, 0, 32);
        if (preg_match(self::USER_ID_PATTERN, $id) !== 1) {
            return null;
        }
        session_regenerate_id(true);
        $_SESSION['user'] = ['id' => $id, 'name' => $name];
        $_SESSION['orders'] = [];

        return new User($id, $name);
    }

    public function signOut(): void
    {
        $_SESSION = [];
        session_destroy();
    }

    public function isAuthenticated(): bool
    {
        return isset($_SESSION['user']['id'], $_SESSION['user']['name']);
    }

    public function getUser(): ?User
    {
        return $this->isAuthenticated() ? new User($_SESSION['user']['id'], $_SESSION['user']['name']) : null;
    }

    /** Orders this user placed; only they may follow private-order-{id}. */
    public function addOrder(string $orderId): void
    {
        $_SESSION['orders'][] = $orderId;
    }

    public function ownsOrder(string $orderId): bool
    {
        return in_array($orderId, $_SESSION['orders'] ?? [], true);
    }

    /**
     * Ends the session lock early: PHP keeps one session's requests in
     * single file, which a burst of posts from one user does not need once
     * the user is known.
     */
    public function release(): void
    {
        session_write_close();
    }
}
