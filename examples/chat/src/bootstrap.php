<?php

/**
 * Loads the app: the queued Pusher client from clients/php (without
 * Composer, through its autoload.php, which finds Debian's php-amqplib) and
 * this app's own App\ classes.
 *
 * Configuration is the environment, with the seed's variable names
 * (PUSHER_APP_ID, PUSHER_APP_KEY, ...), as scripts/demo and the browser tests
 * pass it to `php -S`.
 */

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'App\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
