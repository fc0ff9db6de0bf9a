import assert from "node:assert/strict";
import { userHasSection, writeConfig } from "./config_writer.ts";
import type { Profile } from "../core/role_chain.ts";

const LIST: Profile = {
  name: "acme-list-bucket-role",
  settings: [
    ["source_profile", "src_acme-list-bucket-role"],
    ["role_arn", "arn:aws:iam::222222222222:role/acme-list-bucket-role"],
    ["credential_process", "/bin/sh /var/run/.aws/irsa-credential-process acme-list-bucket-role"],
  ],
};
const DEFAULT: Profile = { name: "default", settings: LIST.settings };

Deno.test("writeConfig: [default] mirrors the default profile unless the user wrote one, and leaves with it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/config`;
  try {
    await writeConfig(path, [LIST], undefined, DEFAULT);
    const ours = await Deno.readTextFile(path);
    assert.match(ours, /\[profile default\]\nsource_profile = src_acme-list-bucket-role\n/);
    assert.equal(userHasSection(ours, "default"), false, "irsa's own [default] is not the user's");
    // Still irsa's at the next sync; gone when there is no default any more.
    assert.equal(await writeConfig(path, [LIST], undefined, DEFAULT), false);
    await writeConfig(path, [LIST]);
    assert.doesNotMatch(await Deno.readTextFile(path), /default/);

    // The user's own [default] (either spelling) stays, byte for byte, and irsa writes none.
    for (const header of ["[default]", "[profile default]"]) {
      await Deno.writeTextFile(path, `${header}\nregion = eu-west-1\n`);
      assert.equal(userHasSection(await Deno.readTextFile(path), "default"), true);
      await writeConfig(path, [LIST], undefined, DEFAULT);
      const text = await Deno.readTextFile(path);
      assert.ok(text.startsWith(`${header}\nregion = eu-west-1\n`), text);
      assert.equal(text.match(/default\]/g)?.length, 1, text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
