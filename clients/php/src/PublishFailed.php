<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * An intent did not reach a queue: broker unreachable, refused, nacked or
 * returned it. Internal: QueuedPusherService turns it into `false` plus
 * getLastError(), because the seed's trigger never threw.
 */
final class PublishFailed extends \RuntimeException
{
}
