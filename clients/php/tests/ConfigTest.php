<?php

declare(strict_types=1);

namespace PusherRelay\Tests;

use PHPUnit\Framework\TestCase;
use PusherRelay\Config;
use PusherRelay\QueuedPusherService;
use PusherRelay\Tests\Support\ServiceFactory;

/** Settings come from the environment with the seed's names and defaults. */
final class ConfigTest extends TestCase
{
    private const VARIABLES = [
        'PUSHER_APP_ID', 'PUSHER_APP_KEY', 'PUSHER_APP_SECRET', 'PUSHER_APP_CLUSTER', 'PUSHER_USE_TLS',
        'PUSHER_HOST', 'PUSHER_PORT', 'PUSHER_SCHEME', 'PUSHER_VERIFY_SSL', 'PUSHER_DISABLE_STATS',
        'AMQP_URL', 'AMQP_EXCHANGE', 'RELAY_CHANNEL_STYLE', 'RELAY_CHANNEL_NOTIFICATION', 'RELAY_CHANNEL_ANNOUNCEMENT',
        'RELAY_CHANNEL_CHAT', 'RELAY_CHANNEL_ORDER', 'RELAY_CHANNEL_CUSTOMER', 'RELAY_CHANNEL_DASHBOARD',
        'RELAY_CHANNEL_INVENTORY', 'RELAY_CHANNEL_PRESENCE_ACTIVITY',
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

    public function testAmqpUrlListsSeveralNodesEachShownRedacted(): void
    {
        // Blanks around entries and an empty entry (a trailing comma) are ignored, as the worker does.
        $list = ['AMQP_URL' => 'amqp://relay:pw-one@rabbit-1:5672/apps, amqp://relay:pw-two@rabbit-2/apps,amqp://relay@rabbit-3:5673/%2f,'];

        $service = ServiceFactory::make($list);

        self::assertTrue($service->isReady(), $service->getLastError());
        $config = Config::fromEnvironment(ServiceFactory::settings($list));
        self::assertSame(['rabbit-1', 'rabbit-2', 'rabbit-3'], array_map(static fn ($n) => $n->host, $config->amqpNodes));
        self::assertSame([5672, 5672, 5673], array_map(static fn ($n) => $n->port, $config->amqpNodes));
        self::assertSame(['pw-one', 'pw-two', 'guest'], array_map(static fn ($n) => $n->password, $config->amqpNodes));
        self::assertSame(
            'amqp://relay:***@rabbit-1:5672/apps,amqp://relay:***@rabbit-2:5672/apps,amqp://relay:***@rabbit-3:5673/%2F',
            $service->getConfig()['amqp_url']
        );
        self::assertStringNotContainsString('pw-', json_encode($service->getConfig()));
    }

    public function testBadAmqpUrlEntriesAreNamedByNumberNeverShowingAPassword(): void
    {
        $service = ServiceFactory::make([
            'AMQP_URL' => 'amqp://u:fine-secret@a/%2f,http://u:leak-one@b/,amqp://u:leak-two@b:notaport/%2f',
        ]);

        self::assertFalse($service->isReady());
        $error = $service->getLastError();
        self::assertStringContainsString('AMQP_URL entry 2 of 3 must look like amqp://user:password@host:5672/vhost', $error);
        self::assertStringContainsString('AMQP_URL entry 3 of 3 must look like', $error);
        self::assertStringNotContainsString('entry 1', $error);
        self::assertNull($service->getConfig()['amqp_url'], 'no node is used when one entry is bad');
        self::assertFalse($service->trigger('c', 'e'));
        self::assertStringContainsString('AMQP_URL entry 2 of 3', $service->getLastError());
        foreach (['fine-secret', 'leak-one', 'leak-two'] as $password) {
            self::assertStringNotContainsString($password, $error);
            self::assertStringNotContainsString($password, $service->getLastError());
            self::assertStringNotContainsString($password, json_encode($service->getConfig()));
        }
    }

    public function testAmqpUrlNodesMustShareOneSchemeAndTheListMustNameOne(): void
    {
        $mixed = ServiceFactory::make(['AMQP_URL' => 'amqps://u:p@a/%2f,amqp://u:p@b/%2f']);
        self::assertFalse($mixed->isReady());
        self::assertStringContainsString('AMQP_URL entry 2 uses amqp:// but entry 1 uses amqps://', $mixed->getLastError());

        $empty = ServiceFactory::make(['AMQP_URL' => ' , ']);
        self::assertFalse($empty->isReady());
        self::assertStringContainsString('AMQP_URL must look like amqp://user:password@host:5672/vhost', $empty->getLastError());
    }

    public function testAmqpsUrlsTakeRabbitmqsTlsParametersAndABadOneIsNamed(): void
    {
        $node = \PusherRelay\AmqpTarget::fromUrl(
            'amqps://u:p@mq.example/%2f?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&server_name_indication=rabbit.internal'
        );
        self::assertNotNull($node);
        self::assertSame([
            'verify_peer' => true,
            'verify_peer_name' => true,
            'cafile' => '/ca.pem',
            'local_cert' => '/c.pem',
            'local_pk' => '/k.pem',
            'peer_name' => 'rabbit.internal',
        ], $node->sslOptions);
        $none = \PusherRelay\AmqpTarget::fromUrl('amqps://u:p@mq/%2f?verify=verify_none&server_name_indication=disable');
        self::assertSame(['verify_peer' => false, 'verify_peer_name' => false, 'SNI_enabled' => false], $none?->sslOptions);

        $bad = ServiceFactory::make(['AMQP_URL' => 'amqps://u:s3cret@mq/%2f?verify=yes']);
        self::assertFalse($bad->isReady());
        self::assertStringContainsString('AMQP_URL: verify="yes" is not one of verify_peer, verify_none', $bad->getLastError());
        self::assertStringNotContainsString('s3cret', $bad->getLastError());
        $half = ServiceFactory::make(['AMQP_URL' => 'amqps://u:p@mq/%2f?certfile=/c.pem']);
        self::assertStringContainsString('certfile is set without keyfile', $half->getLastError());
    }

    public function testChannelTemplateSettingsAreCheckedLikeTheWorkers(): void
    {
        $service = ServiceFactory::make([
            'RELAY_CHANNEL_STYLE' => 'public',
            'RELAY_CHANNEL_ORDER' => 'order-{user_id}',
            'RELAY_CHANNEL_CHAT' => 'chat room {room_id}',
            'RELAY_CHANNEL_DASHBOARD' => 'dash-{',
            'RELAY_CHANNEL_INVENTORY' => 'stock-{product_id}',
        ]);

        self::assertFalse($service->isReady());
        $error = $service->getLastError();
        self::assertStringContainsString('RELAY_CHANNEL_STYLE must be private (private-user-{id}, ...) or legacy', $error);
        self::assertStringContainsString('RELAY_CHANNEL_ORDER "order-{user_id}" uses unknown placeholder {user_id} (allowed: {order_id})', $error);
        self::assertStringContainsString('RELAY_CHANNEL_CHAT "chat room {room_id}" does not render a valid channel name', $error);
        self::assertStringContainsString('RELAY_CHANNEL_DASHBOARD "dash-{" has a "{" or "}" without its pair', $error);
        self::assertStringNotContainsString('RELAY_CHANNEL_INVENTORY', $error);

        // A bad setting keeps its default; a good one applies.
        $channels = Config::fromEnvironment(ServiceFactory::settings([
            'RELAY_CHANNEL_ORDER' => 'order-{user_id}',
            'RELAY_CHANNEL_INVENTORY' => 'stock-{product_id}',
        ]))->channels;
        self::assertSame('private-order-7', $channels->orderingKey(['type' => 'order.status', 'order_id' => 7]));
        self::assertSame('stock-7', $channels->orderingKey(['type' => 'inventory.stock', 'product_id' => 7]));
    }
}
