/**
 * Backoff, once for the whole program: an exponential step with one jitter rule, and retrying up
 * to a deadline, on an injected clock so that tests move time instead of sleeping.
 */

/** Time and randomness, passed in so tests move time instead of sleeping. */
export interface RetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
  random(): number;
}

/** The real clock. */
export const realClock: RetryClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
};

/** Where the step starts and where it stops growing. */
export interface Backoff {
  readonly baseMs: number;
  readonly capMs: number;
}

/**
 * The wait before retry number `attempt` (0 for the first): the step doubles from `baseMs` up to
 * `capMs`, and the wait is drawn from its upper half ("equal jitter"), so writers that collided
 * spread out while none retries at once.
 */
export function backoffDelay(
  attempt: number,
  backoff: Backoff,
  random: () => number = Math.random,
): number {
  const step = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return step * (0.5 + random() / 2);
}

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Give up once this many milliseconds have passed since the first attempt. */
  readonly deadlineMs: number;
  readonly baseMs?: number;
  readonly capMs?: number;
  /** Whether an error is worth another attempt; others are thrown at once. */
  readonly retryable: (error: unknown) => boolean;
  readonly clock?: RetryClock;
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Calls `fn` until it succeeds, a non-retryable error, or the deadline; throws the last error. */
export async function retry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const clock = options.clock ?? realClock;
  const backoff = { baseMs: options.baseMs ?? 250, capMs: options.capMs ?? 5_000 };
  const start = clock.now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!options.retryable(error)) throw error;
      const left = options.deadlineMs - (clock.now() - start);
      if (left <= 0) throw error;
      const delay = Math.min(left, Math.floor(backoffDelay(attempt - 1, backoff, clock.random)));
      options.onRetry?.(error, attempt, delay);
      await clock.sleep(delay);
    }
  }
}
