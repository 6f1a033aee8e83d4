<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

/**
 * The shared ordering-key fixture (tests/data/ordering-keys.json at the
 * repository root): intents as this client publishes them, each with the
 * ordering key the worker computes for it (tests/offline/ordering_keys.rs checks
 * the worker's side of the same file).
 */
final class OrderingKeys
{
    public const FILE = __DIR__ . '/../../../../tests/data/ordering-keys.json';

    /**
     * The fixture as a PHPUnit data provider, one case per entry.
     *
     * @return array<string, array{array<string, mixed>, string}> name => [intent, key]
     */
    public static function provider(): array
    {
        if (!is_file(self::FILE)) {
            throw new \RuntimeException('ordering-keys.json not found at ' . self::FILE);
        }
        $entries = json_decode((string) file_get_contents(self::FILE), true, 512, JSON_THROW_ON_ERROR);
        $cases = [];
        foreach ($entries as $i => $entry) {
            $cases[sprintf('#%02d %s -> %s', $i, $entry['intent']['type'], $entry['key'])] = [$entry['intent'], $entry['key']];
        }

        return $cases;
    }
}
