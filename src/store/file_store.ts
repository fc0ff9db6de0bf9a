/** The mappings store in a JSON file shaped like the ConfigMap's `data`, for a single instance. */

import { decodeMappings, type MappingProblem } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../lib/errors.ts";
import {
  checkOrganization,
  createLock,
  entryValue,
  withEntry,
  withoutEntry,
} from "./configmap_store.ts";
import {
  encodeWrites,
  type MappingSnapshot,
  type MappingStore,
  withWrites,
} from "./mapping_store.ts";

/** The file operations the store uses; `readTextFile` must throw `Deno.errors.NotFound` for a missing file. */
export interface FileStoreFs {
  readTextFile(path: string): Promise<string>;
  writeTextFile(path: string, data: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
}

/**
 * A store over one file holding a JSON object of organization to JSON-text value, exactly the
 * ConfigMap's `data`, so the file can become (or be made from) the ConfigMap's `data` as is.
 * The file is created as `{}` when missing and replaced atomically on each write (a temp file in
 * the same folder, then a rename). Writes are serialised in-process: one file wants one store.
 * Entries it cannot read are reported by `read` and written back unchanged.
 */
export function createFileStore(path: string, fs: Partial<FileStoreFs> = {}): MappingStore {
  const { load, save, lock, modify } = jsonObjectFile(path, fs, {
    label: "mapping file",
    contents: "organization to role mapping text",
  });

  return {
    async read(): Promise<MappingSnapshot> {
      // Created under the lock and only if still missing, so a put writing meanwhile is kept.
      const data = await load() ?? await lock(async () => {
        const again = await load();
        if (again !== undefined) return again;
        await save({});
        return {};
      });
      const problems: MappingProblem[] = [];
      for (const [organization, value] of Object.entries(data)) {
        if (typeof value !== "string") {
          problems.push({
            organization,
            message: "Value must be the mapping as JSON text (a string), as in the ConfigMap",
          });
        }
      }
      const strings = Object.fromEntries(
        Object.entries(data).filter((entry): entry is [string, string] =>
          typeof entry[1] === "string"
        ),
      );
      const decoded = decodeMappings(strings);
      return { mappings: decoded.mappings, problems: [...problems, ...decoded.problems] };
    },

    async put(organization: string, pairs: readonly RolePair[]): Promise<void> {
      const value = entryValue(organization, pairs);
      await modify((data) => ({
        data: Object.hasOwn(data, organization) && data[organization] === value
          ? undefined
          : withEntry(data, organization, value),
        result: undefined,
      }));
    },

    async remove(organization: string): Promise<boolean> {
      checkOrganization(organization);
      return await modify((data) => {
        const found = Object.hasOwn(data, organization);
        return { data: found ? withoutEntry(data, organization) : undefined, result: found };
      });
    },

    async putAll(writes): Promise<void> {
      for (const org of writes.keys()) checkOrganization(org);
      const values = encodeWrites(writes, entryValue);
      if (values.size === 0) return;
      await modify((data) => ({ data: withWrites(data, values), result: undefined }));
    },
  };
}

/**
 * One file holding a JSON object, read whole and replaced atomically on each write (a temp file in
 * the same folder, flushed, then a rename): a crash leaves the old file or the new one. Writes
 * are serialised in-process: one file wants one writer. Errors name it by `label` (`mapping
 * file`) and say what it should hold (`contents`).
 */
export function jsonObjectFile(
  path: string,
  fs: Partial<FileStoreFs>,
  names: { label: string; contents: string },
) {
  const ops: FileStoreFs = {
    readTextFile: fs.readTextFile ?? ((p) => Deno.readTextFile(p)),
    writeTextFile: fs.writeTextFile ?? writeSynced,
    rename: fs.rename ?? ((from, to) => Deno.rename(from, to)),
    remove: fs.remove ?? ((p) => Deno.remove(p)),
  };
  const lock = createLock();
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "" : path.slice(0, slash + 1);
  const base = path.slice(slash + 1);

  // The file's object, or undefined when the file does not exist.
  async function load(): Promise<Record<string, unknown> | undefined> {
    let text: string;
    try {
      text = await ops.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw new AppError(
        "unavailable",
        `Cannot read ${names.label} ${JSON.stringify(path)}: ${(error as Error).message}`,
        { path },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw notAnObject(`it is not JSON (${(error as Error).message})`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw notAnObject(
        `it holds ${json === null ? "null" : Array.isArray(json) ? "an array" : typeof json}`,
      );
    }
    return json as Record<string, unknown>;
  }

  function notAnObject(why: string): AppError {
    return new AppError(
      "internal",
      `${names.label[0].toUpperCase()}${names.label.slice(1)} ${
        JSON.stringify(path)
      } must be a JSON object of ${names.contents}, but ${why}`,
      { path },
    );
  }

  async function save(data: Readonly<Record<string, unknown>>): Promise<void> {
    const temp = `${dir}.${base}.${crypto.randomUUID()}.tmp`;
    try {
      await ops.writeTextFile(temp, JSON.stringify(data, null, 2) + "\n");
      await ops.rename(temp, path);
    } catch (error) {
      await ops.remove(temp).catch(() => {});
      throw new AppError(
        "unavailable",
        `Cannot write ${names.label} ${JSON.stringify(path)}: ${(error as Error).message}`,
        { path },
      );
    }
  }

  // Read-modify-write under the lock; `edit` returns undefined data to write nothing.
  function modify<T>(
    edit: (
      data: Readonly<Record<string, unknown>>,
    ) => { data?: Record<string, unknown>; result: T },
  ): Promise<T> {
    return lock(async () => {
      const { data, result } = edit((await load()) ?? {});
      if (data !== undefined) await save(data);
      return result;
    });
  }

  return { load, save, lock, modify };
}

// Flushed before the rename, so a crash leaves the old file or the new one, not an empty one.
async function writeSynced(path: string, data: string): Promise<void> {
  using file = await Deno.open(path, { write: true, createNew: true });
  const bytes = new TextEncoder().encode(data);
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
  await file.syncData();
}
