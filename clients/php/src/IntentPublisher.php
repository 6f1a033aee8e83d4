<?php

declare(strict_types=1);

namespace PusherRelay;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AbstractConnection;
use PhpAmqpLib\Connection\AMQPSSLConnection;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

/**
 * Publishes intents with publisher confirms, one message at a time.
 *
 * "Published" means the broker confirmed it took responsibility: the
 * message is routed (mandatory, so an unbound exchange is a failure, not a
 * silent drop) and acked. Anything less throws PublishFailed, so the app's
 * `false` means exactly "this event will not be delivered".
 *
 * The connection opens on first use and is reused for the life of the
 * object (one PHP request, or a long-running worker), so pages that never
 * trigger never touch the broker. With several RabbitMQ nodes, each
 * connection goes to the first that accepts it, trying them in a fresh
 * random order every time, so apps spread over the cluster and a lost
 * connection is replaced on whichever node is still up.
 *
 * Each message carries the intent's ordering key in the `ordering-key`
 * header, which the worker's shards route on.
 */
final class IntentPublisher
{
    /** The header the worker's shards route on (src/amqp/mod.rs, ORDERING_KEY_HEADER). */
    public const ORDERING_KEY_HEADER = 'ordering-key';

    /** Open connection, or null before first use and after a failure. */
    private ?AbstractConnection $connection = null;

    /** Channel in confirm mode on $connection; a broker error closes it, so it is rebuilt. */
    private ?AMQPChannel $channel = null;

    /** Set by the nack handler during one publish. */
    private bool $nacked = false;

    /** Set by the return listener during one publish: why the broker could not route it. */
    private ?string $returned = null;

    /**
     * @param list<AmqpTarget> $nodes at least one; all amqp:// or all amqps:// (Config checks both)
     */
    public function __construct(
        private readonly array $nodes,
        private readonly string $exchange,
        private readonly float $timeout,
    ) {
        if ($nodes === []) {
            throw new \InvalidArgumentException('IntentPublisher needs at least one RabbitMQ node');
        }
    }

    /**
     * @param ?string $orderingKey the `ordering-key` header (the intent's last
     *        channel); null publishes without it
     * @throws PublishFailed when the broker did not confirm the message
     */
    public function publish(string $routingKey, string $body, string $messageId, int $timestampSeconds, ?string $orderingKey = null): void
    {
        $properties = [
            'content_type' => 'application/json',
            'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
            'message_id' => $messageId,
            'timestamp' => $timestampSeconds,
        ];
        if ($orderingKey !== null) {
            // A long string ('S'), the type the worker's own publisher uses,
            // so the consistent-hash exchange hashes both the same way.
            $properties['application_headers'] = new AMQPTable([self::ORDERING_KEY_HEADER => $orderingKey]);
        }
        $message = new AMQPMessage($body, $properties);

        // A connection kept from an earlier call may have died meanwhile
        // (broker restart, idle timeout, node down); one attempt on a fresh
        // connection, to any node of AMQP_URL that accepts it, covers that.
        // The id stays the same, so the worker's dedup cache absorbs a
        // duplicate. A broker refusal on a live connection (no such exchange,
        // access refused) is not retried: it would fail again.
        $reused = $this->channel !== null;
        try {
            $this->publishOnce($message, $routingKey);
            return;
        } catch (PublishFailed $refused) {
            throw $refused;
        } catch (\Throwable $error) {
            $connectionLost = $this->forgetBroken();
            if (!$reused || !$connectionLost) {
                throw new PublishFailed('could not publish to RabbitMQ: ' . self::describe($error), 0, $error);
            }
        }
        try {
            $this->publishOnce($message, $routingKey);
        } catch (PublishFailed $refused) {
            throw $refused;
        } catch (\Throwable $retryError) {
            $this->forgetBroken();
            throw new PublishFailed('could not publish to RabbitMQ: ' . self::describe($retryError), 0, $retryError);
        }
    }

    /** Closes the connection politely; safe to call twice. */
    public function close(): void
    {
        try {
            $this->channel?->close();
            $this->connection?->close();
        } catch (\Throwable) {
            // Closing is best effort: the broker drops the connection anyway.
        }
        $this->channel = null;
        $this->connection = null;
    }

    public function __destruct()
    {
        $this->close();
    }

    private function publishOnce(AMQPMessage $message, string $routingKey): void
    {
        $channel = $this->channel();
        $this->nacked = false;
        $this->returned = null;

        $channel->basic_publish($message, $this->exchange, $routingKey, true);
        // Throws if the broker closes the channel (e.g. 404 no such exchange)
        // or the confirm does not arrive within the timeout.
        $channel->wait_for_pending_acks_returns($this->timeout);

        if ($this->returned !== null) {
            throw new PublishFailed(sprintf(
                'RabbitMQ could not route the intent: exchange "%s" has no queue bound for routing key "%s" (%s)',
                $this->exchange,
                $routingKey,
                $this->returned
            ));
        }
        if ($this->nacked) {
            throw new PublishFailed(sprintf('RabbitMQ refused the intent (nack) on exchange "%s"', $this->exchange));
        }
    }

    private function channel(): AMQPChannel
    {
        if ($this->channel !== null && $this->channel->is_open()) {
            return $this->channel;
        }
        if ($this->connection === null || !$this->connection->isConnected()) {
            $this->connection = $this->connect();
        }
        $channel = $this->connection->channel();
        $channel->set_ack_handler(static function (): void {
        });
        $channel->set_nack_handler(function (): void {
            $this->nacked = true;
        });
        $channel->set_return_listener(function (int $replyCode, string $replyText): void {
            $this->returned = $replyCode . ' ' . $replyText;
        });
        $channel->confirm_select();

        return $this->channel = $channel;
    }

    /**
     * Opens a connection to the first node that accepts one, in a random
     * order (php-amqplib's create_connection tries them in turn). Each
     * unreachable node costs up to the timeout; one that is down refuses at
     * once.
     *
     * @throws \Exception php-amqplib's error for the last node tried, or,
     *         with several nodes, a sentence naming them (passwords redacted)
     */
    private function connect(): AbstractConnection
    {
        $nodes = $this->nodes;
        shuffle($nodes);
        $hosts = array_map(static fn (AmqpTarget $node): array => [
            'host' => $node->host,
            'port' => $node->port,
            'user' => $node->user,
            'password' => $node->password,
            'vhost' => $node->vhost,
        ], $nodes);
        $options = [
            'connection_timeout' => $this->timeout,
            'read_write_timeout' => $this->timeout,
            // No heartbeats (as before): PHP answers them only while it talks
            // to the broker; a connection that died meanwhile is replaced on use.
            'heartbeat' => 0,
            'keepalive' => false,
        ];

        try {
            if ($nodes[0]->secure) {
                // The URL's TLS parameters (AmqpTarget::$sslOptions); one
                // connection class serves the list, so the first node's apply.
                $options['ssl_options'] = $nodes[0]->sslOptions;
                return AMQPSSLConnection::create_connection($hosts, $options);
            }
            return AMQPStreamConnection::create_connection($hosts, $options);
        } catch (\Exception $error) {
            if (count($nodes) === 1) {
                throw $error;
            }
            throw new \RuntimeException(sprintf(
                'no RabbitMQ node of AMQP_URL accepted a connection (tried %s); the last said: %s',
                implode(', ', array_map(static fn (AmqpTarget $node): string => $node->redacted(), $nodes)),
                self::describe($error)
            ), 0, $error);
        }
    }

    /**
     * Forgets what a failed publish may have broken: the channel always (the
     * broker closes it on a refusal), the connection only when it is gone.
     * A dead connection is dropped without a close handshake that would only
     * wait for the timeout.
     *
     * @return bool whether the connection was lost
     */
    private function forgetBroken(): bool
    {
        $this->channel = null;
        if ($this->connection !== null && $this->connection->isConnected()) {
            return false;
        }
        $this->connection = null;

        return true;
    }

    private static function describe(\Throwable $error): string
    {
        $message = trim($error->getMessage());
        return $message === '' ? get_class($error) : $message;
    }
}
