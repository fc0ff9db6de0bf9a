/** Role chaining: the role pairs a user is entitled to, as AWS config profiles. */

import { AppError } from "../lib/errors.ts";
import { parseRoleArn, type RoleArn } from "./arn.ts";

/** An asset role and the proxy role that leads to it; no proxy means the token assumes the asset role directly. */
export interface RolePair {
  readonly assetRoleArn: string;
  readonly proxyRoleArn?: string;
  /** More proxy roles to the same asset role, used in order when the ones before are full. */
  readonly proxyPool?: readonly string[];
  /** `false`: the admin manages the proxy role's trust policy; irsa writes the profiles only. */
  readonly updateTrustPolicy?: false;
  /** The stored object this pair was read from, every key kept, for answers and rewrites. */
  readonly source?: Readonly<Record<string, unknown>>;
}

/** The proxy roles of a pair in the order they are tried: its proxy role (the asset role when direct), then its pool. */
export function poolOf(pair: RolePair): string[] {
  return [pair.proxyRoleArn ?? pair.assetRoleArn, ...(pair.proxyPool ?? [])];
}

/** Settings shared by every profile written. */
export interface ChainOptions {
  /** Where the pod's projected service-account token is mounted. */
  readonly webIdentityTokenFile: string;
  readonly region?: string;
  readonly stsRegionalEndpoints?: "regional" | "legacy";
  /** Shown in CloudTrail; see {@link roleSessionName}. */
  readonly roleSessionName?: string;
}

/** One `[profile <name>]` section: its settings in the order they are written. */
export interface Profile {
  readonly name: string;
  readonly settings: ReadonlyArray<readonly [key: string, value: string]>;
}

/** The profiles of one role pair: the one users name, and the source profile it chains from. */
export interface PairProfiles {
  readonly pair: RolePair;
  /** The profile a notebook passes to `boto3.Session(profile_name=...)`. */
  readonly name: string;
  /** `src_<name>`, absent for a direct role. */
  readonly sourceName?: string;
  readonly profiles: readonly Profile[];
}

/** The prefix of a source (proxy) profile's name. */
export const SOURCE_PREFIX = "src_";

// The AWS SDK for JavaScript reads a profile section only when its name is made of these
// characters; IAM role names may also hold `=` and `,`, which become `_`.
const PROFILE_CHARS = /[^\w@+.-]/g;

/**
 * Builds the profiles for a user's role pairs. A profile is named after its asset role (the last
 * segment of the ARN); asset roles that share a name get `-<account>` appended, and a hash of the
 * ARN if that is still not enough, so that every name is distinct and depends only on the set of
 * pairs. A pair whose asset role appears earlier in the list is skipped: one profile per asset role.
 * Throws `invalid_arn` for a malformed ARN.
 */
export function profilesFor(pairs: readonly RolePair[], options: ChainOptions): PairProfiles[] {
  const seen = new Set<string>();
  const parsed: { pair: RolePair; asset: RoleArn; proxy?: RoleArn }[] = [];
  for (const pair of pairs) {
    const asset = parseRoleArn(pair.assetRoleArn);
    const proxy = pair.proxyRoleArn === undefined ? undefined : parseRoleArn(pair.proxyRoleArn);
    if (seen.has(asset.arn)) continue;
    seen.add(asset.arn);
    parsed.push({ pair, asset, proxy });
  }

  const base = (a: RoleArn) => a.name.replace(PROFILE_CHARS, "_");
  const count = (names: string[]) =>
    names.reduce((m, n) => m.set(n, (m.get(n) ?? 0) + 1), new Map<string, number>());
  let names = parsed.map(({ asset }) => base(asset));
  let counts = count(names);
  names = names.map((n, i) => (counts.get(n)! > 1 ? `${n}-${parsed[i].asset.account}` : n));
  counts = count(names);
  names = names.map((n, i) => (counts.get(n)! > 1 ? `${n}-${hash(parsed[i].asset.arn)}` : n));
  // An asset role literally named `src_x` would collide with the source profile of role `x`.
  const all = count(names.flatMap((n, i) => (parsed[i].proxy ? [n, SOURCE_PREFIX + n] : [n])));
  names = names.map((n, i) =>
    all.get(n)! > 1 || all.get(SOURCE_PREFIX + n)! > 1
      ? `${n}-${parsed[i].asset.account}-${hash(parsed[i].asset.arn)}`
      : n
  );

  const extras: [string, string][] = [];
  if (options.roleSessionName !== undefined) {
    extras.push(["role_session_name", options.roleSessionName]);
  }
  if (options.region !== undefined) extras.push(["region", options.region]);
  if (options.stsRegionalEndpoints !== undefined) {
    extras.push(["sts_regional_endpoints", options.stsRegionalEndpoints]);
  }
  for (const [key, value] of extras) checkValue(key, value);
  checkValue("web_identity_token_file", options.webIdentityTokenFile);

  return parsed.map(({ pair, asset, proxy }, i) => {
    const name = names[i];
    if (!proxy) {
      const settings: [string, string][] = [
        ["web_identity_token_file", options.webIdentityTokenFile],
        ["role_arn", asset.arn],
        ...extras,
      ];
      return { pair, name, profiles: [{ name, settings }] };
    }
    const sourceName = SOURCE_PREFIX + name;
    return {
      pair,
      name,
      sourceName,
      profiles: [
        {
          name: sourceName,
          settings: [["web_identity_token_file", options.webIdentityTokenFile], [
            "role_arn",
            proxy.arn,
          ], ...extras],
        },
        { name, settings: [["source_profile", sourceName], ["role_arn", asset.arn], ...extras] },
      ],
    };
  });
}

/**
 * A role session name for a user, as STS accepts it (`[\w+=,.@-]{2,64}`): other characters become
 * `_`, and the name is cut to 64 characters. CloudTrail then shows who acted.
 */
export function roleSessionName(user: string): string {
  const name = user.replace(/[^\w+=,.@-]/g, "_").slice(0, 64);
  return name.length >= 2 ? name : `irsa-${name}`.slice(0, 64);
}

// A value the SDK's reader would cut short (a comment sign after white space) or split must not
// be written, whatever the caller passed.
function checkValue(key: string, value: string): void {
  if (value.trim() !== value || value === "" || /[\r\n]|\s[#;]/.test(value)) {
    throw new AppError(
      "bad_request",
      `Cannot write ${key} ${JSON.stringify(value)} into an AWS config file`,
    );
  }
}

// FNV-1a, 32 bits, as 8 hex characters: short, stable and pure.
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}
