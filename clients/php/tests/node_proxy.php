<?php

/**
 * Stand-ins for RabbitMQ nodes: N TCP listeners on free ports, each passing
 * its connections through to the one real broker, so a test can list
 * several "nodes", see which one the client picked, and lose one.
 *
 * Usage: php node_proxy.php N [upstream-host:port]
 * Prints the N ports on one line, then obeys one command a line on stdin:
 *   count  prints how many connections each node has accepted (JSON list)
 *   cut    every node with an open connection drops it and stops
 *          listening, as a node that dies: the client loses its connection
 *          and a new one to that node is refused
 * Exits when stdin closes. Runs as a child of the test (tests/Support/NodeProxy.php).
 */

declare(strict_types=1);

$nodes = max(1, (int) ($argv[1] ?? 2));
$upstream = $argv[2] ?? '127.0.0.1:5672';

/** @var array<int, resource|null> $listeners node => listening socket, null once cut */
$listeners = [];
/** @var array<int, int> $accepted node => connections accepted */
$accepted = [];
/** @var list<array{int, resource, resource}> $pairs [node, client side, broker side] */
$pairs = [];
$ports = [];
for ($node = 0; $node < $nodes; $node++) {
    $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
    if ($server === false) {
        fwrite(STDERR, "listen: $errstr\n");
        exit(1);
    }
    $listeners[$node] = $server;
    $accepted[$node] = 0;
    $ports[] = (int) substr((string) strrchr((string) stream_socket_get_name($server, false), ':'), 1);
}
fwrite(STDOUT, implode(' ', $ports) . "\n");

$commands = '';
while (true) {
    $read = [STDIN];
    foreach ($listeners as $server) {
        if ($server !== null) {
            $read[] = $server;
        }
    }
    foreach ($pairs as [, $client, $broker]) {
        $read[] = $client;
        $read[] = $broker;
    }
    $write = $except = null;
    if (stream_select($read, $write, $except, 1) === false) {
        break;
    }
    foreach ($read as $socket) {
        if ($socket === STDIN) {
            $chunk = fread(STDIN, 8192);
            if ($chunk === '' || $chunk === false) {
                exit(0);
            }
            $commands .= $chunk;
            while (($end = strpos($commands, "\n")) !== false) {
                $command = trim(substr($commands, 0, $end));
                $commands = substr($commands, $end + 1);
                if ($command === 'count') {
                    fwrite(STDOUT, json_encode(array_values($accepted)) . "\n");
                } elseif ($command === 'cut') {
                    foreach ($pairs as $i => [$node, $client, $broker]) {
                        fclose($client);
                        fclose($broker);
                        unset($pairs[$i]);
                        if ($listeners[$node] !== null) {
                            fclose($listeners[$node]);
                            $listeners[$node] = null;
                        }
                    }
                    $pairs = array_values($pairs);
                    fwrite(STDOUT, "cut\n");
                }
            }
            continue;
        }
        $node = array_search($socket, $listeners, true);
        if ($node !== false) {
            $client = @stream_socket_accept($socket, 0);
            $broker = @stream_socket_client('tcp://' . $upstream, $errno, $errstr, 2);
            if ($client === false || $broker === false) {
                continue;
            }
            $accepted[$node]++;
            $pairs[] = [$node, $client, $broker];
            continue;
        }
        foreach ($pairs as $i => [, $client, $broker]) {
            if ($socket !== $client && $socket !== $broker) {
                continue;
            }
            $data = fread($socket, 65536);
            if ($data === '' || $data === false) {
                fclose($client);
                fclose($broker);
                unset($pairs[$i]);
                $pairs = array_values($pairs);
            } else {
                fwrite($socket === $client ? $broker : $client, $data);
            }
            break;
        }
    }
}
