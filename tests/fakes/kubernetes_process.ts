/**
 * The Kubernetes fake in a process of its own, for the benchmark, so that serving the replicas does
 * not share an event loop with the client's burst. Prints `{"url","token"}` as one line, then
 * serves until its standard input closes.
 */
import { startFakeKubernetes } from "./kubernetes.ts";

const kube = await startFakeKubernetes();
console.log(JSON.stringify({ url: kube.url, token: kube.token }));
for await (const _ of Deno.stdin.readable) { /* until the parent closes it */ }
await kube.close();
