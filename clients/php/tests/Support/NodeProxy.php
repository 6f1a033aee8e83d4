<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

/**
 * Several stand-in RabbitMQ nodes in front of the real broker
 * (tests/node_proxy.php in a child process): a test lists their URLs in
 * AMQP_URL, asks which ones were connected to, and cuts the one in use.
 */
final class NodeProxy
{
    /** @var list<int> one port per node */
    public readonly array $ports;
    /** @var resource */
    private $process;
    /** @var array<int, resource> */
    private array $pipes;

    public function __construct(int $nodes)
    {
        $process = proc_open(
            [PHP_BINARY, dirname(__DIR__) . '/node_proxy.php', (string) $nodes, '127.0.0.1:5672'],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']],
            $pipes
        );
        if (!is_resource($process)) {
            throw new \RuntimeException('could not start tests/node_proxy.php');
        }
        $this->process = $process;
        $this->pipes = $pipes;
        $this->ports = array_map('intval', explode(' ', $this->line()));
    }

    /** AMQP_URL entry of node $node (0-based). */
    public function url(int $node): string
    {
        return sprintf('amqp://guest:guest@127.0.0.1:%d/%%2f', $this->ports[$node]);
    }

    /** @return list<int> connections each node has accepted so far */
    public function accepted(): array
    {
        fwrite($this->pipes[0], "count\n");

        return json_decode($this->line(), true, 512, JSON_THROW_ON_ERROR);
    }

    /** Every node with an open connection drops it and stops listening. */
    public function cutNodesInUse(): void
    {
        fwrite($this->pipes[0], "cut\n");
        $this->line();
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            fclose($this->pipes[0]);
            fclose($this->pipes[1]);
            proc_close($this->process);
        }
    }

    private function line(): string
    {
        $read = [$this->pipes[1]];
        $write = $except = null;
        if (stream_select($read, $write, $except, 5) !== 1) {
            throw new \RuntimeException('tests/node_proxy.php did not answer');
        }
        $line = fgets($this->pipes[1]);
        if ($line === false) {
            throw new \RuntimeException('tests/node_proxy.php exited');
        }

        return trim($line);
    }
}
