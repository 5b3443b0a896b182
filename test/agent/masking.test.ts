import { AttemptSandbox } from "../../protocol/index.ts";
import { describe, expect, it } from "vitest";
import { MASK, maskedHooks, MIN_MASKED_CHARS, SecretMasker } from "../../agent/src/runner/masking.ts";
import { prepareJob, type PrepareDeps } from "../../agent/src/runner/prepare.ts";
import { takesPrestarted } from "../../agent/src/runner/prestart.ts";
import type { RunHooks } from "../../agent/src/runner/runner.ts";
import { JobRequest } from "../../protocol/index.ts";

/** What a stream masker passes on for `text` cut at `cuts`, all of it, then ended. */
function streamed(masker: SecretMasker, text: string, cuts: number[]): string {
  const bytes = Buffer.from(text);
  const s = masker.stream();
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(s.write(bytes.subarray(from, cut)));
    from = cut;
  }
  out.push(s.end());
  return Buffer.concat(out).toString();
}

describe("SecretMasker", () => {
  const masker = new SecretMasker(["hunter2-token", undefined]);

  it("masks a value in the middle of a line, and each time it comes", () => {
    expect(masker.text("key=hunter2-token; ok")).toBe(`key=${MASK}; ok`);
    expect(masker.text("hunter2-token hunter2-tokenhunter2-token!")).toBe(`${MASK} ${MASK}!`);
    expect(masker.text("hunter2-toke is not it")).toBe("hunter2-toke is not it");
  });

  it("masks values that overlap in the output as one, showing no part of either", () => {
    const m = new SecretMasker(["abcdef", "defghi"]);
    expect(m.text("x abcdefghi y")).toBe(`x ${MASK} y`);
    expect(new SecretMasker(["secret", "secretive"]).text("so secretive")).toBe(`so ${MASK}`);
  });

  it(`leaves values under ${MIN_MASKED_CHARS} characters alone, counting characters, not bytes`, () => {
    const m = new SecretMasker(["abc", "ééé", "éééé"]);
    expect(m.text("abc ééé éééé")).toBe(`abc ééé ${MASK}`);
    expect(new SecretMasker(["no", ""]).empty).toBe(true);
  });

  it("masks a multi-line value line by line, whatever it is printed with", () => {
    const key = "-----BEGIN KEY-----\r\nAAAABBBBCCCC\nDDDD\n-----END KEY-----\n";
    const m = new SecretMasker([key]);
    expect(m.text(key)).toBe(`${MASK}\r\n${MASK}\n${MASK}\n${MASK}\n`);
    expect(m.text("line: AAAABBBBCCCC")).toBe(`line: ${MASK}`);
  });
});

describe("StreamMasker", () => {
  const masker = new SecretMasker(["hunter2-token", "abcd", "cdefgh"]);
  const text = "a hunter2-token, abcdefgh and abcd then cd plain\nhunter2-token\n";

  it("masks a value cut by a chunk boundary anywhere, as masking the whole would", () => {
    const whole = masker.text(text);
    expect(whole).toBe(`a ${MASK}, ${MASK} and ${MASK} then cd plain\n${MASK}\n`);
    const n = Buffer.byteLength(text);
    for (let i = 0; i <= n; i++) {
      expect(streamed(masker, text, [i])).toBe(whole);
      for (let j = i; j <= n; j += 3) expect(streamed(masker, text, [i, j])).toBe(whole);
    }
  });

  it("masks a value fed one byte at a time", () => {
    const bytes = [...Array(Buffer.byteLength(text)).keys()];
    expect(streamed(masker, text, bytes)).toBe(masker.text(text));
  });

  it("masks as masking the whole would, for any values and cuts (seeded random cases)", () => {
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 48271) % 2147483647), seed % n);
    const word = (len: number) => Array.from({ length: len }, () => "abc"[rand(3)]).join("");
    for (let round = 0; round < 3000; round++) {
      const values = Array.from({ length: 1 + rand(3) }, () => word(MIN_MASKED_CHARS + rand(3)));
      const m = new SecretMasker(values);
      const output = word(rand(30));
      const cuts = Array.from({ length: rand(5) }, () => rand(output.length + 1)).sort((a, b) => a - b);
      expect(streamed(m, output, cuts), `${JSON.stringify(values)} ${output} ${cuts}`).toBe(m.text(output));
    }
  });

  it("holds back only what may begin a value, so a finished line goes out at once", () => {
    const s = masker.stream();
    expect(s.write(Buffer.from("progress 10%\n")).toString()).toBe("progress 10%\n");
    expect(s.write(Buffer.from("token hunter2-")).toString()).toBe("token ");
    expect(s.write(Buffer.from("token\n")).toString()).toBe(`${MASK}\n`);
    expect(s.write(Buffer.from("hunt")).toString()).toBe("");
    expect(s.end().toString()).toBe("hunt");
  });

  it("never shows the rest of a value whose mask already went out", () => {
    const s = masker.stream();
    // "abcd" is whole, but its "cd" may begin "cdefgh": the mask goes out, the "cd" is held as already masked.
    expect(s.write(Buffer.from("xxabcd")).toString()).toBe(`xx${MASK}`);
    expect(s.write(Buffer.from("zz")).toString()).toBe("zz");
    const t = masker.stream();
    expect(t.write(Buffer.from("xxabcd")).toString() + t.write(Buffer.from("efgh!")).toString() + t.end().toString()).toBe(`xx${MASK}!`);
  });

  it("keeps a multi-byte character cut by a chunk whole", () => {
    const m = new SecretMasker(["€uro-secret"]);
    const euro = Buffer.from("€");
    const s = m.stream();
    const out = Buffer.concat([s.write(Buffer.concat([Buffer.from("price "), euro.subarray(0, 2)])), s.write(Buffer.concat([euro.subarray(2), Buffer.from("5 and €uro-secret")])), s.end()]);
    expect(out.toString()).toBe(`price €5 and ${MASK}`);
  });
});

describe("maskedHooks", () => {
  it("masks each stream on its own and what the run says, and passes on what was held when it ends", () => {
    const seen: string[] = [];
    const hooks: RunHooks = { started() {}, congested: () => false, output: (s, c) => void seen.push(`${s}:${c.toString()}`), system: (t) => void seen.push(`system:${t}`) };
    const masked = maskedHooks(hooks, new SecretMasker(["s3cr3t-value"]));
    masked.output("stdout", Buffer.from("out s3cr3t-"));
    masked.output("stderr", Buffer.from("err s3cr3t-value\n"));
    masked.output("stdout", Buffer.from("value\nend s3c"));
    masked.system("[gridx: fetch of https://s3cr3t-value@host failed]");
    masked.end();
    expect(seen).toEqual(["stdout:out ", `stderr:err ${MASK}\n`, `stdout:${MASK}\nend `, `system:[gridx: fetch of https://${MASK}@host failed]`, "stdout:s3c"]);
  });
});

describe("a job's secrets on the agent", () => {
  const spec = JobRequest.parse({ kind: "python", project: "lab", python: { script: "print(1)" }, secrets: { API_KEY: "api", TOKEN: "tok" } });
  const hooks: RunHooks = { started() {}, output() {}, system() {}, congested: () => false };

  it("never go to a prestarted sandbox, which would take them from task.json in the job's folder", () => {
    expect(takesPrestarted({ spec, gpuIndices: [] })).toBe(false);
    expect(takesPrestarted({ spec: { ...spec, secrets: {} }, gpuIndices: [] })).toBe(true);
  });

  it("fail the job input_error, naming the secret, when one did not come with the assignment", async () => {
    const folder = { dir: "/nonexistent", input: "/nonexistent/input", output: "/nonexistent/output", code: "/nonexistent/code" };
    // Nothing of the job is prepared, so it needs none of the deps.
    const prepared = await prepareJob({} as PrepareDeps, { jobId: "j_1", attempt: 1, spec, gpuIndices: [], inputs: [], sandbox: AttemptSandbox.parse({}), secretEnv: { API_KEY: "v-1234" } }, folder, null, hooks, new AbortController().signal);
    expect(prepared).toMatchObject({ ok: false, verdict: { exit_code: null, failure_reason: "input_error" } });
    expect(!prepared.ok && prepared.verdict.message).toMatch(/secret tok \(for TOKEN\).*deleted from project lab/);
  });
});
