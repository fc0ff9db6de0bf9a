import assert from "node:assert/strict";
import { decodeMappings, fromWire, toWire } from "../core/mapping.ts";
import type { RolePair } from "../core/role_chain.ts";
import { AppError } from "../lib/errors.ts";
import { createFileStore } from "./file_store.ts";

// As a store reads it back: the pair and the wire object it came from.
const pair = (role: string): RolePair =>
  fromWire({
    iam_role_arn: `arn:aws:iam::222222222222:role/${role}`,
    proxy_iam_role_arn: `arn:aws:iam::111111111111:role/${role}`,
  });
const LIST = pair("acme-list-bucket-role");
const READ = pair("acme-read-bucket-role");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "irsa-file-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("file store: a missing file is created as {} on first read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    const store = createFileStore(path);
    assert.deepEqual(await store.read(), { mappings: new Map(), problems: [] });
    assert.equal(await Deno.readTextFile(path), "{}\n");
    assert.deepEqual(await names(dir), ["mappings.json"]);
  });
});

Deno.test("file store: survives re-open, in the ConfigMap's data format", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    const first = createFileStore(path);
    await first.put("irsa-iamrole-list-bucket", [LIST]);
    await first.put("irsa-iamrole-both", [LIST, READ]);
    await first.put("gone", [READ]);
    assert.equal(await first.remove("gone"), true);
    assert.equal(await first.remove("gone"), false);

    const reopened = createFileStore(path);
    const expected = new Map([
      ["irsa-iamrole-list-bucket", [LIST]],
      ["irsa-iamrole-both", [LIST, READ]],
    ]);
    assert.deepEqual(await reopened.read(), { mappings: expected, problems: [] });

    // The file is a ConfigMap's `data`: an object of JSON strings, read by the same decoder.
    const data = JSON.parse(await Deno.readTextFile(path));
    assert.ok(Object.values(data).every((value) => typeof value === "string"));
    assert.deepEqual(decodeMappings(data).mappings, expected);
    assert.equal(
      data["irsa-iamrole-list-bucket"],
      '{"iam_role_arn":"arn:aws:iam::222222222222:role/acme-list-bucket-role","proxy_iam_role_arn":"arn:aws:iam::111111111111:role/acme-list-bucket-role"}',
    );
  });
});

Deno.test("file store: writes a temp file in the same folder, then renames it over the file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    await Deno.writeTextFile(path, "{}\n");
    const calls: string[] = [];
    const store = createFileStore(path, {
      writeTextFile: async (p, text) => {
        calls.push(`write ${p}`);
        await Deno.writeTextFile(p, text);
      },
      rename: async (from, to) => {
        calls.push(`rename ${from} ${to}`);
        // Until the rename, readers see the old file whole.
        assert.equal(await Deno.readTextFile(to), "{}\n");
        await Deno.rename(from, to);
      },
    });
    await store.put("org", [LIST]);
    assert.equal(calls.length, 2);
    const temp = calls[0].slice("write ".length);
    assert.ok(temp.startsWith(`${dir}/.mappings.json.`) && temp.endsWith(".tmp"), temp);
    assert.equal(calls[1], `rename ${temp} ${path}`);
    assert.deepEqual((await store.read()).mappings, new Map([["org", [LIST]]]));
    assert.deepEqual(await names(dir), ["mappings.json"]);
  });
});

Deno.test("file store: a failed rename leaves the old file whole and no temp file behind", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    await createFileStore(path).put("org-a", [LIST]);
    const before = await Deno.readTextFile(path);

    const store = createFileStore(path, {
      rename: () => Promise.reject(new Deno.errors.PermissionDenied("read-only file system")),
    });
    await assert.rejects(store.put("org-b", [READ]), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.code, "unavailable");
      assert.equal(
        e.message,
        `Cannot write mapping file "${path}": read-only file system`,
      );
      return true;
    });
    assert.equal(await Deno.readTextFile(path), before);
    assert.deepEqual(await names(dir), ["mappings.json"]);
  });
});

Deno.test("file store: concurrent puts and removes are serialised and none is lost", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    const store = createFileStore(path);
    const orgs = Array.from({ length: 30 }, (_, i) => `org-${i}`);
    // A read racing the first writes must not recreate an empty file over them.
    await Promise.all([store.read(), ...orgs.map((org) => store.put(org, [LIST])), store.read()]);
    assert.deepEqual([...(await store.read()).mappings.keys()], orgs);

    await Promise.all(orgs.filter((_, i) => i % 2).map((org) => store.remove(org)));
    assert.deepEqual(
      [...(await createFileStore(path).read()).mappings.keys()],
      orgs.filter((_, i) => i % 2 === 0),
    );
  });
});

Deno.test("file store: malformed entries are reported and kept untouched on writes of other organizations", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    const original = {
      "org-broken": '{"iam_role_arn": ',
      "org-object": { iam_role_arn: "arn:aws:iam::222222222222:role/x" },
      "org-good": JSON.stringify({
        iam_role_arn: LIST.assetRoleArn,
        proxy_iam_role_arn: LIST.proxyRoleArn,
      }),
    };
    await Deno.writeTextFile(path, JSON.stringify(original));
    const store = createFileStore(path);

    const { mappings, problems } = await store.read();
    assert.deepEqual(mappings, new Map([["org-good", [LIST]]]));
    assert.deepEqual(problems.map((p) => p.organization).sort(), ["org-broken", "org-object"]);
    assert.match(
      problems.find((p) => p.organization === "org-object")!.message,
      /must be the mapping as JSON text/,
    );

    await store.put("org-new", [READ]);
    assert.equal(await store.remove("org-good"), true);
    const after = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(after["org-broken"], original["org-broken"]);
    assert.deepEqual(after["org-object"], original["org-object"]);
    assert.deepEqual(Object.keys(after), ["org-broken", "org-object", "org-new"]);
  });
});

Deno.test("file store: a file that is not a JSON object is an error naming it, and is never overwritten", async () => {
  await withDir(async (dir) => {
    for (const text of ["[]", "null", "not json", '"text"']) {
      const path = `${dir}/mappings.json`;
      await Deno.writeTextFile(path, text);
      const store = createFileStore(path);
      await assert.rejects(store.read(), (e) => {
        assert.ok(e instanceof AppError);
        assert.equal(e.code, "internal");
        assert.ok(e.message.startsWith(`Mapping file "${path}" must be a JSON object`), e.message);
        return true;
      });
      await assert.rejects(store.put("org", [LIST]), { code: "internal" });
      assert.equal(await Deno.readTextFile(path), text);
    }
  });
});

Deno.test("file store: an unreadable file and bad input are AppErrors", async () => {
  const store = createFileStore("/nowhere/mappings.json", {
    readTextFile: () => Promise.reject(new Deno.errors.PermissionDenied("denied")),
  });
  await assert.rejects(store.read(), {
    code: "unavailable",
    message: 'Cannot read mapping file "/nowhere/mappings.json": denied',
  });
  await assert.rejects(store.put("not a key", [LIST]), { code: "bad_request" });
  await assert.rejects(store.put("org", []), { code: "bad_request" });
});

Deno.test("file store: organization names that are Object.prototype keys are refused, and read back as refused names", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mappings.json`;
    const store = createFileStore(path);
    await assert.rejects(() => store.remove("constructor"), /is reserved/);
    await assert.rejects(() => store.put("__proto__", [LIST]), /is reserved/);
    // Written by an older writer, such names are plain data in the file, never the prototype; the
    // one rule for names (OrganizationName) skips them as malformed when they are read.
    await Deno.writeTextFile(
      path,
      `{"__proto__": ${JSON.stringify(JSON.stringify(toWire(LIST)))}, ` +
        `"constructor": ${JSON.stringify(JSON.stringify(toWire(READ)))}}`,
    );
    const { mappings, problems } = await createFileStore(path).read();
    assert.deepEqual(mappings, new Map());
    assert.deepEqual(problems.map((p) => p.organization).sort(), ["__proto__", "constructor"]);
  });
});
