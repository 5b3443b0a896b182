import { describe, expect, it } from "vitest";
import { addressProblem, checkDockerfile, checkTriggers, DOCKERFILE_MAX_BYTES, extractFlags, imageRefProblem, lexWord, registryHost } from "../../agent/src/repos/dockerfile-check.ts";
import { tarEntry } from "../../agent/src/repos/git-cache.ts";

/** The Dockerfile's refusals and image uses, from its text. */
const check = (text: string) => checkDockerfile(Buffer.from(text));
const refusals = (text: string) => check(text).refusals;
const refs = (text: string) => check(text).images.map((i) => `${i.line} ${i.how} ${i.ref}`);

describe("ADD sources", () => {
  it("refuses a URL or git source in any case, form or flag, naming the line", () => {
    for (const add of [
      "ADD http://169.254.169.254/latest/meta-data /x",
      "add https://127.0.0.1:8080/f /x",
      "Add --chown=1:1 --chmod=644 HTTP://example.com/f /x",
      'ADD ["http://127.0.0.1/f", "/x"]',
      'ADD ["\\u0068ttp://127.0.0.1/f", "/x"]',
      "ADD git@github.com:acme/repo.git /src",
      "ADD git://example.com/repo /src",
      "ADD ssh://git@example.com/repo /src",
      "ADD a.txt http://127.0.0.1/f /dst/",
      'ADD "http://127.0.0.1/f" /x',
      "ADD h\\ttp://127.0.0.1/f /x",
      "ONBUILD ADD http://127.0.0.1/f /x",
    ]) {
      // The instruction in the expectation, so a failure names it.
      expect({ add, refusals: refusals(`FROM gridx/python:latest\n${add}\n`) }).toEqual({ add, refusals: [expect.stringMatching(/^line 2: (ADD|ONBUILD) .*: the Docker engine fetches \S+ itself, on the host's network/)] });
    }
  });

  it("refuses a source with a variable, which ENV or ARG could make a URL", () => {
    expect(refusals("FROM gridx/python:latest\nARG U=http://127.0.0.1/f\nADD $U /x\n")[0]).toMatch(/^line 3: ADD \$U \/x: the source \$U holds a variable/);
    expect(refusals("FROM gridx/python:latest\nADD ${U} /x\n")).toHaveLength(1);
  });

  it("joins continuation lines, skips comments inside them, and honours # escape=`", () => {
    expect(refusals("FROM gridx/python:latest\nRUN true\nADD \\\n  # a comment\n\n  http://127.0.0.1/f /x\n")[0]).toMatch(/^line 3: ADD +http:\/\/127\.0\.0\.1\/f \/x:/);
    expect(refusals("# escape=`\nFROM gridx/python:latest\nADD `\n  http://127.0.0.1/f /x\n")[0]).toMatch(/^line 3: ADD/);
    // With backtick as the escape, a line ending in \ is not continued: the ADD stands on its own line.
    expect(refusals("# escape=`\nFROM gridx/python:latest\nRUN echo \\\nADD http://127.0.0.1/f /x\n")).toHaveLength(1);
  });

  it("reads an escape directive both ways when an engine may not honour it, so neither reading hides an ADD", () => {
    // Docker 20.10 stops at the first directive that is not escape: it reads this with \ and so continues the RUN; newer engines read it with `.
    expect(refusals("# syntax=docker/dockerfile:1\n# escape=`\nFROM gridx/python:latest\nRUN echo \\\nADD http://127.0.0.1/f /x\n")).toHaveLength(1);
  });

  it("lets files of the repository through, COPY included", () => {
    expect(refusals('FROM gridx/python:latest\nADD requirements.txt /r.txt\nADD ["a b.txt", "/x"]\nCOPY --chown=1:1 . /src\nCOPY http.txt /x\nRUN curl http://example.com\n')).toEqual([]);
  });

  it("strips a UTF-8 BOM and leading Unicode spaces as Docker does, and refuses instruction names that are not ASCII", () => {
    expect(refusals("\uFEFFFROM gridx/python:latest\n\u00a0ADD http://127.0.0.1/f /x\n")).toHaveLength(1);
    expect(refusals("FROM gridx/python:latest\nONBU\u0130LD ADD http://127.0.0.1/f /x\n")[0]).toMatch(/not plain ASCII/);
  });

  it("refuses what it cannot read: NUL bytes, more than the bound", () => {
    expect(refusals("FROM x\0\n")[0]).toMatch(/NUL bytes/);
    expect(checkDockerfile(Buffer.alloc(DOCKERFILE_MAX_BYTES + 1, "a")).refusals[0]).toMatch(/larger than 1024 KiB/);
  });
});

describe("FROM and COPY --from", () => {
  it("refuses loopback, private, IP-literal and localhost registries, after --platform and in any stage", () => {
    for (const from of [
      "FROM 127.0.0.1:5000/x",
      "from --platform=linux/amd64 10.0.0.5/x:1 AS build",
      "FROM 8.8.8.8/x",
      "FROM localhost:5000/x",
      "FROM LOCALHOST/x",
      "FROM registry.localhost/x",
      "FROM 127.1:5000/x",
      "FROM 2130706433:5000/x",
      "FROM 0x7f.0.0.1/x",
      "FROM [::1]:5000/x",
    ]) {
      expect({ from, refusals: refusals(`${from}\n`) }).toEqual({ from, refusals: [expect.stringMatching(/^line 1: FROM .*(IP address|IPv6 address|this machine)/)] });
    }
    expect(refusals("FROM gridx/python:latest AS a\nFROM a\nFROM 169.254.169.254/x\n")[0]).toMatch(/^line 3: FROM/);
  });

  it("refuses image ids and the agent's own environment images", () => {
    expect(refusals("FROM 3f1a2b\n")[0]).toMatch(/names an image by its id/);
    expect(refusals("FROM sha256:3f1a2b3c\n")[0]).toMatch(/names an image by its id/);
    expect(refusals("FROM gridx-env:0123456789abcdef\n")[0]).toMatch(/this agent's environment images/);
    expect(refusals("FROM docker.io/library/gridx-env:1\n")[0]).toMatch(/this agent's environment images/);
  });

  it("takes stage names and earlier stage indexes as stages, anything else in COPY --from as an image", () => {
    const text = ["FROM gridx/python:latest AS Build", "FROM build", "COPY --from=build /a /a", "COPY --from=0 /a /b", "COPY --from=ghcr.io/acme/tool:1 /t /t", "COPY --from=2 /a /c", "FROM scratch", "COPY --from=127.0.0.1:5000/x /a /d"].join("\n");
    expect(refs(text)).toEqual(["1 FROM gridx/python:latest", "5 COPY --from ghcr.io/acme/tool:1"]);
    // Index 2 is this stage itself, so an image: a bare number Docker could take as an id prefix.
    expect(check(text).refusals).toEqual([expect.stringMatching(/^line 6: COPY --from=2 .*names an image by its id/), expect.stringMatching(/^line 8: COPY .*IP address/)]);
  });

  it("substitutes global ARGs with a plain default, and refuses any other variable", () => {
    expect(refs("ARG PY=3.11\nARG REG=ghcr.io\nFROM ${REG}/acme/python:$PY-slim\n")).toEqual(["3 FROM ghcr.io/acme/python:3.11-slim"]);
    expect(refusals('ARG REG="127.0.0.1:5000"\nFROM ${REG}/x\n')[0]).toMatch(/^line 2: FROM .*a variable, quoting or escape the agent cannot resolve/);
    expect(refusals("ARG REG=127.0.0.1:5000\nFROM $REG/x\n")[0]).toMatch(/IP address/);
    expect(refusals("FROM ${UNDECLARED}x\n")[0]).toMatch(/cannot resolve/);
    expect(refusals("ARG R\nFROM $R/x\n")[0]).toMatch(/cannot resolve/);
    expect(refusals("ARG R=a\nFROM ${R:-127.0.0.1:5000}/x\n")[0]).toMatch(/cannot resolve/);
    // An ARG inside a stage is not one FROM sees.
    expect(refusals("FROM gridx/python:latest\nARG R=ghcr.io\nFROM $R/x\n")[0]).toMatch(/^line 3: .*cannot resolve/);
    expect(refusals("FROM gridx/python:latest\nCOPY --from=$X /a /b\n")[0]).toMatch(/COPY --from with a variable/);
  });

  it("takes quotes and escapes off a FROM as Docker's lexer does", () => {
    expect(refusals('FROM "127.0.0.1:5000/x"\n')[0]).toMatch(/IP address/);
    expect(refusals("FROM 127.0.0.1\\:5000/x\n")[0]).toMatch(/IP address/);
  });

  it("checks ONBUILD COPY --from as an image, never as a stage of this file", () => {
    expect(refusals("FROM gridx/python:latest AS builder\nONBUILD COPY --from=builder /x /y\n")).toEqual([]);
    expect(refs("FROM gridx/python:latest AS builder\nONBUILD COPY --from=builder /x /y\n")).toEqual(["1 FROM gridx/python:latest", "2 COPY --from builder"]);
    expect(refusals("FROM gridx/python:latest\nONBUILD COPY --from=10.1.1.1/x /x /y\n")).toHaveLength(1);
  });
});

describe("the parts", () => {
  it("reads flags as Docker's extractBuilderFlags does", () => {
    expect(extractFlags('--from="a b" --link  src dst')).toEqual({ flags: ["from=a b", "link"], rest: "src dst" });
    expect(extractFlags("-- --from=x a")).toEqual({ flags: [], rest: " --from=x a" });
  });

  it("lexes words: escapes, quotes, $NAME and ${NAME}; null for what it cannot be sure of", () => {
    const vars = new Map([["A", "x"]]);
    expect(lexWord("'$A'\"$A\"${A}\\$A", "\\", vars)).toBe("$Axx$A");
    expect(lexWord("`$A", "`", vars)).toBe("$A");
    expect(lexWord("$B", "\\", vars)).toBeNull();
    expect(lexWord('"open', "\\", vars)).toBeNull();
  });

  it("finds the registry host as Docker does, and wider", () => {
    expect([registryHost("python:3"), registryHost("acme/tool"), registryHost("ghcr.io/acme/t"), registryHost("localhost/x"), registryHost("Reg/x"), registryHost("h:5000/x")]).toEqual([null, null, "ghcr.io", "localhost", "Reg", "h:5000"]);
    expect(imageRefProblem("ghcr.io/acme/tool:1@sha256:abc")).toBeNull();
    expect(imageRefProblem("acme/tool caf\u00e9")).toMatch(/not an image reference/);
  });

  it("says which resolved addresses a build may not reach", () => {
    expect(addressProblem("127.0.0.1", [])).toMatch(/loopback/);
    expect(addressProblem("169.254.169.254", [])).toMatch(/metadata/);
    expect(addressProblem("100.64.1.1", [])).toMatch(/CGNAT/);
    expect(addressProblem("203.0.113.7", ["203.0.113.0/24"])).toMatch(/--egress-deny/);
    expect(addressProblem("203.0.113.7", [])).toBeNull();
    expect(addressProblem("::1", [])).toMatch(/loopback/);
    expect(addressProblem("fe80::1", [])).toMatch(/link-local/);
    expect(addressProblem("fd00::1", [])).toMatch(/unique local/);
    expect(addressProblem("::ffff:10.0.0.1", [])).toMatch(/RFC 1918/);
    expect(addressProblem("::ffff:7f00:1", [])).toMatch(/loopback/);
    expect(addressProblem("2606:4700::1111", [])).toBeNull();
  });

  it("refuses a base image's ONBUILD triggers that fetch a URL or copy from an image", () => {
    expect(checkTriggers("acme/base:1", ["RUN make", "COPY . /src", "ADD app.tar /app"])).toEqual([]);
    expect(checkTriggers("acme/base:1", ["ADD http://169.254.169.254/ /x"])).toEqual([expect.stringMatching(/^base image acme\/base:1 has ONBUILD ADD http:\/\/169\.254\.169\.254\/ \/x: the Docker engine fetches/)]);
    expect(checkTriggers("acme/base:1", ["COPY --from=ghcr.io/acme/private:1 /a /b"])[0]).toMatch(/COPY --from in a trigger/);
  });

  it("finds one entry of a tar as git archive writes it, long names and symlinks included", () => {
    const header = (name: string, type: string, size: number, prefix = "") => {
      const h = Buffer.alloc(512);
      h.write(name, 0);
      h.write(size.toString(8).padStart(11, "0"), 124);
      h.write(type, 156);
      h.write("ustar", 257);
      h.write(prefix, 345);
      return h;
    };
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
    const body = Buffer.from("FROM x\n");
    const pax = Buffer.from(`31 path=${"d/".repeat(6)}Dockerfile\n`);
    const tar = Buffer.concat([
      header("pax_global_header", "g", 52),
      pad(Buffer.from("52 comment=0123456789012345678901234567890123456789\n")),
      header("sub/", "5", 0),
      header("Dockerfile", "0", body.length, "sub"),
      pad(body),
      header("link", "2", 0),
      header("PaxHeader", "x", pax.length),
      pad(pax),
      header("truncated", "0", body.length),
      pad(body),
      Buffer.alloc(1024),
    ]);
    expect(tarEntry(tar, "sub/Dockerfile")).toEqual({ kind: "file", data: body });
    expect(tarEntry(tar, "sub")).toEqual({ kind: "folder" });
    expect(tarEntry(tar, "link")).toEqual({ kind: "symlink" });
    expect(tarEntry(tar, `${"d/".repeat(6)}Dockerfile`)).toEqual({ kind: "file", data: body });
    expect(tarEntry(tar, "Dockerfile")).toBeNull();
  });
});
