<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\QueuedPusherService;
use PusherRelay\Tests\Support\ServiceFactory;

/** Settings come from the environment with the seed's names and defaults. */
final class ConfigTest extends TestCase
{
    private const VARIABLES = [
        'PUSHER_APP_ID', 'PUSHER_APP_KEY', 'PUSHER_APP_SECRET', 'PUSHER_APP_CLUSTER', 'PUSHER_USE_TLS',
        'PUSHER_HOST', 'PUSHER_PORT', 'PUSHER_SCHEME', 'PUSHER_VERIFY_SSL', 'PUSHER_DISABLE_STATS',
        'AMQP_URL', 'AMQP_EXCHANGE',
    ];

    /** @var array<string, string|false> */
    private array $saved = [];

    protected function setUp(): void
    {
        foreach (self::VARIABLES as $name) {
            $this->saved[$name] = getenv($name);
            putenv($name);
            unset($_ENV[$name]);
        }
    }

    protected function tearDown(): void
    {
        foreach ($this->saved as $name => $value) {
            $value === false ? putenv($name) : putenv("$name=$value");
        }
    }

    public function testNoArgumentConstructorReadsTheEnvironmentWithSeedDefaults(): void
    {
        putenv('PUSHER_APP_ID=77');
        putenv('PUSHER_APP_KEY=env-key');
        putenv('PUSHER_APP_SECRET=env-secret');

        $service = new QueuedPusherService();

        self::assertTrue($service->isReady(), $service->getLastError());
        self::assertSame([
            'app_id' => '77',
            'key' => 'env-key',
            'secret' => '***',
            'cluster' => 'mt1',
            'use_tls' => true,
            'host' => null,
            'port' => null,
            'scheme' => 'https',
            'verify_ssl' => true,
            'disable_stats' => false,
            'enabled_transports' => ['ws', 'wss'],
            'amqp_url' => 'amqp://guest:***@127.0.0.1:5672/%2F',
            'amqp_exchange' => 'pusher.intents',
        ], $service->getConfig());
        self::assertSame([
            'key' => 'env-key',
            'cluster' => 'mt1',
            'forceTLS' => true,
            'enabledTransports' => ['ws', 'wss'],
            'disableStats' => false,
        ], $service->getClientConfig());
    }

    public function testSchemeFollowsUseTlsAndHostAddsWebSocketSettings(): void
    {
        putenv('PUSHER_APP_ID=1');
        putenv('PUSHER_APP_KEY=k');
        putenv('PUSHER_APP_SECRET=s3cr3t-value');
        putenv('PUSHER_USE_TLS=false');
        putenv('PUSHER_HOST=soketi.local');
        putenv('PUSHER_PORT=6001');
        putenv('PUSHER_DISABLE_STATS=true');
        putenv('AMQP_URL=amqp://relay:hunter2@rabbit:5673/apps');
        putenv('AMQP_EXCHANGE=custom.intents');

        $service = new QueuedPusherService();

        $config = $service->getConfig();
        self::assertSame('http', $config['scheme']);
        self::assertSame(6001, $config['port']);
        self::assertSame('amqp://relay:***@rabbit:5673/apps', $config['amqp_url']);
        self::assertSame('custom.intents', $config['amqp_exchange']);
        self::assertStringNotContainsString('s3cr3t-value', json_encode($config));
        self::assertStringNotContainsString('hunter2', json_encode($config));
        self::assertSame([
            'key' => 'k',
            'cluster' => 'mt1',
            'forceTLS' => false,
            'enabledTransports' => ['ws', 'wss'],
            'disableStats' => true,
            'wsHost' => 'soketi.local',
            'wsPort' => 6001,
            'wssPort' => 6001,
        ], $service->getClientConfig());
    }

    public function testOverridesWinOverTheEnvironment(): void
    {
        putenv('AMQP_EXCHANGE=from-env');

        $service = ServiceFactory::make(['AMQP_EXCHANGE' => 'from-override']);

        self::assertSame('from-override', $service->getConfig()['amqp_exchange']);
    }

    public function testMissingCredentialsAndBadValuesMakeItNotReadyNamingTheVariable(): void
    {
        putenv('PUSHER_USE_TLS=maybe');

        $service = new QueuedPusherService();

        self::assertFalse($service->isReady());
        self::assertStringContainsString('PUSHER_APP_KEY is not set', $service->getLastError());
        self::assertStringContainsString('PUSHER_USE_TLS must be true or false', $service->getLastError());
        self::assertFalse($service->authenticateChannel('private-a', '1.1'));
        self::assertStringContainsString('PUSHER_APP_ID is not set', $service->getLastError());
    }

    public function testUnparsableAmqpUrlFailsInsteadOfGuessingABroker(): void
    {
        $service = ServiceFactory::make(['AMQP_URL' => 'http://not-amqp']);

        self::assertFalse($service->isReady());
        self::assertFalse($service->trigger('c', 'e'));
        self::assertStringContainsString('AMQP_URL', $service->getLastError());
    }
}
