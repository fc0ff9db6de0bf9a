/** The sidecar's sync: token, server call, config file, propagation check; one in flight, state for /healthz. */

import { isoTime } from "../lib/iso_time.ts";
import { parsePodLabels, WORKLOAD_TYPE_LABEL } from "../core/pod_labels.ts";
import { profilesFor, type RolePair, roleSessionName } from "../core/role_chain.ts";
import type { Logger } from "../lib/log.ts";
import type { BrokerClient, PodIdentity } from "./broker_client.ts";
import { isRetryable } from "./broker_client.ts";
import type { WriterFs } from "./config_writer.ts";
import { writeConfig } from "./config_writer.ts";
import { backoffDelay, realClock, retry, type RetryClock } from "../lib/backoff.ts";
import type { AssumeResult } from "./sts_check.ts";
import type { ServedProfile } from "./credential_cache.ts";

/** What the syncer needs from the sidecar's configuration. */
export interface SyncSettings {
  readonly configFile: string;
  readonly tokenFile: string;
  readonly podInfo: string;
  readonly runId?: string;
  readonly username?: string;
  readonly region?: string;
  readonly stsRegionalEndpoints?: "regional" | "legacy";
  readonly propagationCheck: boolean;
  readonly propagationDeadlineMs: number;
  readonly syncIntervalMs: number;
}

/** Dependencies of the syncer. */
export interface SyncerDeps {
  readonly settings: SyncSettings;
  readonly broker: BrokerClient;
  readonly readTextFile: (path: string) => Promise<string>;
  readonly fs?: WriterFs;
  readonly assume: (roleArn: string, token: string, sessionName: string) => Promise<AssumeResult>;
  readonly logger: Logger;
  readonly clock?: RetryClock;
  /** The `credential_process` line of a profile, added to each profile users name. */
  readonly credentialProcess?: (profile: string) => string;
  /** Told the profiles served after each successful sync (the credential endpoint's list). */
  readonly onSynced?: (profiles: readonly ServedProfile[]) => void;
  /**
   * Write `[default]` as a copy of the pod's default profile (the one named, else the only one)
   * when the user's part of the file has no `[default]`: botocore and the CLI then reach it with
   * no profile named, before the pod's AWS_WEB_IDENTITY_TOKEN_FILE stops them.
   */
  readonly defaultSection?: { readonly profile?: string };
}

/** Whether a profile's proxy role can be assumed yet. */
export type Usability = "usable" | "checking" | "not-yet" | "unchecked";

/** What /healthz shows. */
export interface SyncState {
  readonly state: "starting" | "synced" | "failed";
  readonly lastSync: string | null;
  readonly lastAttempt: string | null;
  readonly profiles: readonly string[];
  readonly usable: Readonly<Record<string, Usability>>;
  readonly lastError: string | null;
}

/** The syncer. */
export interface Syncer {
  /** Syncs now; concurrent calls share one sync. Throws what the sync threw. */
  sync(reason: string): Promise<readonly string[]>;
  /** The first sync, retried on 429, 5xx and no connection until the deadline. */
  start(deadlineMs: number): Promise<void>;
  /** Removes this pod's subject on the server, bounded in time; best effort. */
  release(timeoutMs: number): Promise<void>;
  state(): SyncState;
  /** True when the last sync succeeded or the file is still fresh (two intervals). */
  healthy(): boolean;
  /** Resolves when background propagation checks end; for tests and shutdown. */
  idle(): Promise<void>;
}

/** Creates the syncer. */
export function createSyncer(deps: SyncerDeps): Syncer {
  const s = deps.settings;
  const clock = deps.clock ?? realClock;
  let inFlight: Promise<readonly string[]> | undefined;
  let state: SyncState = {
    state: "starting",
    lastSync: null,
    lastAttempt: null,
    profiles: [],
    usable: {},
    lastError: null,
  };
  let lastSuccessAt = 0;
  // Pairs of the last good file: a role that fails this time keeps its profile rather than vanishing.
  let goodPairs: RolePair[] = [];
  let checks: Promise<void> = Promise.resolve();
  let generation = 0;

  const identity = async (): Promise<PodIdentity> => {
    const userToken = await deps.broker.accessToken();
    const workloadToken = (await deps.readTextFile(s.tokenFile)).trim();
    let workloadType: string | undefined;
    try {
      workloadType = parsePodLabels(await deps.readTextFile(s.podInfo)).get(WORKLOAD_TYPE_LABEL);
    } catch {
      workloadType = undefined; // No labels file: the server does not need the type.
    }
    return { userToken, workloadToken, runId: s.runId, workloadType };
  };

  const setUsable = (gen: number, name: string, value: Usability) => {
    if (gen !== generation) return;
    state = { ...state, usable: { ...state.usable, [name]: value } };
  };

  const checkPropagation = (
    gen: number,
    pairs: { name: string; proxy: string }[],
    token: string,
    session: string,
  ) => {
    const deadline = clock.now() + s.propagationDeadlineMs;
    return Promise.all(pairs.map(async ({ name, proxy }) => {
      let result: AssumeResult;
      for (let attempt = 0;; attempt++) {
        result = await deps.assume(proxy, token, session);
        if (result.ok || clock.now() >= deadline || gen !== generation) break;
        await clock.sleep(backoffDelay(attempt, { baseMs: 250, capMs: 5_000 }, clock.random));
      }
      setUsable(gen, name, result.ok ? "usable" : "not-yet");
      if (!result.ok) {
        deps.logger.warn("role not assumable yet", { profile: name, code: result.code });
      }
    })).then(() => {});
  };

  const doSync = async (reason: string): Promise<readonly string[]> => {
    state = { ...state, lastAttempt: isoTime(clock.now()) };
    try {
      const pod = await identity();
      const answer = await deps.broker.map(pod);
      const ok = answer.roles.filter((r) => r.status !== "failed");
      const failed = answer.roles.filter((r) => r.status === "failed");
      const kept = goodPairs.filter((p) => failed.some((f) => f.iam_role_arn === p.assetRoleArn));
      const pairs: RolePair[] = [
        ...ok.map((r) => ({
          assetRoleArn: r.iam_role_arn,
          ...(r.proxy_iam_role_arn ? { proxyRoleArn: r.proxy_iam_role_arn } : {}),
        })),
        ...kept,
      ];
      const session = s.username ? roleSessionName(s.username) : undefined;
      const chains = profilesFor(pairs, {
        webIdentityTokenFile: s.tokenFile,
        region: s.region,
        stsRegionalEndpoints: s.stsRegionalEndpoints,
        roleSessionName: session,
      });
      const process = deps.credentialProcess;
      const profiles = chains.flatMap((c) =>
        c.profiles.map((p) =>
          process && p.name === c.name
            ? { ...p, settings: [...p.settings, ["credential_process", process(c.name)] as const] }
            : p
        )
      );
      const wanted = deps.defaultSection &&
        (deps.defaultSection.profile ?? (chains.length === 1 ? chains[0].name : undefined));
      const source = profiles.find((p) => p.name === wanted);
      const fallback = source && { name: "default", settings: source.settings };
      const changed = await writeConfig(s.configFile, profiles, deps.fs, fallback);
      goodPairs = pairs;
      lastSuccessAt = clock.now();
      const gen = ++generation;
      const names = chains.map((c) => c.name);
      deps.onSynced?.(chains.map((c) => ({
        name: c.name,
        assetRoleArn: c.pair.assetRoleArn,
        ...(c.pair.proxyRoleArn ? { proxyRoleArn: c.pair.proxyRoleArn } : {}),
        sessionName: session ?? "irsa",
      })));
      const check = s.propagationCheck && chains.length > 0;
      state = {
        state: "synced",
        lastSync: isoTime(lastSuccessAt),
        lastAttempt: state.lastAttempt,
        profiles: names,
        usable: Object.fromEntries(names.map((n) => [n, check ? "checking" : "unchecked"])),
        lastError: failed.length
          ? failed.map((f) => `${f.profile}: ${f.error?.message ?? "failed"}`).join("; ")
          : null,
      };
      deps.logger.info("synced", { reason, profiles: names, changed, failed: failed.length });
      if (check) {
        checks = checkPropagation(
          gen,
          chains.map((c) => ({ name: c.name, proxy: c.pair.proxyRoleArn ?? c.pair.assetRoleArn })),
          pod.workloadToken,
          session ?? "irsa-propagation-check",
        );
      }
      return names;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      state = {
        ...state,
        state: state.state === "starting" ? "starting" : "failed",
        lastError: message,
      };
      deps.logger.warn("sync failed", { reason, error: message });
      throw e;
    }
  };

  return {
    sync(reason) {
      inFlight ??= doSync(reason).finally(() => (inFlight = undefined));
      return inFlight;
    },
    async start(deadlineMs) {
      try {
        await retry(() => this.sync("start"), {
          deadlineMs,
          retryable: isRetryable,
          clock,
          onRetry: (error, attempt, delay) =>
            deps.logger.info("first sync will be retried", {
              attempt,
              delay_ms: delay,
              error: (error as Error).message,
            }),
        });
      } catch (e) {
        state = { ...state, state: "failed" };
        throw e;
      }
    },
    async release(timeoutMs) {
      try {
        const pod = await identity();
        await deps.broker.unmap(pod, timeoutMs);
        deps.logger.info("released this pod's subject");
      } catch (e) {
        deps.logger.warn("could not release this pod's subject", { error: (e as Error).message });
      }
    },
    state: () => state,
    healthy: () =>
      state.state === "synced" ||
      (lastSuccessAt > 0 && clock.now() - lastSuccessAt < 2 * s.syncIntervalMs),
    idle: () => checks,
  };
}
