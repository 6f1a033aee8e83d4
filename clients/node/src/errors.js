/**
 * The three ways a publish can fail, each its own class so callers can
 * tell "fix the input" from "fix the setup" from "the broker did not take it".
 * Messages name the field or variable at fault and never hold a password.
 */

/** An intent the worker would refuse (dead-letter); nothing was sent. */
export class InvalidIntent extends Error {
  /**
   * @param {string} field the field at fault, e.g. "user_id" or "channels[2]"
   * @param {string} message a sentence naming the field and what was expected
   */
  constructor(field, message) {
    super(message);
    this.name = 'InvalidIntent';
    /** The field at fault, for code that reports it to its own caller. */
    this.field = field;
  }
}

/** A setting (environment variable or constructor option) that cannot be used. */
export class ConfigError extends Error {
  /**
   * @param {string} variable the variable or option at fault, e.g. "AMQP_URL"
   * @param {string} message a sentence naming it and what was expected
   */
  constructor(variable, message) {
    super(message);
    this.name = 'ConfigError';
    /** The variable or option at fault. */
    this.variable = variable;
  }
}

/**
 * The broker did not confirm the intent: unreachable, refused it (e.g. no
 * such exchange), returned it as unroutable (no queue bound), nacked it, or
 * did not answer within the timeout. The intent may be published again with
 * the same id; the worker drops a duplicate it already delivered.
 */
export class PublishFailed extends Error {
  /**
   * @param {'unreachable' | 'refused' | 'returned' | 'nacked' | 'timeout'} reason
   * @param {string} message
   * @param {{ intentId?: string, cause?: unknown }} [details]
   */
  constructor(reason, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PublishFailed';
    /** Why, as one word a caller can switch on. */
    this.reason = reason;
    /** The id of the intent that was not published, when there was one. */
    this.intentId = details.intentId;
  }
}
