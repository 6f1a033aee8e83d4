// Types for pusher-relay-producer; the behaviour is documented in the
// JSDoc of the .js files beside this one and in ../README.md.

/** An identifier of the wire contract: an integer (safe in JavaScript) or a non-empty string. */
export type Id = number | string;

/** Common optional fields of every intent. */
export interface CommonOptions {
  /** Exclude this connection from the event ("123.456"). */
  socketId?: string;
  /** The intent id; default a random UUID. Reuse one to make a retry idempotent. */
  id?: string;
}

/** An intent body as published (wire contract v1); unknown fields are allowed. */
export interface Intent {
  type: IntentType;
  id?: string | null;
  socket_id?: string | null;
  created_at?: number | null;
  [field: string]: unknown;
}

export type IntentType =
  | 'notification'
  | 'announcement'
  | 'chat.message'
  | 'chat.joined'
  | 'chat.left'
  | 'order.status'
  | 'dashboard.metrics'
  | 'inventory.stock'
  | 'presence.activity'
  | 'event';

export declare const INTENT_TYPES: IntentType[];
export declare const ORDERING_KEY_HEADER: 'ordering-key';
export declare const DEFAULT_AMQP_URL: string;
export declare const DEFAULT_EXCHANGE: string;
export declare const DEFAULT_AMQP_TIMEOUT: number;
export declare const DEFAULT_MAX_EVENT_BYTES: number;

export declare class InvalidIntent extends Error {
  name: 'InvalidIntent';
  /** The field at fault, e.g. "user_id" or "channels[2]". */
  field: string;
}

export declare class ConfigError extends Error {
  name: 'ConfigError';
  /** The variable or option at fault, e.g. "AMQP_URL". */
  variable: string;
}

export declare class PublishFailed extends Error {
  name: 'PublishFailed';
  reason: 'unreachable' | 'refused' | 'returned' | 'nacked' | 'timeout';
  intentId?: string;
}

export declare class ChannelTemplates {
  readonly templates: Readonly<Record<string, string>>;
  static private(): ChannelTemplates;
  static legacy(): ChannelTemplates;
  static fromEnv(env: Record<string, string | undefined>): ChannelTemplates;
  channels(intent: Record<string, unknown>): string[] | null;
  orderingKey(intent: Record<string, unknown>): string | null;
}

export interface AmqpNode {
  url: string;
  redacted: string;
}

export interface PublisherSettings {
  nodes: AmqpNode[];
  exchange: string;
  timeoutMs: number;
  templates: ChannelTemplates;
  maxEventBytes: number;
}

export declare function parseAmqpUrls(value: string, variable?: string): AmqpNode[];
export declare function settingsFromEnv(env?: Record<string, string | undefined>): PublisherSettings;
export declare function checkIntent(intent: Record<string, unknown>, limits?: { maxEventBytes?: number }): void;

export declare namespace intents {
  function notification(userId: Id, message: string, options?: CommonOptions & { level?: string }): Intent;
  function announcement(message: string, options?: CommonOptions & { priority?: string }): Intent;
  function chatMessage(roomId: Id, userId: Id, userName: string, message: string, options?: CommonOptions): Intent;
  function chatJoined(roomId: Id, userId: Id, userName: string, options?: CommonOptions): Intent;
  function chatLeft(roomId: Id, userId: Id, userName: string, options?: CommonOptions): Intent;
  function orderStatus(orderId: Id, status: string, options?: CommonOptions & { customerId?: Id | null }): Intent;
  function dashboardMetrics(metrics: Record<string, unknown>, options?: CommonOptions): Intent;
  function inventoryStock(productId: Id, quantity: number, options?: CommonOptions): Intent;
  function presenceActivity(userId: Id, activity: string, options?: CommonOptions): Intent;
  function event(channels: string[], name: string, data: unknown, options?: CommonOptions & { info?: string }): Intent;
  function checkIntent(intent: Record<string, unknown>, limits?: { maxEventBytes?: number }): void;
}

export declare class IntentPublisher {
  constructor(options?: Partial<PublisherSettings> & { appId?: string });
  static fromEnv(env?: Record<string, string | undefined>, options?: { appId?: string }): IntentPublisher;
  readonly settings: Readonly<PublisherSettings & { appId?: string }>;
  /** Resolves with the intent id once the broker confirmed it. */
  publish(intent: Intent): Promise<string>;
  notifyUser(userId: Id, message: string, options?: CommonOptions & { level?: string }): Promise<string>;
  announce(message: string, options?: CommonOptions & { priority?: string }): Promise<string>;
  postChatMessage(roomId: Id, userId: Id, userName: string, message: string, options?: CommonOptions): Promise<string>;
  userJoinedRoom(roomId: Id, userId: Id, userName: string, options?: CommonOptions): Promise<string>;
  userLeftRoom(roomId: Id, userId: Id, userName: string, options?: CommonOptions): Promise<string>;
  updateOrderStatus(orderId: Id, status: string, options?: CommonOptions & { customerId?: Id | null }): Promise<string>;
  updateDashboardMetrics(metrics: Record<string, unknown>, options?: CommonOptions): Promise<string>;
  updateInventory(productId: Id, quantity: number, options?: CommonOptions): Promise<string>;
  broadcastUserActivity(userId: Id, activity: string, options?: CommonOptions): Promise<string>;
  trigger(channel: string, event: string, data: unknown, options?: CommonOptions & { info?: string }): Promise<string>;
  triggerBatch(channels: string[], event: string, data: unknown, options?: CommonOptions & { info?: string }): Promise<string>;
  close(): Promise<void>;
}
