<?php

/**
 * Front controller and router for `php -S 127.0.0.1:8080 -t public public/index.php`.
 *
 * The seed is a Phalcon app; Phalcon is a C extension that Debian does not
 * package, so this example routes with a table instead of Phalcon's router
 * and keeps everything else (the services, the auth endpoint) as the seed
 * wrote it.
 */

declare(strict_types=1);

use App\Controllers\ChatController;
use App\Controllers\PusherAuthController;
use App\Http\Response;
use App\Services\AuthService;

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';

// The built-in server serves the files under public/ itself.
if (PHP_SAPI === 'cli-server' && $path !== '/' && is_file(__DIR__ . $path)) {
    return false;
}

require __DIR__ . '/../src/bootstrap.php';

// pusher-js, the pinned npm package (package-lock.json), served from
// node_modules rather than a CDN: the page works offline and runs exactly
// the tested version. The encryption build, for private-encrypted- rooms.
if ($path === '/assets/pusher-with-encryption.min.js') {
    $file = __DIR__ . '/../node_modules/pusher-js/dist/web/pusher-with-encryption.min.js';
    if (!is_file($file)) {
        (Response::error(500, 'pusher-js is not installed: run npm ci in examples/chat (scripts/browser-deps does)'))->send();
        return true;
    }
    header('Content-Type: text/javascript; charset=utf-8');
    header('Cache-Control: public, max-age=3600');
    readfile($file);
    return true;
}

/**
 * pusher-js options, as `pusher-relay config --client` prints them (key,
 * wsHost, wsPort, forceTLS, ...; never the secret), from the file named by
 * PUSHER_CLIENT_CONFIG_FILE. This app's own auth routes are used when the
 * file names none.
 */
function realtimeConfig(): string
{
    $file = getenv('PUSHER_CLIENT_CONFIG_FILE') ?: __DIR__ . '/../pusher-client.json';
    $text = is_file($file) ? file_get_contents($file) : false;
    $client = $text === false ? null : json_decode($text, true);
    if (!is_array($client) || !isset($client['key'])) {
        return json_encode(['error' => 'no pusher-js options: write them with `pusher-relay config --client > ' . basename($file) . '` and set PUSHER_CLIENT_CONFIG_FILE']);
    }
    $client['channelAuthorization'] ??= ['endpoint' => '/api/pusher/auth', 'transport' => 'ajax'];
    $client['userAuthentication'] ??= ['endpoint' => '/api/pusher/user-auth', 'transport' => 'ajax'];

    return json_encode(['client' => $client], JSON_UNESCAPED_SLASHES | JSON_HEX_TAG | JSON_HEX_AMP);
}

$auth = new AuthService();
$chat = new ChatController($auth);
$pusherAuth = new PusherAuthController($auth);
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';

/** @var list<array{string, string, callable(array<string, string>): Response}> $routes */
$routes = [
    ['GET', '#\A/\z#', fn () => $chat->index(realtimeConfig())],
    ['POST', '#\A/signin\z#', fn () => $chat->signIn()],
    ['POST', '#\A/signout\z#', fn () => $chat->signOut()],
    ['POST', '#\A/api/pusher/auth\z#', fn () => $pusherAuth->authenticateChannel()],
    ['POST', '#\A/api/pusher/user-auth\z#', fn () => $pusherAuth->authenticateUser()],
    ['POST', '#\A/api/rooms/(?<room>[^/]+)/join\z#', fn (array $m) => $chat->join(urldecode($m['room']))],
    ['POST', '#\A/api/rooms/(?<room>[^/]+)/leave\z#', fn (array $m) => $chat->leave(urldecode($m['room']))],
    ['POST', '#\A/api/rooms/(?<room>[^/]+)/messages\z#', fn (array $m) => $chat->postMessage(urldecode($m['room']))],
    ['POST', '#\A/api/rooms/(?<room>[^/]+)/secrets\z#', fn (array $m) => $chat->postSecret(urldecode($m['room']))],
    ['POST', '#\A/api/notifications\z#', fn () => $chat->notify()],
    ['POST', '#\A/api/users/(?<id>[^/]+)/events\z#', fn (array $m) => $chat->sendToUser(urldecode($m['id']))],
    ['POST', '#\A/api/announcements\z#', fn () => $chat->announce()],
    ['POST', '#\A/api/orders\z#', fn () => $chat->placeOrder()],
    ['POST', '#\A/api/orders/(?<id>[^/]+)/status\z#', fn (array $m) => $chat->changeOrderStatus(urldecode($m['id']))],
];

$response = null;
$pathKnown = false;
foreach ($routes as [$routeMethod, $pattern, $action]) {
    if (preg_match($pattern, $path, $matches) === 1) {
        $pathKnown = true;
        if ($routeMethod === $method) {
            $response = $action($matches);
            break;
        }
    }
}
$response ??= $pathKnown
    ? Response::error(405, sprintf('%s does not accept %s', $path, $method))
    : Response::error(404, sprintf('no page at %s', $path));
$response->send();

return true;
