/**
 * The chart's Grafana dashboard against what the server exports: a real Prometheus (Debian's
 * package) scrapes the real server's metrics port after a start and a stop, and every panel's
 * query returns at least one series. Outside CI the test is skipped when Prometheus is missing.
 */
import assert from "node:assert/strict";
import { EXAMPLE, type Moto, type SeededWorld } from "./fixtures/moto.ts";
import { sharedKubeApiServer } from "./fixtures/kube_apiserver.ts";
import { startOidcIssuer } from "./fixtures/oidc_issuer.ts";
import type { TestTls } from "./fixtures/tls.ts";
import { startServerProcess } from "./server_process.ts";
import { pairJson, serverEnv, useMotoWorld } from "./world.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const RUN = "646d27b817c28b5ea4b5b0c1";

const prometheusMissing = (() => {
  try {
    Deno.statSync(PROMETHEUS);
    return undefined;
  } catch {
    return `${PROMETHEUS} is missing (apt-get install prometheus; .ci/run installs it)`;
  }
})();
if (prometheusMissing && Deno.env.get("CI") !== "true") {
  console.error(`tests/dashboard_test.ts: skipping the dashboard test: ${prometheusMissing}`);
}

interface Dashboard {
  readonly panels: readonly {
    readonly title: string;
    readonly type: string;
    readonly targets: { expr: string }[];
  }[];
}

const dashboard: Dashboard = JSON.parse(
  await Deno.readTextFile(new URL("../deploy/helm/irsa/dashboards/irsa.json", import.meta.url)),
);

/**
 * The IRSA service 1.8's dashboard (its chart's `prometheus/dashboard.json`): each panel's title,
 * type and queries, in its order; the same counters, typo included.
 */
const DASHBOARD_1_8 = [
  {
    title: "Query ConfigMap to Org Mapping ",
    type: "gauge",
    exprs: [
      "increase(irsa_query_config_map_org_to_iamrole_mapping_total[1h])",
      "increase(irsa_query_config_map_org_to_iamrole_mapping_total[1h])",
    ],
  },
  {
    title: "User Org Mapping Query Panel",
    type: "gauge",
    exprs: [
      "increase(irsa_query_user_org_membership_total[1h])",
      "increase(irsa_failed_query_user_org_membership_total[1h])",
    ],
  },
  {
    title: "Query User Principal Metrics",
    type: "gauge",
    exprs: [
      "increase(irsa_query_user_principal_total[1h])",
      "increase(irsa_failed_query_user_principal_total[1h])",
    ],
  },
  {
    title: "IRSA Call Metrics",
    type: "timeseries",
    exprs: [
      "increase(irsa_mapping_requests_total[1h])",
      "increase(irsa_failed_maping_requests_total[1h])",
    ],
  },
];

Deno.test("the dashboard keeps every panel of 1.8's, with the same title, type and queries", () => {
  for (const old of DASHBOARD_1_8) {
    const panel = dashboard.panels.find((p) => p.title === old.title);
    assert.ok(panel, old.title);
    assert.equal(panel.type, old.type, old.title);
    assert.deepEqual(panel.targets.map((t) => t.expr), old.exprs, old.title);
  }
});

Deno.test("the dashboard has panels for the pod watch and the revocation latency", () => {
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join("\n");
  for (
    const name of [
      "irsa_pod_watch_connected",
      "irsa_pod_watch_relists_total",
      "irsa_pod_watch_lag_seconds",
      "irsa_revocation_latency_seconds_bucket",
    ]
  ) {
    assert.ok(exprs.includes(name), name);
  }
});

let moto: Moto;
let tls: TestTls;
let world: SeededWorld;
useMotoWorld((w) => ({ moto, tls, world } = w));

/** A port free on 127.0.0.1 when asked. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test({
  name:
    "every panel of the dashboard returns a series from a real Prometheus scraping the real server",
  ignore: prometheusMissing !== undefined && Deno.env.get("CI") !== "true",
  async fn() {
    const issuer = await startOidcIssuer({ tls: { cert: tls.cert, key: tls.key } });
    const cluster = await sharedKubeApiServer();
    const compute = await cluster.createNamespace("domino-compute", { exact: true });
    const field = await cluster.createNamespace("field");
    await cluster.createPod(compute, {
      name: `run-${RUN}-dash1`,
      // As the platform labels a run's pods: the server, with a Kubernetes API, looks the run up.
      labels: {
        "dominodatalab.com/execution-id": RUN,
        "dominodatalab.com/starting-user-username": "jdoe",
      },
      serviceAccountName: `run-${RUN}`,
    });
    const podToken = await cluster.tokenRequest(compute, `run-${RUN}`, { pod: `run-${RUN}-dash1` });
    const dir = await Deno.makeTempDir({ prefix: "irsa-dashboard-" });
    await Deno.writeTextFile(`${dir}/ca.pem`, tls.caCert + cluster.caCert);
    await Deno.writeTextFile(
      `${dir}/mappings.json`,
      JSON.stringify({
        "irsa-iamrole-list-bucket": JSON.stringify(pairJson(EXAMPLE.roleNames[0])),
      }),
    );
    const metricsPort = freePort();
    const server = await startServerProcess(
      [
        ...["--tls-cert", tls.certPath, "--tls-key", tls.keyPath, "--ca-file", `${dir}/ca.pem`],
        ...["--mapping-file", `${dir}/mappings.json`, "--trust-pod-token-alone"],
        // The grant record's shards (and their gauges) live in the API server.
        ...["--kubernetes-api", cluster.url, "--kubernetes-token-file", cluster.adminTokenFile],
        ...["--kubernetes-ca-file", cluster.caCertPath],
      ],
      serverEnv(moto, world, issuer, {
        IRSA_CLUSTER_ISSUER: cluster.issuer,
        PROMETHEUS_METRICS_PORT: String(metricsPort),
        DEFAULT_FIELD_NS: field,
      }),
      tls.caCert,
    );
    let prometheus: Deno.ChildProcess | undefined;
    try {
      // A start and a stop: IAM reads and writes, a batch, a revocation, request latencies.
      const user = await issuer.userToken({
        username: "jdoe",
        groups: ["irsa-iamrole-list-bucket"],
      });
      for (const method of ["POST", "DELETE"]) {
        const res = await server.fetch("/map_iam_roles_to_pod_sa", {
          method,
          headers: {
            Authorization: `Bearer ${user}`,
            "X-Irsa-Workload-Token": podToken,
            "Content-Type": "application/json",
          },
          body: JSON.stringify({ run_id: RUN }),
        });
        assert.equal(res.status, 200, `${method}: ${await res.text()}`);
      }

      const webPort = freePort();
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        [
          "global: { scrape_interval: 1s, evaluation_interval: 1s }",
          "scrape_configs:",
          "  - job_name: irsa",
          `    static_configs: [{ targets: ["127.0.0.1:${metricsPort}"] }]`,
        ].join("\n"),
      );
      prometheus = new Deno.Command(PROMETHEUS, {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${webPort}`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const query = async (expr: string) => {
        const url = `http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent(expr)}`;
        const res = await fetch(url);
        const body = await res.json();
        assert.equal(body.status, "success", `${expr}: ${JSON.stringify(body)}`);
        return body.data.result as unknown[];
      };
      // Until Prometheus holds a few scrapes: rates and increases need two samples at least.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const scraped = await query("count_over_time(up[1m])").catch(() => []);
        const samples = Number((scraped[0] as { value?: [number, string] })?.value?.[1] ?? 0);
        if (samples >= 4) break;
        if (Date.now() > deadline) {
          throw new Error("Prometheus scraped the server fewer than 4 times in 60 s");
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const empty: string[] = [];
      for (const panel of dashboard.panels) {
        for (const { expr } of panel.targets) {
          if ((await query(expr)).length === 0) empty.push(`${panel.title}: ${expr}`);
        }
      }
      assert.deepEqual(empty, [], "panels whose query returned no series");
    } finally {
      if (prometheus) {
        prometheus.kill("SIGTERM");
        await prometheus.status;
      }
      await server.stop();
      await issuer.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
