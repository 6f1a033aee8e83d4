<?php

/**
 * A tiny stand-in for Pusher's REST API, run with
 * `php -S 127.0.0.1:<port> tests/fake_pusher.php`.
 *
 * It recomputes the auth_version 1.0 signature of every request from the
 * decoded query (as Pusher does) and answers 401 when it does not match, so
 * a passing channel query proves the client signs correctly. Key, secret and
 * app id come from FAKE_PUSHER_KEY, FAKE_PUSHER_SECRET, FAKE_PUSHER_APP_ID.
 */

declare(strict_types=1);

$key = (string) getenv('FAKE_PUSHER_KEY');
$secret = (string) getenv('FAKE_PUSHER_SECRET');
$appId = (string) getenv('FAKE_PUSHER_APP_ID');

$answer = static function (int $status, array $body): void {
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, JSON_UNESCAPED_SLASHES);
};

$path = rawurldecode((string) parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
$params = $_GET;

// 1. Authenticate exactly as Pusher documents it (docs/architecture.md, "Signing").
$signature = (string) ($params['auth_signature'] ?? '');
$toSign = [];
foreach ($params as $name => $value) {
    if ($name !== 'auth_signature') {
        $toSign[strtolower((string) $name)] = strtolower((string) $name) . '=' . $value;
    }
}
ksort($toSign, SORT_STRING);
$expected = hash_hmac('sha256', $_SERVER['REQUEST_METHOD'] . "\n" . $path . "\n" . implode('&', $toSign), $secret);
if (($params['auth_key'] ?? '') !== $key || ($params['auth_version'] ?? '') !== '1.0') {
    $answer(401, ['error' => 'Unknown auth_key or auth_version']);
    return;
}
if (abs(time() - (int) ($params['auth_timestamp'] ?? 0)) >= 600) {
    $answer(401, ['error' => 'Timestamp expired']);
    return;
}
if (!hash_equals($expected, $signature)) {
    $answer(401, ['error' => 'Invalid signature']);
    return;
}

// 2. Route.
$info = array_filter(explode(',', (string) ($params['info'] ?? '')));
$occupied = ['presence-lobby' => 3, 'chat-room-1' => 0, 'presence-room-2' => 1];
if ($_SERVER['REQUEST_METHOD'] === 'GET' && $path === "/apps/$appId/channels") {
    $prefix = (string) ($params['filter_by_prefix'] ?? '');
    if ($info === ['user_count'] && $prefix !== 'presence-') {
        $answer(400, ['error' => 'user_count may only be requested for presence channels']);
        return;
    }
    $channels = [];
    foreach ($occupied as $name => $users) {
        if ($prefix === '' || str_starts_with($name, $prefix)) {
            $channels[$name] = in_array('user_count', $info, true) ? ['user_count' => $users] : new stdClass();
        }
    }
    $answer(200, ['channels' => $channels === [] ? new stdClass() : $channels]);
    return;
}
if ($_SERVER['REQUEST_METHOD'] === 'GET' && preg_match('#\A/apps/' . preg_quote($appId, '#') . '/channels/([^/]+)\z#', $path, $m)) {
    $name = $m[1];
    $body = ['occupied' => isset($occupied[$name])];
    foreach ($info as $attribute) {
        if ($attribute === 'user_count') {
            if (!str_starts_with($name, 'presence-')) {
                $answer(400, ['error' => 'Cannot retrieve the user count unless the channel is a presence channel']);
                return;
            }
            $body['user_count'] = $occupied[$name] ?? 0;
        } elseif ($attribute === 'subscription_count') {
            $body['subscription_count'] = ($occupied[$name] ?? 0) + 10;
        }
    }
    $answer(200, $body);
    return;
}
$answer(404, ['error' => 'no route for ' . $path]);
