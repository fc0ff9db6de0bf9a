/** AWS config file text: rendering profiles and merging them into a file a user may have edited. */

import type { Profile } from "./role_chain.ts";

/** Opens the block of profiles irsa writes; everything outside the block belongs to the user. */
export const BEGIN_MARKER =
  "# BEGIN irsa managed profiles: rewritten at every sync, edits here are lost";
/** Closes the block of profiles irsa writes. */
export const END_MARKER = "# END irsa managed profiles";

// One section as renderProfiles writes it: a profile name of the characters the SDKs read, then
// one `key = value` line per setting.
const SECTION = String.raw`\[profile [\w@+.-]+\]\n(?:[a-z_]+ = [^\n]+\n)+`;

/** The text {@link renderProfiles} writes, as a JSON-schema pattern: sections, a blank line between. */
export const PROFILES_PATTERN = `^(?:${SECTION}(?:\\n${SECTION})*)?$`;

/** Renders profiles as config-file text, one blank line between sections, as the current service does. */
export function renderProfiles(profiles: readonly Profile[]): string {
  return profiles
    .map((p) =>
      [`[profile ${p.name}]`, ...p.settings.map(([k, v]) => `${k} = ${v}`)].join("\n") + "\n"
    )
    .join("\n");
}

/**
 * Merges profiles into an existing config file. The block irsa wrote before is replaced, and so
 * is any section outside it that names one of `profiles` (a profile irsa manages wins); every
 * other line, sections and comments a user added included, stays byte for byte.
 */
export function mergeConfig(existing: string, profiles: readonly Profile[]): string {
  const ours = new Set(profiles.map((p) => p.name));
  const lines = existing === "" ? [] : existing.replace(/\n$/, "").split("\n");
  const kept: string[] = [];
  let blockAt = -1;
  let inBlock = false;
  let skippingSection = false;
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === BEGIN_MARKER) {
      inBlock = true;
      if (blockAt < 0) blockAt = kept.length;
      continue;
    }
    if (inBlock) {
      if (trimmed === END_MARKER) inBlock = false;
      continue;
    }
    const section = sectionName(line);
    if (section !== undefined) skippingSection = ours.has(section);
    if (!skippingSection) kept.push(line);
  }
  const body = profiles.length === 0 ? [] : renderProfiles(profiles).replace(/\n$/, "").split("\n");
  const block = [BEGIN_MARKER, ...body, END_MARKER];
  if (blockAt < 0) {
    while (kept.length > 0 && kept[kept.length - 1].trim() === "") kept.pop();
    blockAt = kept.length;
    if (kept.length > 0) block.unshift("");
  }
  kept.splice(blockAt, 0, ...block);
  return kept.join("\n") + "\n";
}

/**
 * The profile a section header line names (`default` for `[default]`), or undefined when the line
 * is not a section header; the rules are those of the AWS SDK's reader: text after a `#` or `;`
 * that starts the line or follows white space is a comment.
 */
export function sectionName(line: string): string | undefined {
  const trimmed = line.split(/(^|\s)[;#]/)[0].trim();
  if (!trimmed.startsWith("[") || !trimmed.endsWith("]")) return undefined;
  const inner = trimmed.slice(1, -1);
  const m = /^profile\s+(["']?)(.+)\1$/.exec(inner);
  return m ? m[2] : inner;
}
