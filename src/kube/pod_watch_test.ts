import assert from "node:assert/strict";
import { silentLogger } from "../lib/log.ts";
import type { KubePod, PodEvent } from "./client.ts";
import { RunPods, watchRunEnds } from "./pod_watch.ts";

const pod = (name: string, run: string, phase = "Running"): KubePod => ({
  metadata: { name, labels: { "dominodatalab.com/execution-id": run } },
  status: { phase },
});

Deno.test("RunPods: a run ends with its last live pod, deleted or finished; relists tell the runs that vanished", () => {
  const runs = new RunPods();
  assert.equal(runs.update(pod("a-1", "a"), false), undefined);
  assert.equal(runs.update(pod("a-2", "a"), false), undefined);
  assert.equal(runs.update(pod("a-1", "a"), true), undefined, "one pod of two is gone");
  assert.equal(runs.update(pod("a-2", "a", "Succeeded"), false), "a", "the last one finished");
  assert.equal(runs.update(pod("a-2", "a"), true), undefined, "a run ends once");
  assert.equal(runs.update(pod("b-1", "b", "Pending"), false), undefined);
  assert.equal(runs.update(pod("c-1", "c", "Failed"), false), undefined, "never live, never ends");
  assert.deepEqual(runs.reset([pod("d-1", "d")]), ["b"]);
  assert.equal(runs.update({ metadata: { name: "x" } }, true), undefined, "no run label");
});

/** A Kubernetes API whose lists and watches the test scripts, one step at a time. */
function scriptedKube(script: ({ list: KubePod[] } | { watch: PodEvent[] } | { fail: string })[]) {
  const calls: string[] = [];
  let step = 0;
  const next = () => script[step++] ?? { watch: [] };
  return {
    calls,
    kube: {
      listPodsAt() {
        calls.push("list");
        const s = next();
        if ("fail" in s) return Promise.reject(new Error(s.fail));
        assert.ok("list" in s, `step ${step}: a list was not expected`);
        return Promise.resolve({ pods: s.list, resourceVersion: String(step) });
      },
      async *watchPods(_ns: string, _label: string, rv: string, signal: AbortSignal) {
        calls.push(`watch@${rv}`);
        const s = next();
        if ("fail" in s) throw new Error(s.fail);
        assert.ok("watch" in s, `step ${step}: a watch was not expected`);
        if (s.watch.length === 0) {
          // Nothing more scripted: hold the watch open until the test stops it.
          await new Promise((resolve) => signal.addEventListener("abort", resolve));
          return;
        }
        yield* s.watch;
      },
    },
  };
}

Deno.test("watchRunEnds: events, a 410 that lists again (a run gone meanwhile ends), and a failure that backs off", async () => {
  const { kube, calls } = scriptedKube([
    { list: [pod("a-1", "a"), pod("b-1", "b")] },
    {
      watch: [
        { type: "BOOKMARK", resourceVersion: "5" },
        { type: "DELETED", pod: pod("a-1", "a"), resourceVersion: "6" },
        { type: "ERROR", code: 410, message: "too old resource version" },
      ],
    },
    // While the watch was gone, b's pod went away.
    { list: [pod("c-1", "c")] },
    { fail: "connection reset" },
    { list: [pod("c-1", "c")] },
    { watch: [{ type: "MODIFIED", pod: pod("c-1", "c", "Succeeded"), resourceVersion: "9" }] },
  ]);
  const ended: string[] = [];
  const slept: number[] = [];
  const seen: string[] = [];
  const watch = watchRunEnds({
    kube,
    namespace: "compute",
    onRunEnded: (run) => (ended.push(run), Promise.resolve()),
    onRelist: (reason) => seen.push(`relist:${reason}`),
    onConnected: (up) => seen.push(up ? "up" : "down"),
    onListed: (live) => seen.push(`live:${[...live]}`),
    logger: silentLogger,
    clock: { now: () => 0, sleep: (ms) => (slept.push(ms), Promise.resolve()), random: () => 0 },
  });
  for (let i = 0; i < 100 && ended.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
  await watch.stop();
  assert.deepEqual(ended, ["a", "b", "c"]);
  assert.deepEqual(calls, ["list", "watch@1", "list", "watch@3", "list", "watch@5", "watch@9"]);
  assert.deepEqual(slept, [250], "one failure, one backoff");
  assert.deepEqual(seen, [
    "up",
    "live:a,b",
    "relist:gone",
    "up",
    "live:c",
    "down",
    "relist:error",
    "up",
    "live:c",
    "down", // stop()
  ]);
});

Deno.test("watchRunEnds: stop() ends a watch held open and a backoff in progress", async () => {
  const { kube } = scriptedKube([{ fail: "down" }]);
  const watch = watchRunEnds({
    kube,
    namespace: "compute",
    onRunEnded: () => Promise.resolve(),
    logger: silentLogger,
  });
  await new Promise((r) => setTimeout(r, 10));
  await watch.stop(); // the real pause of up to 500 ms is cut short; the sanitizers see no timer
});
