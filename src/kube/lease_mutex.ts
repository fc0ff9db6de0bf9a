/** A mutex over `coordination.k8s.io/v1` Leases: taken at a resourceVersion, renewed, released. */

import { backoffDelay } from "../lib/backoff.ts";
import { AppError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { KubeApiError, type KubeClient, KubeConflictError, type Lease } from "./client.ts";

/** A Lease's annotations. */
export type Annotations = Record<string, string>;

/** Options of {@link createLeaseMutex}. */
export interface LeaseMutexOptions {
  readonly kube: Pick<KubeClient, "getLease" | "createLease" | "replaceLease">;
  readonly namespace: string;
  /** This process, unique: a crashed holder's Lease expires rather than being mistaken for ours. */
  readonly identity: string;
  /** A holder that stops renewing loses the Lease after this long; default 15. */
  readonly leaseDurationSeconds?: number;
  /** What the Leases guard, in log lines: `cannot renew ${kind} lease`. */
  readonly kind: string;
  readonly logger: Logger;
  /** The clock by which Leases are renewed and judged expired. */
  readonly now?: () => number;
  /** Waits on that clock; it must end early once `signal` aborts. Defaults to a timer. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** How a Lease's annotations change as it is taken. */
export interface TakeOptions {
  /** The annotations of a Lease made anew. */
  readonly create?: Annotations;
  /** The annotations a Lease taken over keeps, from those it had; all of them when omitted. */
  readonly keep?: (annotations: Annotations) => Annotations;
}

/** A Lease just taken, and the annotations it had before (none when it was made anew). */
export interface Taken {
  readonly lease: Lease;
  readonly before: Annotations;
}

/** What work under a Lease returns: its value, and the annotations the Lease is released with. */
export interface Held<T> {
  readonly value: T;
  /** Makes the annotations from the Lease's latest copy. */
  readonly finish: (l: Lease) => Annotations;
}

/** A mutex per Lease name, shared with the other processes of the same namespace. */
export interface LeaseMutex {
  /**
   * One attempt: the Lease, ours now, or undefined while another process holds it (or took it, or
   * the API failed for a moment: a conflict, a 5xx, a timeout).
   */
  tryAcquire(name: string, options?: TakeOptions): Promise<Taken | undefined>;
  /** Attempts, backing off between them, until the Lease is ours or `deadline` has passed. */
  acquire(name: string, deadline: number, options?: TakeOptions): Promise<Taken | undefined>;
  /**
   * Holds `lease` while `work` runs: renews it every third of its duration, then releases it with
   * the annotations `work` says; when `work` throws, with those it had. `refresh` reads the Lease
   * again (its latest copy while it is still ours).
   */
  hold<T>(lease: Lease, work: (refresh: () => Promise<Lease>) => Promise<Held<T>>): Promise<T>;
  /** Gives `lease` up (a Lease taken with `tryAcquire` and not held with `hold`), keeping its annotations. */
  release(lease: Lease): Promise<void>;
  /** Whether another process holds `l` now. */
  heldByOther(l: Lease): boolean;
  /** The Lease, or undefined when it does not exist. */
  get(name: string): Promise<Lease | undefined>;
  /** Writes `annotations` on `l` at its resourceVersion: {@link KubeConflictError} if it moved. */
  annotate(l: Lease, annotations: Annotations): Promise<Lease>;
  /** Waits the `attempt`th pause of a retry: exponential, jittered, at most about 750 ms. */
  backOff(attempt: number): Promise<void>;
}

/** A conflict means another process got there first; a 5xx or a timeout may pass: look again. */
export function isTransient(e: unknown): boolean {
  return e instanceof KubeConflictError ||
    (e instanceof KubeApiError && e.status >= 500) ||
    (e instanceof AppError && e.code === "unavailable");
}

/** Creates the mutex of one process. */
export function createLeaseMutex(options: LeaseMutexOptions): LeaseMutex {
  const duration = options.leaseDurationSeconds ?? 15;
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? timerSleep;
  const { kube, namespace, identity, kind, logger } = options;

  // A Lease expires once its holder has not renewed it for its duration, judged on our clock.
  const heldByOther = (l: Lease, at = now()) =>
    l.holderIdentity !== undefined && l.holderIdentity !== identity &&
    l.renewTime !== undefined &&
    Date.parse(l.renewTime) + (l.leaseDurationSeconds ?? duration) * 1000 > at;

  const backOff = (attempt: number) => sleep(backoffDelay(attempt, { baseMs: 20, capMs: 500 }));

  async function tryAcquire(name: string, take: TakeOptions = {}) {
    const at = now();
    const mine = {
      holderIdentity: identity,
      leaseDurationSeconds: duration,
      acquireTime: microTime(at),
      renewTime: microTime(at),
    };
    try {
      const current = await kube.getLease(namespace, name);
      if (!current) {
        const lease = await kube.createLease(namespace, {
          name,
          ...(take.create ? { annotations: take.create } : {}),
          ...mine,
        });
        return { lease, before: {} };
      }
      if (heldByOther(current, at)) return undefined;
      const before = { ...current.annotations };
      const annotations = take.keep ? take.keep(before) : before;
      const lease = await kube.replaceLease(namespace, { ...current, ...mine, annotations });
      return { lease, before };
    } catch (e) {
      if (isTransient(e)) return undefined;
      throw e;
    }
  }

  /** Gives the Lease up, with the annotations `finish` makes of its latest copy. */
  async function release(lease: Lease, finish: (l: Lease) => Annotations) {
    let current = lease;
    for (let attempt = 0;; attempt++) {
      try {
        await kube.replaceLease(namespace, {
          ...current,
          annotations: finish(current),
          holderIdentity: undefined,
          acquireTime: undefined,
        });
        return;
      } catch (e) {
        // Another process wrote annotations meanwhile: merge into the newer copy.
        if (e instanceof KubeConflictError && attempt < 10) {
          const fresh = await kube.getLease(namespace, lease.name).catch(() => undefined);
          if (fresh?.holderIdentity === identity) {
            current = fresh;
            continue;
          }
        }
        // It expires on its own.
        logger.warn(`cannot release ${kind} lease`, { lease: lease.name, error: e });
        return;
      }
    }
  }

  return {
    tryAcquire,
    async acquire(name, deadline, take) {
      for (let attempt = 0;; attempt++) {
        const taken = await tryAcquire(name, take);
        if (taken) return taken;
        if (now() > deadline) return undefined;
        await backOff(attempt);
      }
    },
    async hold(lease, work) {
      const name = lease.name;
      let held = lease;
      const refresh = async () => {
        const fresh = await kube.getLease(namespace, name);
        if (fresh?.holderIdentity === identity) held = fresh;
        return held;
      };
      const renew = async () => {
        try {
          held = await kube.replaceLease(namespace, { ...held, renewTime: microTime(now()) });
        } catch (e) {
          if (e instanceof KubeConflictError) {
            await refresh().catch(() => {});
            return;
          }
          logger.warn(`cannot renew ${kind} lease`, { lease: name, error: e });
        }
      };
      const released = new AbortController();
      const stopped = new Promise<void>((resolve) =>
        released.signal.addEventListener("abort", () => resolve(), { once: true })
      );
      const renewing = (async () => {
        for (;;) {
          await Promise.race([sleep((duration * 1000) / 3, released.signal), stopped]);
          if (released.signal.aborted) return;
          await renew();
        }
      })();
      // On failure the Lease keeps what it had.
      let finish = (l: Lease): Annotations => ({ ...l.annotations });
      try {
        const result = await work(refresh);
        finish = result.finish;
        return result.value;
      } finally {
        released.abort();
        // A renewal in flight ends first, so that the release starts from the latest copy.
        await renewing;
        await release(held, finish);
      }
    },
    release: (lease) => release(lease, (l) => ({ ...l.annotations })),
    heldByOther: (l) => heldByOther(l),
    get: (name) => kube.getLease(namespace, name),
    annotate: (l, annotations) => kube.replaceLease(namespace, { ...l, annotations }),
    backOff,
  };
}

/** Waits `ms` on a timer, or less once `signal` aborts. */
function timerSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

// Kubernetes MicroTime: RFC 3339 with exactly six fractional digits.
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
