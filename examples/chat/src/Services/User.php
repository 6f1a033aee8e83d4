<?php

declare(strict_types=1);

namespace App\Services;

/** The signed-in user, shaped like the seed's user model (getId, getName). */
final class User
{
    public function __construct(private readonly string $id, private readonly string $name)
    {
    }

    /** Lower-case letters, digits and dashes: it is part of channel names (private-user-{id}). */
    public function getId(): string
    {
        return $this->id;
    }

    public function getName(): string
    {
        return $this->name;
    }
}
