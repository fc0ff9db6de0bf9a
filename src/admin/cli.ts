/** `irsa admin`: parses the command line, calls the server's admin API, prints the answer. */

import { parse as parseYaml, stringify as toYaml } from "yaml";
import { helpFor, parseArgs, type Parsed, UsageError } from "./args.ts";
import {
  type ApplyAnswer,
  type CapacityRow,
  type ExplainAnswer,
  type MappingsAnswer,
  renderApply,
  renderCapacity,
  renderExplain,
  renderMappings,
  renderTrust,
  type TrustAnswer,
} from "./render.ts";
import { renderReport } from "./report.ts";
import type { AuditEntry } from "../api/admin.ts";

/** What the command needs from the world; src/admin/main.ts gives the real one, tests their own. */
export interface AdminIo {
  env(name: string): string | undefined;
  readTextFile(path: string): Promise<string>;
  writeTextFile(path: string, text: string): Promise<void>;
  /** fetch that trusts `caCert` (PEM text) when given. */
  fetch(url: string, init: RequestInit, caCert?: string): Promise<Response>;
  stdout(text: string): void;
  stderr(text: string): void;
  /** Epoch milliseconds, for the report's date. */
  now(): number;
}

/** A failure worth exit code 1, its message for standard error. */
export class AdminError extends Error {
  override readonly name = "AdminError";
}

const DEFAULT_SERVER = "https://irsa-svc.domino-field";

/** Runs `irsa admin <args>`; returns the exit code (0 done, 1 failed, 2 bad usage). */
export async function runAdmin(argv: readonly string[], io: AdminIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(
      `irsa admin: ${e.message}; see "irsa admin${e.command ? ` ${e.command}` : ""} --help"\n`,
    );
    return 2;
  }
  if (parsed.help) {
    io.stdout(`${helpFor(parsed.command)}\n`);
    return 0;
  }
  try {
    return await dispatch(parsed, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(
        `irsa admin: ${e.message}; see "irsa admin ${parsed.command!.words.join(" ")} --help"\n`,
      );
      return 2;
    }
    if (e instanceof AdminError) {
      io.stderr(`irsa admin: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** The server's client: its URL, the CA, and the credential headers. */
interface Client {
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

async function connect(p: Parsed, io: AdminIo): Promise<Client> {
  const flag = (name: string) => p.flags[name] as string | undefined;
  const endpoint = io.env("DOMINO_IRSA_ENDPOINT");
  let server = flag("server") ?? io.env("IRSA_SERVER") ??
    (endpoint ? new URL(endpoint).origin : DEFAULT_SERVER);
  server = server.replace(/\/+$/, "");
  try {
    new URL(server);
  } catch {
    throw new UsageError(`--server ${JSON.stringify(server)} is not a URL`);
  }
  const caFile = flag("ca") ?? io.env("DOMINO_IRSA_SSL_CERT");
  const caCert = caFile ? await readFile(io, caFile, "CA file") : undefined;
  const headers = await credentials(p, io);
  return {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await io.fetch(`${server}${path}`, {
          method,
          headers: {
            ...headers,
            Accept: "application/json",
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }, caCert);
      } catch (e) {
        throw new AdminError(`Cannot reach the server at ${server}: ${(e as Error).message}`);
      }
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new AdminError(
          `${method} ${path} answered ${res.status} with a body that is not JSON`,
        );
      }
      if (!res.ok) {
        const err = json as { code?: string; message?: string; request_id?: string };
        throw new AdminError(
          `${err.message ?? "request failed"} (${method} ${path}: ${res.status} ${err.code ?? ""}${
            err.request_id ? `, request id ${err.request_id}` : ""
          })`,
        );
      }
      return json as T;
    },
  };
}

async function readFile(io: AdminIo, path: string, what: string): Promise<string> {
  try {
    return await io.readTextFile(path);
  } catch (e) {
    throw new AdminError(`Cannot read ${what} ${JSON.stringify(path)}: ${(e as Error).message}`);
  }
}

/** The credential headers: flags first, then the environment, then the workspace's token proxy. */
async function credentials(p: Parsed, io: AdminIo): Promise<Record<string, string>> {
  const bearer = (t: string) => ({ Authorization: `Bearer ${t.trim()}` });
  if (p.flags.token) return bearer(p.flags.token as string);
  if (p.flags["token-file"]) {
    return bearer(await readFile(io, p.flags["token-file"] as string, "token file"));
  }
  if (p.flags["api-key"]) return { "X-Domino-Api-Key": p.flags["api-key"] as string };
  const token = io.env("IRSA_TOKEN");
  if (token) return bearer(token);
  const key = io.env("DOMINO_USER_API_KEY");
  if (key) return { "X-Domino-Api-Key": key };
  const proxy = io.env("DOMINO_API_PROXY");
  if (proxy) {
    try {
      const res = await io.fetch(`${proxy.replace(/\/+$/, "")}/access-token`, { method: "GET" });
      const text = await res.text();
      if (!res.ok || text.trim() === "") throw new Error(`answered ${res.status}`);
      return bearer(text);
    } catch (e) {
      throw new AdminError(
        `Cannot get a token from ${proxy}/access-token: ${(e as Error).message}`,
      );
    }
  }
  throw new UsageError(
    "no credentials: give --token, --token-file or --api-key (or set IRSA_TOKEN or DOMINO_USER_API_KEY)",
  );
}

function print(p: Parsed, io: AdminIo, answer: unknown, readable: () => string) {
  const output = (p.flags.output as string | undefined) ?? "table";
  io.stdout(
    output === "json"
      ? `${JSON.stringify(answer, null, 2)}\n`
      : output === "yaml"
      ? toYaml(answer)
      : `${readable()}\n`,
  );
}

/** Reads a mappings file: YAML or JSON, `{"all_role_mappings": {...}}` or the organizations alone. */
export function parseMappingsFile(text: string, path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    // YAML 1.2 reads JSON as well.
    doc = parseYaml(text);
  } catch (e) {
    throw new AdminError(`${path} is neither YAML nor JSON: ${(e as Error).message}`);
  }
  const isObject = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (!isObject(doc)) throw new AdminError(`${path} must hold an object of organizations`);
  const orgs = "all_role_mappings" in doc ? doc.all_role_mappings : doc;
  if (!isObject(orgs)) throw new AdminError(`${path}: all_role_mappings must be an object`);
  return orgs;
}

async function dispatch(p: Parsed, io: AdminIo): Promise<number> {
  const name = p.command!.words.join(" ");
  const need = (flag: string) => {
    const value = p.flags[flag];
    if (typeof value !== "string" || value === "") {
      throw new UsageError(`"${name}" needs --${flag}`);
    }
    return value;
  };
  switch (name) {
    case "mappings get": {
      const answer = await (await connect(p, io)).call<MappingsAnswer>("GET", "/role_mappings");
      print(p, io, answer, () => renderMappings(answer));
      return 0;
    }
    case "mappings apply": {
      const file = need("filename");
      const mappings = parseMappingsFile(await readFile(io, file, "mappings file"), file);
      const answer = await (await connect(p, io)).call<ApplyAnswer>(
        "POST",
        "/apply_role_mappings",
        {
          all_role_mappings: mappings,
          dry_run: p.flags["dry-run"] === true,
          prune: p.flags.prune === true,
        },
      );
      print(p, io, answer, () => renderApply(answer));
      return 0;
    }
    case "capacity": {
      const answer = await (await connect(p, io)).call<{ roles: CapacityRow[] }>(
        "GET",
        "/capacity",
      );
      print(p, io, answer, () => renderCapacity(answer.roles));
      return 0;
    }
    case "trust": {
      const answer = await (await connect(p, io)).call<TrustAnswer>("POST", "/trust", {
        proxy_iam_role_arn: p.args[0],
      });
      print(p, io, answer, () => renderTrust(answer));
      return 0;
    }
    case "explain": {
      const user = need("user");
      const answer = await (await connect(p, io)).call<ExplainAnswer>("POST", "/explain", {
        user,
        ...(p.flags.run ? { run_id: p.flags.run } : {}),
        ...(p.flags.profile ? { profile: p.flags.profile } : {}),
      });
      print(p, io, answer, () => renderExplain(answer));
      return answer.ok ? 0 : 1;
    }
    case "report": {
      const file = need("html");
      const client = await connect(p, io);
      const [capacity, mappings] = await Promise.all([
        client.call<{ roles: CapacityRow[] }>("GET", "/capacity"),
        client.call<MappingsAnswer>("GET", "/role_mappings"),
      ]);
      const trust = await Promise.all(
        capacity.roles.filter((r) => r.managed && r.error === undefined).map((r) =>
          client.call<TrustAnswer>("POST", "/trust", { proxy_iam_role_arn: r.proxy_iam_role_arn })
        ),
      );
      const audit = await client.call<{ entries: AuditEntry[] }>("GET", "/audit").catch(() => ({
        entries: undefined,
      }));
      const html = renderReport({
        generatedAt: io.now(),
        capacity: capacity.roles,
        mappings,
        trust,
        audit: audit.entries,
      });
      try {
        await io.writeTextFile(file, html);
      } catch (e) {
        throw new AdminError(`Cannot write ${JSON.stringify(file)}: ${(e as Error).message}`);
      }
      io.stderr(`irsa admin: wrote ${file}\n`);
      if (p.flags.output === "json") {
        io.stdout(`${JSON.stringify({ file, roles: capacity.roles.length })}\n`);
      }
      return 0;
    }
  }
  throw new UsageError(`unknown command ${JSON.stringify(name)}`);
}
