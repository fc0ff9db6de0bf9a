/** Prometheus metrics: a small registry and every metric irsa exports, built once in main and passed down. */

type Labels = Readonly<Record<string, string>>;

const labelKey = (labels: Labels) =>
  Object.keys(labels).sort().map((k) =>
    `${k}="${labels[k].replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  ).join(",");

/** A monotonically increasing counter, optionally by labels. */
export class Counter {
  #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }
  /** The current value for these labels (tests read it). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, value] of this.#values) {
      lines.push(`${this.name}${key ? `{${key}}` : ""} ${value}`);
    }
    return lines.join("\n");
  }
}

/** A value that goes up and down, optionally by labels; no sample until it is first set. */
export class Gauge {
  #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  set(labels: Labels, value: number): void {
    this.#values.set(labelKey(labels), value);
  }
  /** The current value for these labels (tests read it). */
  get(labels: Labels = {}): number | undefined {
    return this.#values.get(labelKey(labels));
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [key, value] of this.#values) {
      lines.push(`${this.name}${key ? `{${key}}` : ""} ${value}`);
    }
    return lines.join("\n");
  }
}

/** A histogram with fixed buckets, in seconds. */
export class Histogram {
  #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
    /** Rendered (at zero) before the first observation, as Prometheus clients do for a histogram without labels. */
    initial?: Labels,
  ) {
    if (initial) {
      this.#series.set(labelKey(initial), { counts: buckets.map(() => 0), sum: 0, count: 0 });
    }
  }
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    const s = this.#series.get(key) ?? { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]++;
    });
    s.sum += value;
    s.count++;
    this.#series.set(key, s);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, s] of this.#series) {
      const sep = key ? "," : "";
      this.buckets.forEach((b, i) =>
        lines.push(`${this.name}_bucket{${key}${sep}le="${b}"} ${s.counts[i]}`)
      );
      lines.push(`${this.name}_bucket{${key}${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${key ? `{${key}}` : ""} ${s.sum}`);
      lines.push(`${this.name}_count${key ? `{${key}}` : ""} ${s.count}`);
    }
    return lines.join("\n");
  }
}

/** A gauge of the seconds since the last `mark()`, read at each scrape; 0 before the first. */
export class AgeGauge {
  #at: number | undefined;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly now: () => number = () => Date.now(),
  ) {}
  mark(): void {
    this.#at = this.now();
  }
  /** The current value (tests read it). */
  get(): number {
    return this.#at === undefined ? 0 : Math.max(0, (this.now() - this.#at) / 1000);
  }
  render(): string {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${this.get()}`,
    ].join("\n");
  }
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric of the server. Names of the current service are kept, typo included, for its dashboards. */
export function createServerMetrics() {
  const m = {
    mappingRequests: new Counter(
      "irsa_mapping_requests_total",
      "Requests to map a pod's service account to its roles.",
    ),
    failedMappingRequests: new Counter(
      "irsa_failed_maping_requests_total",
      "Mapping requests that failed.",
    ),
    principalQueries: new Counter(
      "irsa_query_user_principal_total",
      "Queries of the platform for a user's principal.",
    ),
    failedPrincipalQueries: new Counter(
      "irsa_failed_query_user_principal_total",
      "Failed principal queries.",
    ),
    orgQueries: new Counter(
      "irsa_query_user_org_membership_total",
      "Queries of the platform for a user's organizations.",
    ),
    failedOrgQueries: new Counter(
      "irsa_failed_query_user_org_membership_total",
      "Failed organization queries.",
    ),
    mappingReads: new Counter(
      "irsa_query_config_map_org_to_iamrole_mapping_total",
      "Reads of the organization-to-role mappings.",
    ),
    iamCalls: new Counter("irsa_iam_calls_total", "IAM calls by operation and outcome."),
    trustPolicyEdits: new Counter(
      "irsa_trust_policy_edits_total",
      "Trust-policy edits by action and outcome.",
    ),
    cacheHits: new Counter(
      "irsa_policy_cache_hits_total",
      "Starts answered from the policy cache, with no IAM call.",
    ),
    poolFull: new Counter(
      "irsa_role_full_total",
      "Adds refused by a proxy role at its quota (a later member of its pool may take the subject).",
    ),
    poolExhausted: new Counter(
      "irsa_pool_full_total",
      "Starts refused because every proxy role of a pool was full.",
    ),
    cleanupRemoved: new Counter(
      "irsa_cleanup_removed_subjects_total",
      "Subjects of ended runs removed by the cleanup loop.",
    ),
    cleanupLastPass: new Gauge(
      "irsa_cleanup_last_pass_timestamp_seconds",
      "When this replica last finished a cleanup pass (Unix seconds). With Kubernetes one replica at a time runs the passes: the newest over the replicas says when the last one ran.",
    ),
    podWatchLists: new Counter(
      "irsa_pod_watch_lists_total",
      "Lists of the run pods by the pod watch: its start, and every relist after a 410 or a failure.",
    ),
    podWatchRelists: new Counter(
      "irsa_pod_watch_relists_total",
      "Lists of the run pods asked after the first, by reason: gone (the watch's version was too old, 410) or error (the watch or the list failed, then backed off).",
    ),
    podWatchConnected: new Gauge(
      "irsa_pod_watch_connected",
      "1 while the pod watch is listed and watching, 0 while it is down, backing off or not running (no Kubernetes API).",
    ),
    podWatchLag: new AgeGauge(
      "irsa_pod_watch_lag_seconds",
      "Seconds since the pod watch last heard from the API server (a list, an event or a bookmark; 0 when it is not running). Bookmarks come about once a minute, so a quiet namespace stays under about 60 s; it grows while the watch is down.",
    ),
    revocationLatency: new Histogram(
      "irsa_revocation_latency_seconds",
      "Seconds from the pod watch seeing a run's last pod end (deleted or finished) to its subject off every proxy role it held.",
      [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      {},
    ),
    revokedSubjects: new Counter(
      "irsa_revoked_subjects_total",
      "Subjects taken off a proxy role, by reason: sync, stop, mapping, run_ended or service_account_deleted.",
    ),
    handoffRefused: new Counter(
      "irsa_handoff_refused_total",
      "Edits handed over on a role's Lease, and their results, refused because their seal did not hold, by what and reason.",
    ),
    grantShardBytes: new Gauge(
      "irsa_grant_shard_bytes",
      "Bytes of each grant record shard (label shard: its ConfigMap) at its last read or write by this replica.",
    ),
    grantShardFill: new Gauge(
      "irsa_grant_shard_fill_ratio",
      "The largest grant record shard's bytes over the 1 MiB Kubernetes allows in one object.",
    ),
    batchSize: new Histogram(
      "irsa_trust_policy_batch_size",
      "Requests applied together in one trust-policy edit.",
      [1, 2, 5, 10, 20, 50, 100, 200, 500],
    ),
    requestDuration: new Histogram(
      "irsa_http_request_duration_seconds",
      "HTTP request latency by route, method and status.",
      LATENCY_BUCKETS,
    ),
  };
  m.podWatchConnected.set({}, 0); // 0 until the watch first lists (or with no Kubernetes API)
  return m;
}

/** The server's metrics. */
export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/** Renders metrics in the Prometheus text format. */
export function renderMetrics(
  metrics: Record<string, Counter | Gauge | AgeGauge | Histogram>,
): string {
  return Object.values(metrics).map((m) => m.render()).join("\n") + "\n";
}
