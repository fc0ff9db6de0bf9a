import assert from "node:assert/strict";
import fc from "fast-check";
import { backoffDelay, retry, type RetryClock } from "./backoff.ts";

const BACKOFF = { baseMs: 25, capMs: 1_000 };

Deno.test("backoff: the step doubles up to its cap, the wait in the step's upper half", () => {
  assert.deepEqual([0, 1, 2, 3].map((n) => backoffDelay(n, BACKOFF, () => 0)), [
    12.5,
    25,
    50,
    100,
  ]);
  assert.equal(backoffDelay(40, BACKOFF, () => 0.999_999), 1_000 * (0.5 + 0.999_999 / 2));
  fc.assert(
    fc.property(
      fc.nat(100),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (n, r) => {
        const step = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** Math.min(n, 30));
        const wait = backoffDelay(n, BACKOFF, () => r);
        return wait >= step / 2 && wait <= step;
      },
    ),
  );
});

Deno.test("retry: retries what is retryable until the deadline, sleeping on the clock it is given", async () => {
  let now = 0;
  const slept: number[] = [];
  const clock: RetryClock = {
    now: () => now,
    sleep: (ms) => (slept.push(ms), now += ms, Promise.resolve()),
    random: () => 0,
  };
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new Error(`failure ${++calls}`)), {
      deadlineMs: 1_000,
      retryable: () => true,
      clock,
    }),
    /failure 5/,
  );
  assert.deepEqual(slept, [125, 250, 500, 125]);
  await assert.rejects(
    retry(() => Promise.reject(new TypeError("bad")), {
      deadlineMs: 1_000,
      retryable: () => false,
    }),
    TypeError,
  );
});
