/**
 * Pusher's input rules and the wire contract's field types, checked before
 * anything is published. The worker applies the same rules
 * (src/config/pusher_rules.rs, src/intent/) and would dead-letter an intent
 * that breaks one; checking here turns that later, silent failure into an
 * InvalidIntent the calling code sees at once.
 */

import { InvalidIntent } from './errors.js';

/** Characters Pusher allows in a channel name. */
export const CHANNEL_PATTERN = /^[-a-zA-Z0-9_=@,.;]+$/;

/** Longest channel name Pusher accepts. */
export const MAX_CHANNEL_LENGTH = 164;

/** Most channels one event may go to. */
export const MAX_CHANNELS = 100;

/** Longest event name, in characters. */
export const MAX_EVENT_LENGTH = 200;

/** Pusher's limit on one event's data (PUSHER_MAX_EVENT_BYTES on the worker). */
export const DEFAULT_MAX_EVENT_BYTES = 10240;

/** The reserved prefix of Pusher's server-to-user channels, followed by a user id. */
const SERVER_TO_USER_PREFIX = '#server-to-user-';

/**
 * Strict on purpose: a socket id is signed into channel auth strings, and
 * laxer checks let crafted ids such as "1.1:" delegate auth.
 */
const SOCKET_ID_PATTERN = /^[0-9]+\.[0-9]+$/;

/** A short, printable description of a value's type for error messages. */
export function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isInteger(value)) return `the number ${value}`;
  return typeof value === 'object' ? 'an object' : `${typeof value}`;
}

/** Keeps error messages short when the bad value is huge. */
function excerpt(text) {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

/** @param {string} field @param {unknown} channel */
export function checkChannel(field, channel) {
  if (typeof channel !== 'string') {
    throw new InvalidIntent(field, `${field} must be a channel name (a string), got ${describe(channel)}`);
  }
  if (channel.length > MAX_CHANNEL_LENGTH) {
    throw new InvalidIntent(
      field,
      `${field} is ${channel.length} characters long; Pusher allows at most ${MAX_CHANNEL_LENGTH}`,
    );
  }
  const rest =
    channel.startsWith(SERVER_TO_USER_PREFIX) && channel.length > SERVER_TO_USER_PREFIX.length
      ? channel.slice(SERVER_TO_USER_PREFIX.length)
      : channel;
  if (!CHANNEL_PATTERN.test(rest)) {
    throw new InvalidIntent(
      field,
      `${field} "${excerpt(channel)}" is not a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ;)`,
    );
  }
}

/** @param {unknown} channels */
export function checkChannels(channels) {
  if (!Array.isArray(channels)) {
    throw new InvalidIntent('channels', `channels must be an array of channel names, got ${describe(channels)}`);
  }
  if (channels.length === 0) {
    throw new InvalidIntent('channels', 'channels must name at least one channel');
  }
  if (channels.length > MAX_CHANNELS) {
    throw new InvalidIntent(
      'channels',
      `channels has ${channels.length} entries; Pusher allows at most ${MAX_CHANNELS} per event`,
    );
  }
  channels.forEach((channel, i) => checkChannel(`channels[${i}]`, channel));
  // Its payload is encrypted with a key derived from that one channel's name.
  if (channels.length > 1 && channels.some((c) => c.startsWith('private-encrypted-'))) {
    throw new InvalidIntent('channels', 'a private-encrypted- channel must be the only channel of its event');
  }
}

/** @param {unknown} event */
export function checkEventName(event) {
  if (typeof event !== 'string' || event === '') {
    throw new InvalidIntent('event', `event must be a non-empty string, got ${describe(event)}`);
  }
  const length = [...event].length;
  if (length > MAX_EVENT_LENGTH) {
    throw new InvalidIntent('event', `event is ${length} characters long; Pusher allows at most ${MAX_EVENT_LENGTH}`);
  }
}

/** @param {unknown} socketId */
export function checkSocketId(socketId) {
  if (typeof socketId !== 'string' || !SOCKET_ID_PATTERN.test(socketId)) {
    throw new InvalidIntent('socket_id', 'socket_id must look like "123.456" (digits, a dot, digits)');
  }
}

/**
 * Identifiers (user_id, room_id, ...) are JSON strings or integers in the
 * wire contract. JavaScript numbers are exact only up to 2^53, so larger
 * ids must be passed as strings.
 *
 * @param {string} field @param {unknown} value
 */
export function checkIdentifier(field, value) {
  if (Number.isSafeInteger(value) || (typeof value === 'string' && value !== '')) return;
  throw new InvalidIntent(
    field,
    `${field} must be an integer or a non-empty string, got ${describe(value)}` +
      (Number.isInteger(value) ? ' beyond 2^53 (pass it as a string)' : ''),
  );
}

/** @param {string} field @param {unknown} value */
export function checkString(field, value) {
  if (typeof value !== 'string') {
    throw new InvalidIntent(field, `${field} must be a string, got ${describe(value)}`);
  }
}

/** @param {string} field @param {string} json @param {number} limit */
export function checkSize(field, json, limit) {
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > limit) {
    throw new InvalidIntent(field, `${field} is ${bytes} bytes as JSON; Pusher allows at most ${limit}`);
  }
}
