/** `irsa admin report --html`: one self-contained page (inline CSS, no scripts, no external assets). Pure. */

import type { AuditEntry } from "../api/admin.ts";
import { type CapacityRow, type MappingsAnswer, poolOf, type TrustAnswer } from "./render.ts";

/** What the report shows. */
export interface ReportInput {
  readonly generatedAt: number;
  readonly capacity: readonly CapacityRow[];
  readonly mappings: MappingsAnswer;
  readonly trust: readonly TrustAnswer[];
  /** undefined: the server keeps no audit log to show. */
  readonly audit?: readonly AuditEntry[];
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const e = escapeHtml;

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
.muted{color:#57606a}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.bar{width:16rem;height:1rem;background:#eaeef2;border-radius:3px;overflow:hidden;display:inline-block;vertical-align:middle}
.fill{height:100%;background:#2da44e}.fill.warn{background:#bf8700}.fill.full{background:#cf222e}
.nowrap{white-space:nowrap}.pct{display:inline-block;width:3.5rem;text-align:right;margin-right:.5rem;font-variant-numeric:tabular-nums}
`;

function fillCell(r: CapacityRow): string {
  if (!r.managed) {
    return `<span class="muted">not managed (update_iam_role_trust_policy: false)</span>`;
  }
  if (r.error !== undefined || r.characters === undefined || r.quota === undefined) {
    return `<span class="muted">error: ${e(r.error ?? "not read")}</span>`;
  }
  const pct = Math.round((100 * r.characters) / r.quota);
  const cls = pct >= 95 ? "fill full" : pct >= 75 ? "fill warn" : "fill";
  return `<span class="pct" data-fill="${pct}">${pct}%</span><span class="bar" role="img" aria-label="${pct}% full"><span class="${cls}" style="display:block;width:${
    Math.min(100, pct)
  }%"></span></span>`;
}

/** The page. */
export function renderReport(input: ReportInput): string {
  const when = new Date(input.generatedAt).toISOString();
  const capacityRows = input.capacity.map((r) =>
    `<tr data-role="${e(r.proxy_iam_role_arn)}"><td><code>${
      e(r.proxy_iam_role_arn)
    }</code></td><td>${fillCell(r)}</td><td>${r.subjects ?? "-"}</td><td>${
      r.characters !== undefined ? `${r.characters} / ${r.quota}` : "-"
    }</td><td>${r.fits ?? "-"}</td></tr>`
  ).join("\n");
  const mappingRows = Object.entries(input.mappings.all_role_mappings).flatMap(([org, pairs]) =>
    pairs.map((p) =>
      `<tr><td>${e(org)}</td><td><code>${e(p.iam_role_arn)}</code></td><td>${
        poolOf(p).map((r) => `<code>${e(r)}</code>`).join("<br>")
      }</td><td>${e(String(p.update_iam_role_trust_policy ?? true))}</td></tr>`
    )
  ).join("\n");
  const holders = input.trust.map((t) =>
    `<h3><code>${e(t.proxy_iam_role_arn)}</code> <span class="muted">${t.subjects.length} subject${
      t.subjects.length === 1 ? "" : "s"
    }</span></h3>
${
      t.subjects.length === 0
        ? `<p class="muted">No subjects.</p>`
        : `<table><thead><tr><th>Subject</th><th>User</th><th>Run</th><th>Workload</th><th>Last sync</th><th>Managed</th></tr></thead><tbody>
${
          t.subjects.map((s) =>
            `<tr><td><code>${e(s.subject)}</code></td><td>${e(s.user ?? "-")}</td><td>${
              e(s.run_id ?? "-")
            }</td><td>${e(s.workload_type ?? "-")}</td><td>${e(s.synced_at ?? "-")}</td><td>${
              s.managed ? "yes" : "no"
            }</td></tr>`
          ).join("\n")
        }
</tbody></table>`
    }`
  ).join("\n");
  const audit = input.audit === undefined
    ? `<p class="muted">This server keeps no audit log to show; its audit lines are in its log (JSON lines with "audit": true).</p>`
    : input.audit.length === 0
    ? `<p class="muted">No changes since the server started.</p>`
    : `<table><thead><tr><th>Time</th><th>What</th><th>User</th><th>Details</th></tr></thead><tbody>
${
      // Newest first: the last changes are what an admin opens the report for.
      [...input.audit].reverse().map((a) => {
        const { time, msg, user, ...rest } = a;
        delete (rest as Record<string, unknown>).audit;
        delete (rest as Record<string, unknown>).level;
        return `<tr><td class="nowrap">${e(time)}</td><td class="nowrap">${e(msg)}</td><td>${
          e(user ?? "-")
        }</td><td><code>${e(JSON.stringify(rest))}</code></td></tr>`;
      }).join("\n")}
</tbody></table>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>irsa report</title>
<style>${STYLE}</style>
</head>
<body>
<h1>irsa report</h1>
<p class="muted">Generated ${e(when)} by <code>irsa admin report</code>.</p>
<h2>Capacity</h2>
<table id="capacity"><thead><tr><th>Proxy role</th><th>Fill</th><th>Subjects</th><th>Characters</th><th>More fit</th></tr></thead><tbody>
${capacityRows || `<tr><td colspan="5" class="muted">No proxy roles are mapped.</td></tr>`}
</tbody></table>
<h2>Mappings</h2>
<table id="mappings"><thead><tr><th>Organization</th><th>Asset role</th><th>Proxy roles</th><th>Update trust policy</th></tr></thead><tbody>
${mappingRows || `<tr><td colspan="4" class="muted">No mappings.</td></tr>`}
</tbody></table>
<h2>Who holds each role</h2>
${holders || `<p class="muted">No managed roles.</p>`}
<h2>Last changes</h2>
${audit}
</body>
</html>
`;
}
