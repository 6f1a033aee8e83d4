<?php

/**
 * Loads the queued Pusher client without Composer.
 *
 * Apps that use Composer get the same classes through composer.json's PSR-4
 * entry and never need this file. Apps that do not (or tests run from a
 * fresh clone on Debian) require this file: it finds php-amqplib in a
 * Composer vendor/ directory when there is one, else in Debian's
 * php-amqplib package, then registers the PusherRelay\ namespace.
 */

declare(strict_types=1);

if (!class_exists(\PhpAmqpLib\Connection\AMQPStreamConnection::class)) {
    $pusherRelayCandidates = [
        __DIR__ . '/vendor/autoload.php',
        __DIR__ . '/../../vendor/autoload.php',
        '/usr/share/php/PhpAmqpLib/autoload.php',
    ];
    $includePathCopy = stream_resolve_include_path('PhpAmqpLib/autoload.php');
    if ($includePathCopy !== false) {
        $pusherRelayCandidates[] = $includePathCopy;
    }
    foreach ($pusherRelayCandidates as $pusherRelayCandidate) {
        if (is_file($pusherRelayCandidate)) {
            require_once $pusherRelayCandidate;
            if (class_exists(\PhpAmqpLib\Connection\AMQPStreamConnection::class)) {
                break;
            }
        }
    }
    unset($pusherRelayCandidates, $pusherRelayCandidate, $includePathCopy);
}

spl_autoload_register(static function (string $class): void {
    $prefix = 'PusherRelay\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
