import assert from "node:assert/strict";
import fc from "fast-check";
import { loadSharedConfigFiles } from "@smithy/shared-ini-file-loader";
import { AppError } from "../lib/errors.ts";
import { mergeConfig, PROFILES_PATTERN, renderProfiles, sectionName } from "./aws_config.ts";
import { type Profile, profilesFor, type RolePair, roleSessionName } from "./role_chain.ts";

const TOKEN = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
const pair = (
  name: string,
  asset = "222222222222",
  proxy: string | null = "111111111111",
): RolePair => ({
  assetRoleArn: `arn:aws:iam::${asset}:role/${name}`,
  ...(proxy ? { proxyRoleArn: `arn:aws:iam::${proxy}:role/${name}` } : {}),
});
const all = (pairs: RolePair[], extra = {}) =>
  profilesFor(pairs, { webIdentityTokenFile: TOKEN, ...extra }).flatMap((p) => p.profiles);

/** Reads config text back through the AWS SDK's own reader, as boto3's JavaScript twin would. */
async function readBack(text: string): Promise<Record<string, Record<string, string>>> {
  const dir = await Deno.makeTempDir();
  try {
    const configFilepath = `${dir}/config`;
    await Deno.writeTextFile(configFilepath, text);
    const { configFile } = await loadSharedConfigFiles({
      configFilepath,
      filepath: `${dir}/none`,
      ignoreCache: true,
    });
    return configFile as Record<string, Record<string, string>>;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function asRecord(profiles: Profile[]): Record<string, Record<string, string>> {
  return Object.fromEntries(profiles.map((p) => [p.name, Object.fromEntries(p.settings)]));
}

Deno.test("renders two pairs exactly as the current service does (golden)", async () => {
  const profiles = all([pair("acme-list-bucket-role"), pair("acme-read-bucket-role")]);
  const text = renderProfiles(profiles);
  assert.equal(
    text,
    Deno.readTextFileSync(new URL("../../tests/testdata/two_pairs.aws_config", import.meta.url)),
  );
  assert.deepEqual(await readBack(text), asRecord(profiles));
});

Deno.test("role names with . + = , @ - _ and paths are read back by the SDK's reader", async () => {
  const names = ["a.b", "a+b", "a=b", "a,b", "a@b", "a-b", "a_b", "x.y+z=w,v@u-t_s"];
  const pairs = [...names.map((n) => pair(n)), {
    assetRoleArn: "arn:aws:iam::222222222222:role/team/data.sci/reader",
    proxyRoleArn: "arn:aws:iam::111111111111:role/proxies/reader",
  }];
  const built = profilesFor(pairs, { webIdentityTokenFile: TOKEN });
  const profiles = built.flatMap((p) => p.profiles);
  const read = await readBack(renderProfiles(profiles));
  assert.deepEqual(read, asRecord(profiles));
  // Every pair has its own profile, distinct, chaining to the right roles.
  assert.equal(new Set(built.map((p) => p.name)).size, pairs.length);
  for (const p of built) {
    assert.equal(read[p.name].role_arn, p.pair.assetRoleArn);
    assert.equal(read[p.name].source_profile, p.sourceName);
    assert.equal(read[p.sourceName!].role_arn, p.pair.proxyRoleArn);
    assert.equal(read[p.sourceName!].web_identity_token_file, TOKEN);
  }
  assert.equal(built.at(-1)!.name, "reader");
  assert.equal(built.find((p) => p.pair.assetRoleArn.endsWith("/a.b"))!.name, "a.b");
});

Deno.test("asset roles with one name in different accounts get distinct, order-independent names", () => {
  const a = pair("reader", "222222222222");
  const b = pair("reader", "333333333333");
  const names = profilesFor([a, b], { webIdentityTokenFile: TOKEN }).map((p) => p.name);
  assert.deepEqual(names, ["reader-222222222222", "reader-333333333333"]);
  const reversed = profilesFor([b, a], { webIdentityTokenFile: TOKEN }).map((p) => p.name);
  assert.deepEqual(reversed, ["reader-333333333333", "reader-222222222222"]);
  // `a=b` and `a,b` both sanitize to `a_b` in one account: a hash keeps them apart.
  const clash = profilesFor([pair("a=b"), pair("a,b"), pair("src_x"), pair("x")], {
    webIdentityTokenFile: TOKEN,
  });
  const emitted = clash.flatMap((p) => p.profiles.map((x) => x.name));
  assert.equal(new Set(emitted).size, emitted.length);
  assert.match(clash[0].name, /^a_b-222222222222-[0-9a-f]{8}$/);
});

Deno.test("one profile per asset role when several proxies lead to it", () => {
  const built = profilesFor([pair("r"), {
    assetRoleArn: pair("r").assetRoleArn,
    proxyRoleArn: "arn:aws:iam::111111111111:role/r-2",
  }], {
    webIdentityTokenFile: TOKEN,
  });
  assert.equal(built.length, 1);
  assert.equal(built[0].pair.proxyRoleArn, "arn:aws:iam::111111111111:role/r");
});

Deno.test("a pair without a proxy is one profile that assumes the asset role with the token", async () => {
  const built = profilesFor([pair("direct", "222222222222", null)], {
    webIdentityTokenFile: TOKEN,
  });
  assert.equal(built[0].sourceName, undefined);
  assert.deepEqual(await readBack(renderProfiles(built[0].profiles)), {
    direct: { web_identity_token_file: TOKEN, role_arn: "arn:aws:iam::222222222222:role/direct" },
  });
});

Deno.test("region, sts_regional_endpoints and role_session_name go on every profile", async () => {
  const profiles = all([pair("r")], {
    region: "us-west-2",
    stsRegionalEndpoints: "regional",
    roleSessionName: "jdoe",
  });
  const read = await readBack(renderProfiles(profiles));
  for (const name of ["r", "src_r"]) {
    assert.equal(read[name].region, "us-west-2");
    assert.equal(read[name].sts_regional_endpoints, "regional");
    assert.equal(read[name].role_session_name, "jdoe");
  }
});

Deno.test("role session names follow STS's rules", () => {
  assert.equal(roleSessionName("jdoe"), "jdoe");
  assert.equal(roleSessionName("jane doe/ü"), "jane_doe__");
  assert.equal(roleSessionName("x"), "irsa-x");
  assert.equal(roleSessionName("a".repeat(100)).length, 64);
  assert.match(roleSessionName("john.doe@example.com"), /^[\w+=,.@-]{2,64}$/);
});

Deno.test("refuses malformed ARNs and values the reader would cut short", () => {
  for (
    const arn of [
      "arn:aws:iam::1:role/x",
      "arn:aws:s3:::bucket",
      "arn:aws:iam::111111111111:role/a#b",
      "arn:aws:iam::111111111111:role/",
    ]
  ) {
    assert.throws(
      () => profilesFor([{ assetRoleArn: arn }], { webIdentityTokenFile: TOKEN }),
      (e) => e instanceof AppError && e.code === "invalid_arn",
    );
  }
  assert.throws(
    () => profilesFor([pair("r")], { webIdentityTokenFile: "/tmp/a #b" }),
    (e) => e instanceof AppError,
  );
});

const USER_FILE = `# my own settings
[default]
region = eu-central-1

[profile mine]   ; hand-made
role_arn = arn:aws:iam::333333333333:role/mine
credential_source = Ec2InstanceMetadata
`;

Deno.test("merging keeps a user's sections and comments byte for byte and replaces ours", async () => {
  const first = mergeConfig(
    USER_FILE,
    all([pair("acme-list-bucket-role"), pair("acme-read-bucket-role")]),
  );
  assert.ok(first.startsWith(USER_FILE));
  const second = mergeConfig(
    first + "\n[profile later]\nregion = us-east-1\n",
    all([pair("acme-read-bucket-role")]),
  );
  assert.ok(second.startsWith(USER_FILE));
  assert.ok(second.endsWith("[profile later]\nregion = us-east-1\n"));
  const read = await readBack(second);
  assert.deepEqual(Object.keys(read).sort(), [
    "acme-read-bucket-role",
    "default",
    "later",
    "mine",
    "src_acme-read-bucket-role",
  ]);
  assert.equal(read.mine.credential_source, "Ec2InstanceMetadata");
  // Idempotent: merging the same profiles again changes nothing.
  assert.equal(mergeConfig(second, all([pair("acme-read-bucket-role")])), second);
});

Deno.test("merging replaces a hand-made section that names a managed profile", async () => {
  const text =
    "[profile r]\nrole_arn = arn:aws:iam::999999999999:role/evil\n\n[profile keep]\nregion = x\n";
  const merged = mergeConfig(text, all([pair("r")]));
  const read = await readBack(merged);
  assert.equal(read.r.role_arn, "arn:aws:iam::222222222222:role/r");
  assert.equal(read.keep.region, "x");
  assert.ok(!merged.includes("evil"));
});

Deno.test("merging into an empty file and with no profiles", async () => {
  const merged = mergeConfig("", all([pair("r")]));
  assert.deepEqual(Object.keys(await readBack(merged)).sort(), ["r", "src_r"]);
  const emptied = mergeConfig(USER_FILE + "\n" + merged, []);
  assert.ok(emptied.startsWith(USER_FILE));
  assert.deepEqual(Object.keys(await readBack(emptied)).sort(), ["default", "mine"]);
});

Deno.test("section names follow the SDK reader's rules", () => {
  assert.equal(sectionName("[profile a.b]"), "a.b");
  assert.equal(sectionName("  [profile x] # c"), "x");
  assert.equal(sectionName("[default]"), "default");
  assert.equal(sectionName("role_arn = [x]"), undefined);
  assert.equal(sectionName("# [profile x]"), undefined);
});

Deno.test("the published pattern of the config file matches whatever profiles are rendered", () => {
  const pattern = new RegExp(PROFILES_PATTERN, "u");
  const roleName = fc.stringMatching(/^[\w+=,.@-]{1,64}$/);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(roleName, fc.boolean()), { maxLength: 6 }),
      fc.option(fc.constantFrom("us-west-2", "eu-central-1"), { nil: undefined }),
      (roles, region) => {
        const text = renderProfiles(
          all(
            roles.map(([name, chained]) =>
              pair(name, "222222222222", chained ? "1".repeat(12) : null)
            ),
            {
              region,
            },
          ),
        );
        assert.ok(pattern.test(text), text);
      },
    ),
  );
  assert.ok(!pattern.test("[profile a]\nrole_arn=x\n"));
});
