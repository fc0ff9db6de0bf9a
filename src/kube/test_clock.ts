/** A clock for tests of code that takes `now` and `sleep`: time moves only when a test moves it. */

/** The clock, and the handles a test moves it by. */
export interface TestClock {
  readonly now: () => number;
  /** Ends once the clock has moved `ms` on, or at once when `signal` aborts. */
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Moves time on by `ms`, waking every sleeper due by then, earliest first. */
  advance(ms: number): void;
  /**
   * Settles `p`, moving time on by `stepMs` at each turn of the event loop until then: code that
   * sleeps on this clock while it waits on real I/O (an API server) goes on as if time flew.
   * Throws once `limitMs` of the clock have passed without `p` settling (default two minutes).
   */
  run<T>(p: Promise<T>, stepMs?: number, limitMs?: number): Promise<T>;
}

interface Sleeper {
  readonly due: number;
  readonly wake: () => void;
}

/** A clock that starts at `start` (now, by default) and stands still until moved. */
export function createTestClock(start = Date.now()): TestClock {
  let time = start;
  const sleepers = new Set<Sleeper>();
  const wakeDue = () => {
    const due = [...sleepers].filter((s) => s.due <= time).sort((a, b) => a.due - b.due);
    for (const s of due) {
      sleepers.delete(s);
      s.wake();
    }
  };
  const clock: TestClock = {
    now: () => time,
    sleep: (ms, signal) =>
      new Promise((resolve) => {
        if (ms <= 0 || signal?.aborted) return resolve();
        const abort = () => {
          sleepers.delete(sleeper);
          resolve();
        };
        const sleeper = {
          due: time + ms,
          wake: () => {
            signal?.removeEventListener("abort", abort);
            resolve();
          },
        };
        signal?.addEventListener("abort", abort, { once: true });
        sleepers.add(sleeper);
      }),
    advance(ms) {
      time += ms;
      wakeDue();
    },
    async run(p, stepMs = 5, limitMs = 120_000) {
      const limit = time + limitMs;
      let settled = false;
      p.then(() => settled = true, () => settled = true);
      while (!settled) {
        // A real turn of the event loop, so that I/O in flight gets on.
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (settled) break;
        if (time >= limit) throw new Error(`Not settled within ${limitMs} ms of the test clock`);
        clock.advance(stepMs);
      }
      return await p;
    },
  };
  return clock;
}
