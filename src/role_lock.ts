/**
 * Per-role locks for trust-policy edits. IAM has no compare-and-swap, so two writers that read,
 * edit and write one role at once lose an edit: in one process a queue prevents it; across
 * replicas a `coordination.k8s.io/v1` Lease per role does. The lock also carries the version of the
 * policy its last holder saw, so a cached policy can be trusted without asking IAM.
 */

import { AppError } from "./errors.ts";
import { KubeApiError, type KubeClient, KubeConflictError, type Lease } from "./kube/client.ts";
import type { Logger } from "./log.ts";

/** What a holder of the lock returns: its result, and the policy version to record for others. */
export interface LockedResult<T> {
  readonly value: T;
  readonly version?: string;
}

/** A lock per role. */
export interface RoleLock {
  /** Runs `work` holding the role's lock; `work` gets the version the last holder recorded. */
  withLock<T>(
    roleArn: string,
    work: (version: string | undefined) => Promise<LockedResult<T>>,
  ): Promise<T>;
  /** The version the last holder recorded, read without taking the lock. */
  currentVersion(roleArn: string): Promise<string | undefined>;
}

/** One process alone edits the roles: a queue per role, versions kept in memory. */
export function createLocalRoleLock(): RoleLock {
  const tails = new Map<string, Promise<unknown>>();
  const versions = new Map<string, string>();
  return {
    withLock(roleArn, work) {
      const run = (tails.get(roleArn) ?? Promise.resolve()).then(async () => {
        const { value, version } = await work(versions.get(roleArn));
        if (version !== undefined) versions.set(roleArn, version);
        return value;
      });
      const tail = run.catch(() => {});
      tails.set(roleArn, tail);
      // Forget a role once its queue drains, so the map does not grow with every role ever seen.
      tail.then(() => tails.get(roleArn) === tail && tails.delete(roleArn));
      return run;
    },
    currentVersion: (roleArn) => Promise.resolve(versions.get(roleArn)),
  };
}

/** The annotation on a role's Lease that records the policy version its last holder saw. */
export const VERSION_ANNOTATION = "irsa.dominodatalab.com/policy-version";
/** The annotation that names the role a Lease guards, for people reading `kubectl get lease`. */
export const ROLE_ANNOTATION = "irsa.dominodatalab.com/role-arn";

/** Options of {@link createLeaseRoleLock}. */
export interface LeaseLockOptions {
  readonly kube: Pick<KubeClient, "getLease" | "createLease" | "replaceLease">;
  readonly namespace: string;
  /** This replica, unique: a crashed holder's Lease expires rather than being mistaken for ours. */
  readonly identity: string;
  /** A holder that stops renewing loses the Lease after this long. */
  readonly leaseDurationSeconds?: number;
  /** How long to wait for a Lease another replica holds. */
  readonly acquireTimeoutMs?: number;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Replicas coordinate through one Lease per role, taken and renewed through `resourceVersion`. */
export function createLeaseRoleLock(options: LeaseLockOptions): RoleLock {
  const local = createLocalRoleLock();
  const duration = options.leaseDurationSeconds ?? 15;
  const acquireTimeout = options.acquireTimeoutMs ?? 30_000;
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const { kube, namespace } = options;

  const heldByOther = (l: Lease, at: number) =>
    l.holderIdentity !== undefined && l.holderIdentity !== options.identity &&
    l.renewTime !== undefined &&
    Date.parse(l.renewTime) + (l.leaseDurationSeconds ?? duration) * 1000 > at;

  async function acquire(name: string, roleArn: string): Promise<Lease> {
    const deadline = now() + acquireTimeout;
    for (let attempt = 0;; attempt++) {
      const at = now();
      const mine = {
        holderIdentity: options.identity,
        leaseDurationSeconds: duration,
        acquireTime: microTime(at),
        renewTime: microTime(at),
      };
      try {
        const current = await kube.getLease(namespace, name);
        if (!current) {
          return await kube.createLease(namespace, {
            name,
            annotations: { [ROLE_ANNOTATION]: roleArn },
            ...mine,
          });
        }
        if (!heldByOther(current, at)) {
          return await kube.replaceLease(namespace, { ...current, ...mine });
        }
      } catch (e) {
        // A conflict means another replica got there first; a 5xx or a timeout may pass: look again.
        const transient = e instanceof KubeConflictError ||
          (e instanceof KubeApiError && e.status >= 500) ||
          (e instanceof AppError && e.code === "unavailable");
        if (!transient || now() > deadline) throw e;
      }
      if (now() > deadline) {
        throw new AppError(
          "unavailable",
          `Cannot lock role ${JSON.stringify(roleArn)}: Lease ${
            JSON.stringify(name)
          } stayed held by another replica`,
        );
      }
      await sleep(Math.min(500, 20 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()));
    }
  }

  return {
    withLock(roleArn, work) {
      // One holder per process at a time; the Lease orders the processes.
      return local.withLock(roleArn, async () => {
        const name = leaseName(roleArn);
        let held = await acquire(name, roleArn);
        const renew = setInterval(async () => {
          try {
            held = await kube.replaceLease(namespace, { ...held, renewTime: microTime(now()) });
          } catch (e) {
            options.logger.warn("cannot renew role lease", { lease: name, error: e });
          }
        }, (duration * 1000) / 3);
        let version = held.annotations?.[VERSION_ANNOTATION];
        try {
          const result = await work(version);
          version = result.version ?? version;
          return { value: result.value };
        } finally {
          clearInterval(renew);
          const annotations = {
            ...held.annotations,
            ...(version ? { [VERSION_ANNOTATION]: version } : {}),
          };
          try {
            await kube.replaceLease(namespace, {
              ...held,
              annotations,
              holderIdentity: undefined,
              acquireTime: undefined,
            });
          } catch (e) {
            // It expires on its own; the next holder reads IAM since the version was not recorded.
            options.logger.warn("cannot release role lease", { lease: name, error: e });
          }
        }
      });
    },
    async currentVersion(roleArn) {
      return (await kube.getLease(namespace, leaseName(roleArn)))?.annotations
        ?.[VERSION_ANNOTATION];
    },
  };
}

/** The Lease of a role: a readable prefix of its name and a hash of the ARN, a valid object name. */
export function leaseName(roleArn: string): string {
  const name = roleArn.slice(roleArn.lastIndexOf("/") + 1).toLowerCase().replace(/[^a-z0-9-]/g, "-")
    .slice(0, 40)
    .replace(/^-+|-+$/g, "");
  let h = 0x811c9dc5;
  for (let i = 0; i < roleArn.length; i++) {
    h = Math.imul(h ^ roleArn.charCodeAt(i), 0x01000193) >>> 0;
  }
  return `irsa-role-${name ? `${name}-` : ""}${h.toString(16).padStart(8, "0")}`;
}

// Kubernetes MicroTime: RFC 3339 with exactly six fractional digits.
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
