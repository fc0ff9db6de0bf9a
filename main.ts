/**
 * irsa's entry point: the only place that reads Deno.args and Deno.env; picks the mode and hands
 * the arguments and the environment to that mode's entry, and turns the outcome into an exit code.
 *
 * Each mode's entry is imported through a computed URL, never a string literal: Deno would follow
 * a literal into the module graph, so the sidecar would read the server's sources and the AWS
 * SDK's npm metadata before it listens. `deno compile` embeds the entries with `--include`.
 */

type Mode = "server" | "sidecar";
type Env = (name: string) => string | undefined;
const MODES: readonly Mode[] = ["server", "sidecar"];

/** The module that runs a mode: the binary loads the sidecar as the one-file bundle it embeds. */
function entryUrl(mode: Mode): string {
  const path = mode === "server"
    ? "./src/server/main.ts"
    : Deno.build.standalone
    ? "./dist/sidecar.js"
    : "./src/sidecar/main.ts";
  return new URL(path, import.meta.url).href;
}

/** Exit codes: 0 done, 1 failed while running, 2 bad usage or configuration. */
async function main(args: string[]): Promise<number> {
  const env: Env = (name) => Deno.env.get(name);
  const first = args[0];
  if (first === "admin") {
    // A client, not a service: its own command line (src/admin/args.ts) and entry.
    const entry: { run(args: string[], env: Env): Promise<number> } = await import(
      new URL("./src/admin/main.ts", import.meta.url).href
    );
    return await entry.run(args.slice(1), env);
  }
  const modeFromArgs = MODES.includes(first as Mode) ? (first as Mode) : undefined;
  const rest = modeFromArgs ? args.slice(1) : args;
  if (rest.includes("--help") || rest.includes("-h")) {
    // Computed URLs too: the settings tables must not enter main.ts's graph either.
    const load = (path: string) => import(new URL(path, import.meta.url).href);
    const [settings, server, sidecar] = await Promise.all([
      load("./src/lib/settings.ts"),
      load("./src/server/settings.ts"),
      load("./src/sidecar/settings.ts"),
    ]);
    console.log(settings.helpText(modeFromArgs, {
      server: server.serverSettings,
      sidecar: sidecar.sidecarSettings,
    }));
    if (!modeFromArgs) {
      console.log('\nirsa admin <command>: the admin command line (see "irsa admin --help").');
    }
    return 0;
  }
  const mode = modeFromArgs ??
    (first === undefined || first.startsWith("-") ? env("IRSA_MODE") : first);
  if (mode === undefined || mode === "") {
    console.error(
      'irsa: no mode given: run "irsa server" or "irsa sidecar" (or set IRSA_MODE); see "irsa --help"',
    );
    return 2;
  }
  if (!MODES.includes(mode as Mode)) {
    console.error(
      `irsa: unknown mode ${
        JSON.stringify(mode)
      }: expected "server" or "sidecar"; see "irsa --help"`,
    );
    return 2;
  }
  const settingsArgs = modeFromArgs || first === undefined || first.startsWith("-")
    ? rest
    : args.slice(1);
  const entry: { run(args: string[], env: Env): Promise<number> } = await import(
    entryUrl(mode as Mode)
  );
  try {
    return await entry.run(settingsArgs, env);
  } catch (e) {
    // ConfigError, told by name: importing its class here would load the settings in main.
    if (e instanceof Error && e.name === "ConfigError" && "problems" in e) {
      const problems = e.problems as { setting: string; message: string }[];
      console.error(
        `irsa ${mode}: invalid configuration:\n${
          problems.map((p) => `  ${p.setting}: ${p.message}`).join("\n")
        }`,
      );
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
