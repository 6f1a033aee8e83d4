<?php

declare(strict_types=1);

namespace App\Http;

/** What a route answers: a status, a body and its content type. */
final class Response
{
    private function __construct(
        public readonly int $status,
        public readonly string $body,
        public readonly string $contentType,
        public readonly ?string $location = null,
    ) {
    }

    /** @param array<string, mixed> $body */
    public static function json(int $status, array $body): self
    {
        return new self($status, json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), 'application/json');
    }

    /** An auth endpoint's answer is the JSON text pusher-js expects, already encoded. */
    public static function jsonText(string $json): self
    {
        return new self(200, $json, 'application/json');
    }

    /** A refusal with a reason the page (and pusher-js's subscription_error) can show. */
    public static function error(int $status, string $reason): self
    {
        return self::json($status, ['error' => $reason]);
    }

    public static function html(string $html, int $status = 200): self
    {
        return new self($status, $html, 'text/html; charset=utf-8');
    }

    /** 303 after a form POST, so a reload does not post it again. */
    public static function redirect(string $location): self
    {
        return new self(303, '', 'text/plain', $location);
    }

    public function send(): void
    {
        http_response_code($this->status);
        header('Content-Type: ' . $this->contentType);
        header('Cache-Control: no-store');
        if ($this->location !== null) {
            header('Location: ' . $this->location);
        }
        echo $this->body;
    }
}
