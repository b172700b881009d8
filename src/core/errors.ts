/** Base class of every error moekit throws on purpose. Messages read `[where] what, with values`. */
export class MoeError extends Error {
  override name = "MoeError";
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
    super(`[config] ${key}=${JSON.stringify(value)}: ${why}`);
  }
}
