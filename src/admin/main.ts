/**
 * `irsa admin`'s entry, in the style of the per-mode entries (`src/server/main.ts`): main.ts hands
 * it the arguments and the environment; the files, the network and the console are reached here.
 */

import { type AdminIo, runAdmin } from "./cli.ts";

/** Runs one admin command; returns the exit code. */
export async function run(
  args: string[],
  env: (name: string) => string | undefined,
): Promise<number> {
  const clients = new Map<string, Deno.HttpClient>();
  const out = new TextEncoder();
  const io: AdminIo = {
    env,
    readTextFile: (path) => Deno.readTextFile(path),
    writeTextFile: (path, text) => Deno.writeTextFile(path, text),
    fetch(url, init, caCert) {
      if (caCert === undefined) return fetch(url, init);
      let client = clients.get(caCert);
      if (!client) clients.set(caCert, client = Deno.createHttpClient({ caCerts: [caCert] }));
      return fetch(url, { ...init, client });
    },
    // Written whole and synchronously, so a pipe gets every byte before the process exits.
    stdout: (text) => writeAll(Deno.stdout, out.encode(text)),
    stderr: (text) => writeAll(Deno.stderr, out.encode(text)),
    now: () => Date.now(),
  };
  try {
    return await runAdmin(args, io);
  } finally {
    for (const c of clients.values()) c.close();
  }
}

function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array) {
  let done = 0;
  while (done < bytes.length) done += w.writeSync(bytes.subarray(done));
}
