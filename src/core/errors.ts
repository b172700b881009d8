/** Longest message kept whole: a huge value echoed back (a hostile file's name or field) is cut to this. */
const MAX_MESSAGE = 2000;

/**
 * Base class of every error moekit throws on purpose. Messages read `[where] what, with values`, on one line:
 * control characters from the values (a tensor name holding a newline, say) are escaped, and an overlong one is cut.
 */
export class MoeError extends Error {
  override name = "MoeError";
  constructor(message = "", options?: ErrorOptions) {
    // eslint-disable-next-line no-control-regex
    const line = message.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    super(line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE)}... (${line.length - MAX_MESSAGE} more characters)` : line, options);
  }
}

export class ShapeError extends MoeError {
  override name = "ShapeError";
}

export class DTypeError extends MoeError {
  override name = "DTypeError";
}

export class UnsupportedError extends MoeError {
  override name = "UnsupportedError";
}

/** A bad config value or an impossible combination; names the key, the value and why. */
export class ConfigError extends MoeError {
  override name = "ConfigError";
  constructor(
    readonly key: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`[config] ${key}=${typeof value === "number" && !Number.isFinite(value) ? String(value) : JSON.stringify(value)}: ${why}`);
  }
}
