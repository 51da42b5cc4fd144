/** Durations in the operator's notation: `100ms`, `5s`, `1m30s`, `1h`. */

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

/**
 * Parses a duration into milliseconds, or returns an error message. A bare number means
 * seconds, as in traefik's configuration; a leading `-` makes it negative (for
 * `terminationDelay`, "wait forever").
 *
 * @example parseDuration("1m30s") // 90000
 */
export function parseDuration(text: string): number | string {
  const s = text.trim();
  const negative = s.startsWith("-");
  const body = negative ? s.slice(1) : s;
  if (/^\d+(\.\d+)?$/.test(body)) return (negative ? -1 : 1) * Number(body) * 1000;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < body.length) {
    const at = PART.lastIndex;
    const m = PART.exec(body);
    if (!m || m.index !== at) {
      return `invalid duration "${text}": use a number with a unit, like 100ms, 5s, 1m or 1h30m`;
    }
    ms += Number(m[1]) * UNITS[m[2]];
  }
  if (body.length === 0) return `invalid duration "${text}": it is empty`;
  return negative ? -ms : ms;
}

/** Formats milliseconds back into the shortest plain notation (`100ms`, `5s`, `2m`). */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** The longest delay a runtime timer holds (2^31 − 1 ms, about 24.8 days); longer fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const HOUR = 3_600_000;

/**
 * The range a duration may take, in ms: `min` to `max`, and, where `negative` says so, any
 * negative value, which stands for "never" or "off" (traefik's convention).
 */
export interface DurationRange {
  min: number;
  max: number;
  negative?: "never" | "off";
}

/** The range of each duration l4p reads, by the key's name. Every `max` fits in a timer. */
export const DURATION_RANGES = {
  keepAlive: { min: 0, max: 2 * HOUR, negative: "off" },
  helloTimeout: { min: 1, max: 10 * 60_000 },
  silenceTimeout: { min: 1, max: 10 * 60_000 },
  udpTimeout: { min: 1, max: 24 * HOUR },
  headerTimeout: { min: 1, max: 10 * 60_000 },
  healthInterval: { min: 10, max: 24 * HOUR },
  healthTimeout: { min: 1, max: HOUR },
  failureWindow: { min: 10, max: 24 * HOUR },
  dialTimeout: { min: 1, max: HOUR },
  terminationDelay: { min: 0, max: 24 * HOUR, negative: "never" },
  dialKeepAlive: { min: 0, max: 2 * HOUR, negative: "off" },
  ratePeriod: { min: 1, max: 24 * HOUR },
  hookTimeout: { min: 1, max: 10 * 60_000 },
  drainTimeout: { min: 0, max: 24 * HOUR },
  minDuration: { min: 0, max: 24 * HOUR },
  throttle: { min: 0, max: 10 * 60_000 },
  pollInterval: { min: 100, max: 24 * HOUR },
  pollTimeout: { min: 100, max: 10 * 60_000 },
} as const satisfies Record<string, DurationRange>;

/** Why `ms` is outside `range`, or undefined when it is inside. */
export function outOfRange(ms: number, range: DurationRange): string | undefined {
  if (ms < 0 && range.negative) return undefined;
  if (ms >= range.min && ms <= range.max && Number.isFinite(ms)) return undefined;
  const span = `${formatDuration(range.min)} to ${formatDuration(range.max)}`;
  return range.negative
    ? `must be from ${span}, or negative for ${range.negative}`
    : `must be from ${span}`;
}
