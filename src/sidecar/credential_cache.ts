/**
 * The credentials the sidecar vends: per profile, the chain proxy role → asset role performed on
 * demand, kept in memory only, refreshed well before it expires, one chain in flight per profile.
 * A profile the last sync did not return is dropped at once, its cached credentials with it.
 */

import { AppError } from "../lib/errors.ts";
import type { StsCredentials } from "./sts.ts";

/** A profile the sidecar wrote, and what its chain assumes. */
export interface ServedProfile {
  readonly name: string;
  readonly assetRoleArn: string;
  /** Absent for a direct role: the pod's token assumes the asset role itself. */
  readonly proxyRoleArn?: string;
  readonly sessionName: string;
}

/** Dependencies of the cache. */
export interface CredentialCacheDeps {
  /** Performs the chain for a profile: both role assumptions, or one for a direct role. */
  readonly chain: (profile: ServedProfile) => Promise<StsCredentials>;
  readonly now: () => number;
  /** Credentials with less time left than this are replaced before they are handed out. */
  readonly refreshMarginMs: number;
  /** The profile `/credentials` answers when the pod has several; the only one otherwise. */
  readonly defaultProfile?: string;
}

/** Counts for /healthz; never a name, an ARN or a credential. */
export interface CredentialStats {
  readonly vended: number;
  readonly refused: number;
  readonly chains: number;
  readonly chainFailures: number;
  readonly cached: number;
}

/** The cache. */
export interface CredentialCache {
  /** Replaces the profiles served (after each successful sync). */
  setProfiles(profiles: readonly ServedProfile[]): void;
  /** The credentials of `name` (the default profile when undefined), or an AppError. */
  get(name: string | undefined): Promise<{ profile: string; credentials: StsCredentials }>;
  /** Renews the credentials of every profile already asked for; failures are kept for get. */
  refreshAll(): Promise<void>;
  /** Renews those within the margin of their expiry (a timer calls it, so requests rarely wait). */
  refreshDue(): Promise<void>;
  /** Counts a refusal decided outside the cache (an unauthorized request). */
  refused(): void;
  stats(): CredentialStats;
}

const sameChain = (a: ServedProfile, b: ServedProfile) =>
  a.assetRoleArn === b.assetRoleArn && a.proxyRoleArn === b.proxyRoleArn &&
  a.sessionName === b.sessionName;

/** Creates the cache; it serves nothing until the first {@link CredentialCache.setProfiles}. */
export function createCredentialCache(deps: CredentialCacheDeps): CredentialCache {
  let profiles = new Map<string, ServedProfile>();
  let synced = false;
  const unmapped = new Set<string>();
  const cached = new Map<string, StsCredentials>();
  const inFlight = new Map<string, Promise<StsCredentials>>();
  let vended = 0, refused = 0, chains = 0, chainFailures = 0;

  const refuse = (error: AppError): never => {
    refused++;
    throw error;
  };

  const resolveName = (name: string | undefined): string => {
    if (!synced) {
      refuse(new AppError("unavailable", "The sidecar has not synced yet; try again shortly"));
    }
    if (name !== undefined) return name;
    const names = [...profiles.keys()];
    if (deps.defaultProfile !== undefined) return deps.defaultProfile;
    if (names.length === 1) return names[0];
    return refuse(
      new AppError(
        "conflict",
        names.length === 0
          ? "This workspace has no AWS role, so there is no default profile"
          : `This workspace has ${names.length} profiles (${
            names.map((n) => `"${n}"`).join(", ")
          }) and no default one: ask /credentials/<profile>, or set AWS_PROFILE, or have the ` +
            "admin name one (the chart's sidecar.credentials.defaultProfile)",
      ),
    );
  };

  const fetchChain = (profile: ServedProfile): Promise<StsCredentials> => {
    let running = inFlight.get(profile.name);
    if (running) return running;
    running = (async () => {
      chains++;
      try {
        const credentials = await deps.chain(profile);
        // Stored only when the profile is still served with the same chain.
        const now = profiles.get(profile.name);
        if (now && sameChain(now, profile)) cached.set(profile.name, credentials);
        return credentials;
      } catch (e) {
        chainFailures++;
        throw e;
      } finally {
        inFlight.delete(profile.name);
      }
    })();
    inFlight.set(profile.name, running);
    return running;
  };

  const fresh = (c: StsCredentials | undefined) =>
    c !== undefined && c.expiration - deps.now() > deps.refreshMarginMs;

  return {
    setProfiles(next) {
      const map = new Map(next.map((p) => [p.name, p]));
      for (const [name, old] of profiles) {
        const now = map.get(name);
        if (!now) unmapped.add(name);
        if (!now || !sameChain(old, now)) cached.delete(name);
      }
      for (const name of map.keys()) unmapped.delete(name);
      profiles = map;
      synced = true;
    },
    async get(requested) {
      const name = resolveName(requested);
      const profile = profiles.get(name);
      if (!profile) {
        const served = [...profiles.keys()].map((n) => `"${n}"`).join(", ") || "none";
        refuse(
          new AppError(
            "not_found",
            unmapped.has(name)
              ? `Profile "${name}" is no longer mapped to this workspace (removed at the last sync); profiles: ${served}`
              : `Profile "${name}" is not mapped to this workspace; profiles: ${served}`,
          ),
        );
      }
      let credentials = cached.get(name);
      if (!fresh(credentials)) {
        try {
          credentials = await fetchChain(profile!);
        } catch (e) {
          refused++;
          throw new AppError(
            "upstream_error",
            `Cannot get credentials for profile "${name}": ${(e as Error).message}`,
          );
        }
      }
      // The mapping may have been removed while STS answered.
      if (!profiles.has(name)) {
        refuse(
          new AppError("not_found", `Profile "${name}" is no longer mapped to this workspace`),
        );
      }
      vended++;
      return { profile: name, credentials: credentials! };
    },
    async refreshAll() {
      const asked = [...cached.keys()].map((n) => profiles.get(n)).filter((p) => p !== undefined);
      await Promise.allSettled(asked.map((p) => fetchChain(p)));
    },
    async refreshDue() {
      const due = [...cached].filter(([, c]) => !fresh(c)).map(([n]) => profiles.get(n))
        .filter((p) => p !== undefined);
      await Promise.allSettled(due.map((p) => fetchChain(p)));
    },
    refused: () => void refused++,
    stats: () => ({ vended, refused, chains, chainFailures, cached: cached.size }),
  };
}
