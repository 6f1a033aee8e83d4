<?php

declare(strict_types=1);

namespace PusherRelay;

/**
 * The few Pusher REST calls that must stay synchronous because the app
 * needs their answer now (channel queries). Signed GETs over curl; no
 * retries, since the caller is a web request waiting on the result.
 */
final class PusherApi
{
    /** Sent as X-Pusher-Library so Pusher can tell this client from the SDKs. */
    private const LIBRARY = 'pusher-relay-php 1.0';

    /** How much of an error body to keep in getLastError(). */
    private const ERROR_EXCERPT_BYTES = 300;

    public function __construct(private readonly Config $config)
    {
    }

    /**
     * GET /apps/{app_id}{$path} and decode the JSON answer.
     *
     * @param array<string, scalar> $params query parameters (signed unescaped, sent escaped)
     * @return array<string, mixed>
     * @throws PusherApiError
     */
    public function get(string $path, array $params): array
    {
        $fullPath = '/apps/' . $this->config->appId . $path;
        $query = Signer::sign($this->config->key, $this->config->secret, 'GET', $fullPath, $params, time());
        $url = $this->config->apiBaseUrl() . $fullPath . '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986);

        $curl = curl_init($url);
        curl_setopt_array($curl, [
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => ['Accept: application/json', 'X-Pusher-Library: ' . self::LIBRARY],
            CURLOPT_TIMEOUT_MS => (int) ($this->config->httpTimeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) ($this->config->httpTimeout * 1000),
            CURLOPT_SSL_VERIFYPEER => $this->config->verifySsl,
            CURLOPT_SSL_VERIFYHOST => $this->config->verifySsl ? 2 : 0,
        ]);
        $body = curl_exec($curl);
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        $transportError = curl_error($curl);
        curl_close($curl);

        if ($body === false) {
            throw new PusherApiError(sprintf('Pusher API request GET %s failed: %s', $fullPath, $transportError));
        }
        if ($status < 200 || $status >= 300) {
            throw new PusherApiError(sprintf(
                'Pusher API answered HTTP %d to GET %s: %s',
                $status,
                $fullPath,
                substr(trim((string) $body), 0, self::ERROR_EXCERPT_BYTES)
            ));
        }
        $decoded = json_decode((string) $body, true);
        if (!is_array($decoded)) {
            throw new PusherApiError(sprintf('Pusher API answered GET %s with something that is not a JSON object', $fullPath));
        }

        return $decoded;
    }
}
