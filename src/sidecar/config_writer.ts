/** Writes the AWS config file atomically, merged into what a user may have added by hand. */

import { BEGIN_MARKER, END_MARKER, mergeConfig, sectionName } from "../core/aws_config.ts";
import type { Profile } from "../core/role_chain.ts";

/** The file operations the writer uses, passed in so tests can inject failures. */
export interface WriterFs {
  readTextFile(path: string): Promise<string>;
  writeTextFile(path: string, text: string, options: { mode: number }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
}

/** Deno's file system. */
export const denoFs: WriterFs = {
  readTextFile: (p) => Deno.readTextFile(p),
  writeTextFile: (p, t, o) => Deno.writeTextFile(p, t, { mode: o.mode }),
  rename: (a, b) => Deno.rename(a, b),
  remove: (p) => Deno.remove(p),
  mkdir: (p) => Deno.mkdir(p, { recursive: true }),
};

/** True when a section outside irsa's block names `profile` (a section the user wrote). */
export function userHasSection(text: string, profile: string): boolean {
  let inBlock = false;
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === BEGIN_MARKER) inBlock = true;
    else if (trimmed === END_MARKER) inBlock = false;
    else if (!inBlock && sectionName(line) === profile) return true;
  }
  return false;
}

/**
 * Merges `profiles` into the file at `path` and replaces it in one rename, so a reader sees the
 * old file or the new one, never half of one. `fallbackDefault`, a `[default]` section, is added
 * only when the user's part of the file has none. Returns false when the content did not change.
 */
export async function writeConfig(
  path: string,
  profiles: readonly Profile[],
  fs: WriterFs = denoFs,
  fallbackDefault?: Profile,
): Promise<boolean> {
  let existing = "";
  try {
    existing = await fs.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const withDefault = fallbackDefault && !userHasSection(existing, "default")
    ? [...profiles, fallbackDefault]
    : profiles;
  const merged = mergeConfig(existing, withDefault);
  if (merged === existing) return false;
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : ".";
  await fs.mkdir(dir);
  const temp = `${dir}/.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  try {
    // Readable by the workspace user, who runs as another uid than the sidecar.
    await fs.writeTextFile(temp, merged, { mode: 0o644 });
    await fs.rename(temp, path);
  } catch (e) {
    await fs.remove(temp).catch(() => {});
    throw e;
  }
  return true;
}
