import assert from "node:assert/strict";
import { silentLogger } from "../lib/log.ts";
import { createSidecarApp } from "./app.ts";
import { type BrokerClient, HttpStatusError, type MapAnswer } from "./broker_client.ts";
import type { WriterFs } from "./config_writer.ts";
import type { RetryClock } from "../lib/backoff.ts";
import { createSyncer, type SyncSettings } from "./syncer.ts";
import type { AssumeResult } from "./sts_check.ts";

const CONFIG = "/aws/config";
const role = (name: string, status: "added" | "present" | "failed" = "added") => ({
  iam_role_arn: `arn:aws:iam::222222222222:role/${name}`,
  proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${name}`,
  profile: name,
  status,
  ...(status === "failed"
    ? { error: { code: "iam_access_denied", message: `IAM denied ${name}` } }
    : {}),
});

/** A clock that moves only when the code under test sleeps. */
function fakeClock(): RetryClock & { slept: number[] } {
  let now = 1_700_000_000_000;
  const slept: number[] = [];
  return {
    now: () => now,
    sleep: (ms) => (slept.push(ms), now += ms, Promise.resolve()),
    random: () => 0.5,
    slept,
  };
}

/** An in-memory file system with a switch to make writes fail. */
function memoryFs(files: Map<string, string>, failWrites = { on: false }): WriterFs {
  return {
    readTextFile: (p) =>
      files.has(p) ? Promise.resolve(files.get(p)!) : Promise.reject(new Deno.errors.NotFound(p)),
    writeTextFile: (
      p,
      t,
    ) => (failWrites.on
      ? Promise.reject(new Error("disk full"))
      : (files.set(p, t), Promise.resolve())),
    rename: (a, b) => (files.set(b, files.get(a)!), files.delete(a), Promise.resolve()),
    remove: (p) => (files.delete(p), Promise.resolve()),
    mkdir: () => Promise.resolve(),
  };
}

function setup(answers: (MapAnswer | Error)[], opts: { assume?: AssumeResult[] } = {}) {
  const files = new Map<string, string>([["/token", "sa-token\n"], [
    "/labels",
    'dominodatalab.com/irsa-workload-type="cluster-worker"\n',
  ]]);
  const failWrites = { on: false };
  const sent: { runId?: string; workloadType?: string; workloadToken: string }[] = [];
  let maps = 0;
  const broker: BrokerClient = {
    accessToken: () => Promise.resolve("user-token"),
    map: async (pod) => {
      sent.push(pod);
      await Promise.resolve();
      const next = answers[Math.min(maps++, answers.length - 1)];
      if (next instanceof Error) throw next;
      return next;
    },
    unmap: () => Promise.resolve(),
    close: () => {},
  };
  const assumes = [...(opts.assume ?? [{ ok: true }])];
  const settings: SyncSettings = {
    configFile: CONFIG,
    tokenFile: "/token",
    podInfo: "/labels",
    runId: "646d27b817c28b5ea4b5b0c1",
    username: "jdoe",
    propagationCheck: opts.assume !== undefined,
    propagationDeadlineMs: 60_000,
    syncIntervalMs: 300_000,
  };
  const clock = fakeClock();
  const fs = memoryFs(files, failWrites);
  const syncer = createSyncer({
    settings,
    broker,
    readTextFile: (p) => fs.readTextFile(p),
    fs,
    assume: () => Promise.resolve(assumes.length > 1 ? assumes.shift()! : assumes[0]),
    logger: silentLogger,
    clock,
  });
  return {
    syncer,
    files,
    failWrites,
    sent,
    clock,
    maps: () => maps,
    app: createSidecarApp(syncer, CONFIG, silentLogger),
  };
}

const answer = (...roles: ReturnType<typeof role>[]): MapAnswer => ({
  subject: "*:domino-compute:run-x",
  roles,
});

Deno.test("the first sync retries 503 and lost connections with backoff, then writes the file", async () => {
  const w = setup([
    new HttpStatusError("u", 503, "down"),
    new TypeError("connection refused"),
    new HttpStatusError("u", 429, ""),
    answer(role("r")),
  ]);
  await w.syncer.start(60_000);
  assert.equal(w.maps(), 4);
  assert.equal(w.clock.slept.length, 3);
  assert.ok(w.clock.slept[1] > w.clock.slept[0], "the backoff grows");
  assert.match(w.files.get(CONFIG)!, /\[profile r\]\nsource_profile = src_r\n/);
  assert.deepEqual(w.sent[0], {
    userToken: "user-token",
    workloadToken: "sa-token",
    runId: "646d27b817c28b5ea4b5b0c1",
    workloadType: "cluster-worker",
  });
});

Deno.test("a 4xx other than 429 is not retried and is reported; the deadline bounds the rest", async () => {
  const w = setup([new HttpStatusError("u", 403, "Run was not started by you")]);
  await assert.rejects(() => w.syncer.start(60_000), /403: Run was not started by you/);
  assert.equal(w.maps(), 1);
  assert.equal(w.syncer.state().state, "failed");
  const slow = setup([new HttpStatusError("u", 503, "down")]);
  await assert.rejects(() => slow.syncer.start(10_000), /503/);
  assert.ok(slow.clock.slept.reduce((a, b) => a + b, 0) <= 10_000);
});

Deno.test("a failed sync or a failed write never replaces a good file", async () => {
  const w = setup([
    answer(role("r")),
    new HttpStatusError("u", 500, "boom"),
    answer(role("r"), role("s")),
  ]);
  await w.syncer.sync("test");
  const good = w.files.get(CONFIG)!;
  await assert.rejects(() => w.syncer.sync("test"));
  assert.equal(w.files.get(CONFIG), good);
  w.failWrites.on = true;
  await assert.rejects(() => w.syncer.sync("test"), /disk full/);
  assert.equal(w.files.get(CONFIG), good);
  assert.deepEqual([...w.files.keys()].filter((k) => k.endsWith(".tmp")), []);
});

Deno.test("a role that fails keeps the profile of the last good file; others update", async () => {
  const w = setup([
    answer(role("a"), role("b")),
    answer(role("a", "present"), role("b", "failed")),
  ]);
  await w.syncer.sync("test");
  const names = await w.syncer.sync("test");
  assert.deepEqual(names, ["a", "b"]);
  assert.match(w.syncer.state().lastError!, /IAM denied b/);
});

Deno.test("concurrent refreshes share one sync", async () => {
  const w = setup([answer(role("r"))]);
  const results = await Promise.all([w.syncer.sync("a"), w.syncer.sync("b"), w.syncer.sync("c")]);
  assert.equal(w.maps(), 1);
  assert.deepEqual(results, [["r"], ["r"], ["r"]]);
});

Deno.test("/healthz: 503 before the first sync, 200 after, 503 once a failed sync leaves the file stale", async () => {
  const w = setup([answer(role("r")), new HttpStatusError("u", 502, "bad gateway")]);
  const before = await w.app.request("/healthz");
  assert.equal(before.status, 503);
  assert.equal((await before.json()).status, "Starting");
  const refresh = await w.app.request("/refresh");
  assert.equal(refresh.status, 200);
  const text = await refresh.text();
  assert.ok(text.includes('\n  "profiles": [\n    "r"\n  ]'), "pretty JSON for people");
  const ok = await w.app.request("/healthz");
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.equal(body.status, "Healthy");
  assert.deepEqual(body.profiles, ["r"]);
  assert.equal(body.config_file, CONFIG);
  // A failed resync within two intervals: still healthy (the file is fresh), but the error shows.
  assert.equal((await w.app.request("/refresh", { method: "POST" })).status, 502);
  const fresh = await (await w.app.request("/healthz")).json();
  assert.equal(fresh.status, "Healthy");
  assert.match(fresh.last_error, /502/);
  await w.clock.sleep(600_001);
  assert.equal((await w.app.request("/healthz")).status, 503);
});

Deno.test("the propagation check retries until the proxy role can be assumed", async () => {
  const w = setup([answer(role("r"))], {
    assume: [{ ok: false, code: "AccessDenied", message: "" }, {
      ok: false,
      code: "AccessDenied",
      message: "",
    }, { ok: true }],
  });
  await w.syncer.sync("test");
  assert.equal(w.syncer.state().usable.r, "checking");
  await w.syncer.idle();
  assert.equal(w.syncer.state().usable.r, "usable");
  const never = setup([answer(role("r"))], {
    assume: [{ ok: false, code: "AccessDenied", message: "" }],
  });
  await never.syncer.sync("test");
  await never.syncer.idle();
  assert.equal(never.syncer.state().usable.r, "not-yet");
});
