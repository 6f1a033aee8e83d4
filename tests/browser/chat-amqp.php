<?php

/**
 * RabbitMQ chores of the chat browser test, with php-amqplib (already the
 * PHP client's dependency; RabbitMQ's CLI cannot delete an exchange and the
 * tests have no npm AMQP client):
 *
 *   php chat-amqp.php delete AMQP_URL exchange:NAME queue:NAME ...
 *       deletes what a run declared; a name that does not exist is fine.
 *   php chat-amqp.php publish AMQP_URL EXCHANGE < intents.jsonl
 *       publishes one intent per line (routing key = its type, persistent,
 *       message_id, ordering-key header = its room channel) with publisher
 *       confirms awaited once for the lot, so that the producer is not what
 *       limits the rate the browsers see. Prints how many were confirmed.
 */

declare(strict_types=1);

require __DIR__ . '/../../clients/php/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPProtocolChannelException;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

[$script, $command, $url] = $argv + [1 => '', 2 => ''];
$parts = parse_url($url);
if (!in_array($command, ['delete', 'publish'], true) || $parts === false || !isset($parts['host'])) {
    fwrite(STDERR, "usage: php {$script} delete|publish amqp://user:password@host:5672/%2f ...\n");
    exit(2);
}
$vhost = isset($parts['path']) && $parts['path'] !== '/' ? urldecode(substr($parts['path'], 1)) : '/';
$connection = new AMQPStreamConnection(
    $parts['host'],
    $parts['port'] ?? 5672,
    urldecode($parts['user'] ?? 'guest'),
    urldecode($parts['pass'] ?? 'guest'),
    $vhost
);

if ($command === 'publish') {
    $exchange = $argv[3] ?? '';
    $channel = $connection->channel();
    $channel->confirm_select();
    $nacked = 0;
    $channel->set_nack_handler(static function () use (&$nacked): void {
        $nacked++;
    });
    $count = 0;
    while (($line = fgets(STDIN)) !== false) {
        $line = trim($line);
        if ($line === '') {
            continue;
        }
        $intent = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        $id = bin2hex(random_bytes(16));
        $channel->basic_publish(new AMQPMessage($line, [
            'content_type' => 'application/json',
            'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
            'message_id' => $id,
            'timestamp' => time(),
            'application_headers' => new AMQPTable(['ordering-key' => 'chat-room-' . $intent['room_id']]),
        ]), $exchange, $intent['type']);
        $count++;
    }
    $channel->wait_for_pending_acks(30);
    $connection->close();
    if ($nacked > 0) {
        fwrite(STDERR, "{$nacked} of {$count} intents were nacked by RabbitMQ\n");
        exit(1);
    }
    echo $count, "\n";
    exit(0);
}

$failed = false;
foreach (array_slice($argv, 3) as $target) {
    [$kind, $name] = explode(':', $target, 2) + [1 => ''];
    // A channel error (e.g. a queue still in use) closes the channel: one each.
    $channel = $connection->channel();
    try {
        match ($kind) {
            'exchange' => $channel->exchange_delete($name),
            'queue' => $channel->queue_delete($name),
            default => throw new InvalidArgumentException("{$target}: expected exchange:NAME or queue:NAME"),
        };
        $channel->close();
    } catch (AMQPProtocolChannelException $e) {
        fwrite(STDERR, "cannot delete {$target}: {$e->getMessage()}\n");
        $failed = true;
    }
}
$connection->close();
exit($failed ? 1 : 0);
