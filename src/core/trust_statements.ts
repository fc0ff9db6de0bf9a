/** Reading a trust policy's web-identity statements: who they trust, which subjects and audiences. Pure. */

import { parseTrustPolicy } from "./trust_policy.ts";

/** IAM's StringLike: `*` any run of characters, `?` any one. */
export function stringLike(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll(
    "?",
    ".",
  );
  return new RegExp(`^${re}$`, "s").test(value);
}

type Json = unknown;
type Statement = Record<string, Json>;

const asList = (x: Json): Json[] => (Array.isArray(x) ? x : x === undefined ? [] : [x]);

/** A web-identity statement of a policy: its provider and its `sub` and `aud` conditions. */
export interface WebIdentityStatement {
  readonly index: number;
  readonly federated: readonly string[];
  /** Patterns with the operator that holds them. */
  readonly subjects: readonly { readonly value: string; readonly like: boolean }[];
  /** undefined: no `aud` condition (any audience). */
  readonly audiences?: readonly string[];
}

/** The Allow statements of a trust policy that admit web identities. */
export function webIdentityStatements(document: string): WebIdentityStatement[] {
  const doc = parseTrustPolicy(document);
  const out: WebIdentityStatement[] = [];
  asList(doc.Statement).forEach((raw, index) => {
    const s = raw as Statement;
    if (s.Effect !== "Allow") return;
    if (!asList(s.Action).includes("sts:AssumeRoleWithWebIdentity")) return;
    const principal = (s.Principal ?? {}) as Record<string, Json>;
    const federated = asList(principal.Federated).map(String);
    const subjects: { value: string; like: boolean }[] = [];
    let audiences: string[] | undefined;
    const condition = (s.Condition ?? {}) as Record<string, Record<string, Json>>;
    for (const [operator, keys] of Object.entries(condition)) {
      const like = operator === "StringLike";
      if (!like && operator !== "StringEquals") continue;
      for (const [key, value] of Object.entries(keys ?? {})) {
        if (key.endsWith(":sub")) {
          for (const x of asList(value)) subjects.push({ value: String(x), like });
        }
        if (key.endsWith(":aud")) audiences = [...(audiences ?? []), ...asList(value).map(String)];
      }
    }
    out.push({ index, federated, subjects, audiences });
  });
  return out;
}

/** The statement that admits `subject`, if any. */
export function statementFor(
  statements: readonly WebIdentityStatement[],
  subject: string,
): WebIdentityStatement | undefined {
  return statements.find((s) =>
    s.subjects.some((p) => (p.like ? stringLike(p.value, subject) : p.value === subject))
  );
}
