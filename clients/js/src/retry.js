// When to try again and how long to wait: exponential backoff with jitter, or exactly what the
// Node asked for in Retry-After (a 503 cycle_unavailable, a 429 from a proxy).

/** Statuses worth retrying: the Node (or a proxy in front of it) sends them before acting. */
export const RETRY_STATUSES = new Set([429, 502, 503, 504]);
export const MAX_DELAY_SECONDS = 60;

/** Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || value === '') return null;
  const text = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.min(Number(text), MAX_DELAY_SECONDS);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.min(Math.max((date - now) / 1000, 0), MAX_DELAY_SECONDS);
}

/** Seconds before attempt `attempt` (0-based count of failures so far): backoff * 2^attempt,
 *  with +-25% jitter so a crowd of devices does not retry in lockstep. */
export function backoffDelay(attempt, backoff, random = Math.random) {
  const base = Math.min(backoff * 2 ** attempt, MAX_DELAY_SECONDS);
  return base * (0.75 + 0.5 * random());
}

export const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
