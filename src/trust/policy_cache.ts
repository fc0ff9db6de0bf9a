/** The trust editor's cache: each role's policy as last read or written, its version and size. */

import type { RolePolicyStore } from "../aws/iam.ts";
import { parseRoleArn } from "../core/arn.ts";
import { subjectsOf, type TrustPolicyOptions } from "../core/trust_policy.ts";

/** What the editor knows of a role's policy right now. */
export interface RoleCapacity {
  readonly roleArn: string;
  readonly subjects: number;
  readonly length: number;
  readonly quota: number;
}

/** A role's policy as last read or written. */
export interface CachedPolicy {
  readonly document: string;
  /** A digest of the document: what the role's lock records, to say no one wrote since. */
  readonly version: string;
  /** When it was read or written, on the cache's clock. */
  readonly at: number;
  readonly subjects: ReadonlySet<string>;
  readonly size: RoleCapacity;
}

/** Dependencies of {@link createPolicyCache}. */
export interface PolicyCacheDeps {
  readonly roles: RolePolicyStore;
  /** How to read a role's policy: its OIDC provider, audience, subject format and quota. */
  readonly optionsFor: (roleArn: string) => TrustPolicyOptions;
  /** A cached policy older than this is read again (out-of-band edits). */
  readonly maxAgeMs: number;
  readonly now: () => number;
}

/** The cache of every role the editor has seen. */
export interface PolicyCache {
  /** The cached policy of a role, however old. */
  peek(roleArn: string): CachedPolicy | undefined;
  /** The cached policy of a role while it is younger than the longest age. */
  fresh(roleArn: string): CachedPolicy | undefined;
  /**
   * The policy, under the role's lock: the cached one if it is fresh and the lock's `version`
   * says no one wrote since, else IAM's, cached.
   */
  current(roleArn: string, version: string | undefined): Promise<string>;
  /** Writes a policy to IAM and caches it; resolves with its version. */
  write(roleArn: string, document: string): Promise<string>;
  /** The last known size of every role seen, by ARN. */
  capacity(): RoleCapacity[];
}

/** Creates the cache. */
export function createPolicyCache(deps: PolicyCacheDeps): PolicyCache {
  const cache = new Map<string, CachedPolicy>();

  const remember = async (roleArn: string, document: string): Promise<string> => {
    const version = await digest(document);
    const options = deps.optionsFor(roleArn);
    const subjects = subjectsOf(document, options);
    cache.set(roleArn, {
      document,
      version,
      at: deps.now(),
      subjects: new Set(subjects),
      size: { roleArn, subjects: subjects.length, length: document.length, quota: options.quota },
    });
    return version;
  };

  const fresh = (roleArn: string) => {
    const hit = cache.get(roleArn);
    return hit && deps.now() - hit.at < deps.maxAgeMs ? hit : undefined;
  };

  return {
    peek: (roleArn) => cache.get(roleArn),
    fresh,
    async current(roleArn, version) {
      const hit = fresh(roleArn);
      if (hit && version !== undefined && hit.version === version) return hit.document;
      const document = await deps.roles.getTrustPolicy(parseRoleArn(roleArn).name);
      await remember(roleArn, document);
      return document;
    },
    async write(roleArn, document) {
      await deps.roles.putTrustPolicy(parseRoleArn(roleArn).name, document);
      return await remember(roleArn, document);
    },
    capacity: () =>
      [...cache.values()].map((c) => c.size).sort((a, b) => a.roleArn.localeCompare(b.roleArn)),
  };
}

async function digest(text: string): Promise<string> {
  const bytes = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return Array.from(bytes.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}
