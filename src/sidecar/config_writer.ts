/** Writes the AWS config file atomically, merged into what a user may have added by hand. */

import { mergeConfig } from "../core/aws_config.ts";
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

/**
 * Merges `profiles` into the file at `path` and replaces it in one rename, so a reader sees the
 * old file or the new one, never half of one. Returns false when the content did not change.
 */
export async function writeConfig(
  path: string,
  profiles: readonly Profile[],
  fs: WriterFs = denoFs,
): Promise<boolean> {
  let existing = "";
  try {
    existing = await fs.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const merged = mergeConfig(existing, profiles);
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
