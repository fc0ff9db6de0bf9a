/** Retries with exponential backoff and full jitter, up to a deadline, on an injected clock. */

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
  const base = options.baseMs ?? 250;
  const cap = options.capMs ?? 5_000;
  const start = clock.now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!options.retryable(error)) throw error;
      const left = options.deadlineMs - (clock.now() - start);
      if (left <= 0) throw error;
      const delay = Math.min(
        left,
        Math.floor(clock.random() * Math.min(cap, base * 2 ** (attempt - 1))),
      );
      options.onRetry?.(error, attempt, delay);
      await clock.sleep(delay);
    }
  }
}
