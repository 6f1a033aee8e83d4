<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

/** Runs tests/fake_pusher.php under PHP's built-in server on a free port. */
final class FakePusher
{
    public readonly int $port;
    /** @var resource */
    private $process;

    public function __construct(string $appId, string $key, string $secret)
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $this->port = (int) substr((string) strrchr((string) stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);

        $env = ['FAKE_PUSHER_APP_ID' => $appId, 'FAKE_PUSHER_KEY' => $key, 'FAKE_PUSHER_SECRET' => $secret, 'PATH' => (string) getenv('PATH')];
        $process = proc_open(
            [PHP_BINARY, '-S', '127.0.0.1:' . $this->port, dirname(__DIR__) . '/fake_pusher.php'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']],
            $pipes,
            null,
            $env
        );
        if (!is_resource($process)) {
            throw new \RuntimeException('could not start php -S');
        }
        $this->process = $process;

        $deadline = microtime(true) + 5;
        while (microtime(true) < $deadline) {
            $socket = @fsockopen('127.0.0.1', $this->port, $errno, $errstr, 0.1);
            if ($socket !== false) {
                fclose($socket);
                return;
            }
            usleep(20000);
        }
        $this->stop();
        throw new \RuntimeException('php -S did not start listening on port ' . $this->port);
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            proc_terminate($this->process);
            proc_close($this->process);
        }
    }
}
