/** `irsa admin`'s readable output: tables, bars and step lists from the server's answers. Pure. */

import type { ApplyAnswer, CapacityAfterRow, ExplainAnswer, TrustAnswer } from "../api/admin.ts";
import type { CapacityRow } from "../api/capacity.ts";
import type { RoleMappingsAnswer } from "../api/role_mappings.ts";
import type { RolePairWire } from "../core/mapping.ts";

/** A pair as the server answers it in `all_role_mappings`. */
export type WirePair = RolePairWire & { readonly domino_org?: string };

/** `GET /role_mappings`. */
export type MappingsAnswer = RoleMappingsAnswer;

export type { ApplyAnswer, CapacityAfterRow, CapacityRow, ExplainAnswer, TrustAnswer };

/** A table with a header row, columns padded to their widest cell, no trailing spaces. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((r) =>
    r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ").trimEnd()
  ).join("\n");
}

/** `[#####.....]` of `width` cells for a fraction; over 1 is drawn full. */
export function bar(fraction: number, width = 20): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`;
}

const percent = (n: number, d: number) => `${Math.round((100 * n) / d)}%`;

/** The proxy roles of a pair: the first, then the rest of its pool. */
export function poolOf(p: WirePair): string[] {
  return [...new Set([p.proxy_iam_role_arn, ...(p.proxy_iam_role_arns ?? [])])];
}

const updates = (p: WirePair) =>
  String(
    !(p.update_iam_role_trust_policy === false ||
      String(p.update_iam_role_trust_policy).toLowerCase() === "false"),
  );

/** `mappings get`. */
export function renderMappings(answer: MappingsAnswer): string {
  const rows = Object.entries(answer.all_role_mappings).flatMap(([org, pairs]) =>
    pairs.map((p) => [org, p.iam_role_arn, poolOf(p).join(","), updates(p)])
  );
  if (rows.length === 0) return "No mappings.";
  return table(["ORGANIZATION", "ASSET ROLE", "PROXY ROLES", "UPDATE TRUST POLICY"], rows);
}

/** `capacity`. */
export function renderCapacity(rows: readonly CapacityRow[]): string {
  if (rows.length === 0) return "No proxy roles are mapped.";
  return table(
    ["PROXY ROLE", "FILL", "", "SUBJECTS", "CHARACTERS", "MORE"],
    rows.map((r) => {
      if (!r.managed) {
        return [
          r.proxy_iam_role_arn,
          "-",
          "",
          "-",
          "-",
          "not managed (update_iam_role_trust_policy: false)",
        ];
      }
      if (r.error !== undefined || r.characters === undefined || r.quota === undefined) {
        return [r.proxy_iam_role_arn, "?", "", "-", "-", `error: ${r.error ?? "not read"}`];
      }
      return [
        r.proxy_iam_role_arn,
        bar(r.characters / r.quota),
        percent(r.characters, r.quota),
        String(r.subjects ?? 0),
        `${r.characters}/${r.quota}`,
        r.fits === undefined ? "-" : String(r.fits),
      ];
    }),
  );
}

/** `trust ROLE_ARN`. */
export function renderTrust(t: TrustAnswer): string {
  const head = [
    `Role:      ${t.proxy_iam_role_arn}`,
    `Managed:   ${
      t.managed ? "yes, irsa edits its trust policy" : "no, update_iam_role_trust_policy is false"
    }${t.mapped ? "" : " (not in any mapping)"}`,
    `Provider:  ${t.provider}`,
    `Audience:  ${t.audience}`,
    `Size:      ${t.characters} of ${t.quota} characters, ${t.subjects.length} subjects`,
    "",
  ];
  if (t.subjects.length === 0) return [...head, "No subjects."].join("\n");
  return [
    ...head,
    table(
      ["SUBJECT", "USER", "RUN", "WORKLOAD", "LAST SYNC", "MANAGED"],
      t.subjects.map((s) => [
        s.subject,
        s.user ?? "-",
        s.run_id ?? "-",
        s.workload_type ?? "-",
        s.synced_at ?? "-",
        s.managed ? "yes" : "no",
      ]),
    ),
  ].join("\n");
}

const MARK = { passed: "PASS", failed: "FAIL", skipped: "SKIP" } as const;

/** `explain`. */
export function renderExplain(e: ExplainAnswer): string {
  const what = [
    `user ${JSON.stringify(e.user)}`,
    ...(e.run ? [`run ${e.run}`] : []),
    ...(e.profile ? [`profile ${JSON.stringify(e.profile)}`] : []),
  ].join(", ");
  const lines = [`Explaining ${what}.`, `Organizations from ${e.organizations_source}.`, ""];
  for (const s of e.steps) {
    lines.push(`${MARK[s.status]}  ${s.id}${s.profile ? ` [${s.profile}]` : ""}: ${s.detail}`);
    if (s.status === "failed" && s.advice) lines.push(`      fix: ${s.advice}`);
  }
  lines.push("");
  lines.push(
    e.ok
      ? "Result: every step passed."
      : `Result: the first failing step is ${e.failed_step}.${e.advice ? ` ${e.advice}.` : ""}`,
  );
  return lines.join("\n");
}

const SIGN = { added: "+", changed: "~", removed: "-", unchanged: "=", kept: " " } as const;

/** `mappings apply`. */
export function renderApply(a: ApplyAnswer): string {
  const lines: string[] = [];
  const pairs = (ps?: readonly WirePair[]) =>
    (ps ?? []).map((p) => `${p.iam_role_arn.split("/").pop()} via ${poolOf(p).join(",")}`).join(
      "; ",
    );
  lines.push(table(
    ["", "ORGANIZATION", "CHANGE", "PAIRS"],
    a.changes.map((c) => [
      SIGN[c.action],
      c.domino_org,
      c.action === "kept" ? "kept (not in the file; --prune removes it)" : c.action,
      c.action === "changed"
        ? `${pairs(c.before)} -> ${pairs(c.after)}`
        : pairs(c.after ?? c.before),
    ]),
  ));
  lines.push("");
  const verb = a.dry_run ? "Would revoke" : "Revoked";
  if (a.revocations.length === 0) lines.push(`${verb}: nothing.`);
  else {
    lines.push(`${verb} ${a.revocations.length} subject(s):`);
    for (const r of a.revocations) {
      lines.push(`  ${r.subject} from ${r.proxy_iam_role_arn}${r.user ? ` (${r.user})` : ""}`);
    }
  }
  lines.push("");
  lines.push(table(
    ["PROXY ROLE", "SUBJECTS", "AFTER", "CHARACTERS AFTER", "FILL AFTER", "MORE"],
    a.capacity.map((r) =>
      !r.managed
        ? [r.proxy_iam_role_arn, "-", "-", "-", "-", "not managed"]
        : r.error !== undefined
        ? [r.proxy_iam_role_arn, "?", "?", "?", "?", `error: ${r.error}`]
        : [
          r.proxy_iam_role_arn,
          String(r.subjects),
          String(r.subjects_after),
          `${r.characters_after}/${r.quota}`,
          bar(r.characters_after! / r.quota!, 10),
          String(r.fits_after),
        ]
    ),
  ));
  lines.push("");
  const changed = a.changes.filter((c) => !["unchanged", "kept"].includes(c.action)).length;
  lines.push(
    a.dry_run
      ? `Dry run: nothing was changed (${changed} organization(s) would change).`
      : `Applied: ${changed} organization(s) changed.`,
  );
  return lines.join("\n");
}
