<?php

declare(strict_types=1);

namespace PusherRelay\Tests\Support;

/**
 * The official SDK test vectors (shared/pusher-vectors.json), read from the
 * shared folder next to the repository or from the worker's test data.
 */
final class Vectors
{
    /** @return list<array<string, mixed>> vectors of one kind */
    public static function ofKind(string $kind): array
    {
        $root = dirname(__DIR__, 2);
        $candidates = [$root . '/../../../shared/pusher-vectors.json', $root . '/../../tests/data/pusher-vectors.json'];
        foreach ($candidates as $file) {
            if (is_file($file)) {
                $all = json_decode((string) file_get_contents($file), true, 512, JSON_THROW_ON_ERROR);
                return array_values(array_filter($all, static fn (array $v): bool => $v['kind'] === $kind));
            }
        }
        throw new \RuntimeException('pusher-vectors.json not found in ' . implode(' or ', $candidates));
    }

    /**
     * Vectors as a PHPUnit data provider, named by source.
     *
     * @return array<string, array{array<string, mixed>}>
     */
    public static function provider(string $kind): array
    {
        $cases = [];
        foreach (self::ofKind($kind) as $i => $vector) {
            $cases[sprintf('#%d %s', $i, substr($vector['source'], 0, 90))] = [$vector];
        }
        return $cases;
    }
}
