/**
 * The seal of the hand-off: an HMAC-SHA256, under a key only the server pods hold, over each edit
 * handed to a role's Lease holder and over each result it records, so that what another principal
 * with Lease rights writes there is neither applied nor believed.
 *
 * An edit's seal covers the role, its id, when it was handed and the whole edit; a result's covers
 * the role, the edit's id and the whole result. Ids are unique per process (its random identity
 * and a counter), so a result cannot be moved to another edit, nor a sealed edit to another role;
 * an edit replayed on its own role is refused once it is older than {@link HANDED_MAX_AGE_MS} or
 * once its result is on the Lease.
 */

import { AppError } from "../lib/errors.ts";
import type { EditResult, Handed, Results } from "./handoff.ts";

/** A handed edit older than this (by the holder's clock) is refused: its replica gave up on it. */
export const HANDED_MAX_AGE_MS = 60_000;
/** The shortest key accepted, in bytes: 256 bits. */
export const HANDOFF_KEY_MIN_BYTES = 32;

/** Signs and checks the hand-off's messages; the key itself never leaves it. */
export interface HandoffKey {
  sign(message: string): Promise<string>;
  verify(message: string, mac: string): Promise<boolean>;
}

/** Why a handed edit or a result was refused. */
export type RefusedReason =
  | "malformed"
  | "unsealed"
  | "bad_seal"
  | "stale"
  | "replayed"
  /** Sealed, but an add the grant record does not entitle its subject to on this role. */
  | "not_entitled";

/** Something on a Lease that was refused, for the audit line. */
export interface Refused {
  readonly id: string;
  readonly reason: RefusedReason;
  /** The edit, as it was written (never the seal). */
  readonly add?: unknown;
  readonly remove?: unknown;
  readonly status?: unknown;
}

/** The key from the text of the key file `path` (its surrounding white space trimmed). */
export async function importHandoffKey(text: string, path?: string): Promise<HandoffKey> {
  const bytes = new TextEncoder().encode(text.trim());
  if (bytes.length < HANDOFF_KEY_MIN_BYTES) {
    throw new AppError(
      "bad_request",
      `Cannot use the hand-off key${
        path ? ` in ${JSON.stringify(path)}` : ""
      }: it is ${bytes.length} bytes long, under the ${HANDOFF_KEY_MIN_BYTES} required`,
    );
  }
  const key = await crypto.subtle.importKey(
    "raw",
    bytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const encoder = new TextEncoder();
  return {
    sign: async (message) =>
      toBase64Url(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)))),
    async verify(message, mac) {
      const bytes = fromBase64Url(mac);
      // crypto.subtle.verify compares in constant time.
      return bytes !== undefined &&
        await crypto.subtle.verify("HMAC", key, bytes, encoder.encode(message));
    },
  };
}

// The sealed messages: arrays in a fixed order, so that no field can move into another.
const editMessage = (roleArn: string, e: Handed) =>
  JSON.stringify([
    "irsa-handed-edit-v1",
    roleArn,
    e.id,
    e.at,
    e.add ?? null,
    e.remove ?? null,
    e.user,
    e.run ?? null,
    e.requestId ?? null,
  ]);
const resultMessage = (roleArn: string, id: string, r: EditResult) =>
  JSON.stringify([
    "irsa-handed-result-v1",
    roleArn,
    id,
    r.status,
    r.error?.code ?? null,
    r.error?.message ?? null,
    r.length ?? null,
    r.quota ?? null,
    r.subjects ?? null,
  ]);

/** Edits to hand over, each sealed for `roleArn`. */
export async function sealEdits(
  key: HandoffKey,
  roleArn: string,
  edits: readonly Omit<Handed, "mac">[],
): Promise<Handed[]> {
  return await Promise.all(
    edits.map(async (e) => ({ ...e, mac: await key.sign(editMessage(roleArn, e)) })),
  );
}

/** Results to record, each sealed for its edit's id on `roleArn`. */
export async function sealResults(
  key: HandoffKey,
  roleArn: string,
  results: Results,
): Promise<Results> {
  const sealed = await Promise.all(
    Object.entries(results).map(async ([id, v]) =>
      [id, { ...v, mac: await key.sign(resultMessage(roleArn, id, v.r)) }] as const
    ),
  );
  return Object.fromEntries(sealed);
}

/**
 * The handed edits whose seal holds, fresh at `now` and without a result yet (first of each id),
 * and those refused.
 */
export async function openEdits(
  key: HandoffKey,
  roleArn: string,
  handed: readonly unknown[],
  results: Results,
  now: number,
): Promise<{ valid: Handed[]; refused: Refused[] }> {
  const valid: Handed[] = [];
  const refused: Refused[] = [];
  const seen = new Set<string>();
  // All checked at once: one after another, a burst's few hundred took tens of milliseconds.
  const reasons = await Promise.all(
    handed.map((entry) => editRefusal(key, roleArn, entry, results, now)),
  );
  for (const [i, entry] of handed.entries()) {
    const reason = reasons[i];
    const e = entry as Handed;
    if (reason) {
      refused.push({
        id: idOf(entry),
        reason,
        add: e?.add,
        remove: e?.remove,
      });
    } else if (!seen.has(e.id)) {
      seen.add(e.id);
      valid.push(e);
    }
  }
  return { valid, refused };
}

async function editRefusal(
  key: HandoffKey,
  roleArn: string,
  entry: unknown,
  results: Results,
  now: number,
): Promise<RefusedReason | undefined> {
  if (!isHanded(entry)) return "malformed";
  if (entry.mac === undefined) return "unsealed";
  if (!await key.verify(editMessage(roleArn, entry), entry.mac)) return "bad_seal";
  if (entry.at < now - HANDED_MAX_AGE_MS || entry.at > now + HANDED_MAX_AGE_MS) return "stale";
  if (Object.hasOwn(results, entry.id)) return "replayed";
  return undefined;
}

/** The results recorded for `ids` whose seal holds, and those refused. */
export async function openResults(
  key: HandoffKey,
  roleArn: string,
  ids: readonly string[],
  results: Results,
): Promise<{ valid: Results; refused: Refused[] }> {
  const valid: Record<string, Results[string]> = {};
  const refused: Refused[] = [];
  const present = ids.filter((id) => Object.hasOwn(results, id));
  const reasons = await Promise.all(present.map(async (id) => {
    const v = results[id] as Partial<Results[string]> | null;
    if (!v || typeof v !== "object" || !v.r || typeof v.r !== "object") return "malformed";
    if (typeof v.mac !== "string") return "unsealed";
    if (!await key.verify(resultMessage(roleArn, id, v.r), v.mac)) return "bad_seal";
    return undefined;
  }));
  for (const [i, id] of present.entries()) {
    const v = results[id] as Partial<Results[string]> | null;
    const reason = reasons[i];
    if (reason) refused.push({ id, reason, status: v?.r?.status });
    else valid[id] = v as Results[string];
  }
  return { valid, refused };
}

/** The id of an entry of the handed edits, "" when it has none. */
export const idOf = (e: unknown): string => {
  const id = (e as { id?: unknown } | null)?.id;
  return typeof id === "string" ? id : "";
};

const optionalString = (v: unknown) => v === undefined || typeof v === "string";

function isHanded(e: unknown): e is Handed {
  if (typeof e !== "object" || e === null) return false;
  const h = e as Record<string, unknown>;
  return typeof h.id === "string" && typeof h.user === "string" &&
    typeof h.at === "number" && Number.isFinite(h.at) &&
    optionalString(h.add) && optionalString(h.remove) &&
    (h.add !== undefined || h.remove !== undefined) &&
    optionalString(h.run) && optionalString(h.requestId) && optionalString(h.mac);
}

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return undefined; // 32 bytes, unpadded
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
