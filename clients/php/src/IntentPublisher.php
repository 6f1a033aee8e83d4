<?php

declare(strict_types=1);

namespace PusherRelay;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AbstractConnection;
use PhpAmqpLib\Connection\AMQPConnectionConfig;
use PhpAmqpLib\Connection\AMQPConnectionFactory;
use PhpAmqpLib\Message\AMQPMessage;

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
 * trigger never touch the broker.
 */
final class IntentPublisher
{
    /** Open connection, or null before first use and after a failure. */
    private ?AbstractConnection $connection = null;

    /** Channel in confirm mode on $connection; a broker error closes it, so it is rebuilt. */
    private ?AMQPChannel $channel = null;

    /** Set by the nack handler during one publish. */
    private bool $nacked = false;

    /** Set by the return listener during one publish: why the broker could not route it. */
    private ?string $returned = null;

    public function __construct(
        private readonly AmqpTarget $target,
        private readonly string $exchange,
        private readonly float $timeout,
    ) {
    }

    /**
     * @throws PublishFailed when the broker did not confirm the message
     */
    public function publish(string $routingKey, string $body, string $messageId, int $timestampSeconds): void
    {
        $message = new AMQPMessage($body, [
            'content_type' => 'application/json',
            'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
            'message_id' => $messageId,
            'timestamp' => $timestampSeconds,
        ]);

        // A connection kept from an earlier call may have died meanwhile
        // (broker restart, idle timeout); one attempt on a fresh connection
        // covers that. The id stays the same, so the worker's dedup cache
        // absorbs a duplicate. A broker refusal on a live connection (no such
        // exchange, access refused) is not retried: it would fail again.
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
            $this->connection = AMQPConnectionFactory::create($this->connectionConfig());
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

    private function connectionConfig(): AMQPConnectionConfig
    {
        $config = new AMQPConnectionConfig();
        $config->setHost($this->target->host);
        $config->setPort($this->target->port);
        $config->setUser($this->target->user);
        $config->setPassword($this->target->password);
        $config->setVhost($this->target->vhost);
        $config->setIsSecure($this->target->secure);
        $config->setConnectionTimeout($this->timeout);
        $config->setReadTimeout($this->timeout);
        $config->setWriteTimeout($this->timeout);

        return $config;
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
