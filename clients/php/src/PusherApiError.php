<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * A synchronous REST call to Pusher failed (transport error or non-2xx).
 * Internal: the service turns it into `false` plus getLastError().
 */
final class PusherApiError extends \RuntimeException
{
}
