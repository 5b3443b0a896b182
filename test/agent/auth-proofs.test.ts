import { describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/src/config.ts";
import { AuthProofs } from "../../agent/src/repos/auth-proofs.ts";

const url = "https://git.example.com/acme/private.git";

function proofs(ttlMs = 300_000) {
  const clock = { now: 0 };
  return { clock, proofs: new AuthProofs(ttlMs, () => clock.now) };
}

describe("AuthProofs", () => {
  it("admits a credential only after the origin accepted that same credential, until the TTL runs out", () => {
    const { clock, proofs: p } = proofs();
    expect(p.admits(url, "tok-a")).toBe(false);
    p.prove(url, "tok-a");
    expect(p.admits(url, "tok-a")).toBe(true);
    expect(p.admits(url, "tok-b")).toBe(false);
    expect(p.admits(url, undefined)).toBe(false);
    expect(p.admits("https://git.example.com/acme/other.git", "tok-a")).toBe(false);
    clock.now = 299_999;
    expect(p.admits(url, "tok-a")).toBe(true);
    clock.now = 300_000;
    expect(p.admits(url, "tok-a")).toBe(false);
  });

  it("lets an anonymous proof (a public repository) admit every job", () => {
    const { clock, proofs: p } = proofs();
    p.prove(url, undefined);
    expect(p.admits(url, undefined)).toBe(true);
    expect(p.admits(url, "any-token")).toBe(true);
    clock.now = 300_000;
    expect(p.admits(url, "any-token")).toBe(false);
  });

  it("drops a credential's proof when the origin refuses it, and keeps the others", () => {
    const { proofs: p } = proofs();
    p.prove(url, "tok-a");
    p.prove(url, "tok-b");
    p.refuse(url, "tok-a");
    expect(p.admits(url, "tok-a")).toBe(false);
    expect(p.admits(url, "tok-b")).toBe(true);
  });

  it("with a TTL of 0 admits nothing, so every cached commit is checked with the origin", () => {
    const { proofs: p } = proofs(0);
    p.prove(url, "tok-a");
    p.prove(url, undefined);
    expect(p.admits(url, "tok-a")).toBe(false);
    expect(p.admits(url, undefined)).toBe(false);
  });

  it("renews a proof from the time of the latest acceptance", () => {
    const { clock, proofs: p } = proofs(100);
    p.prove(url, "tok-a");
    clock.now = 90;
    p.prove(url, "tok-a");
    clock.now = 150;
    expect(p.admits(url, "tok-a")).toBe(true);
  });
});

describe("--git-auth-ttl-s", () => {
  const env = { GRIDX_URL: "https://cp.example.com", GRIDX_AGENT_TOKEN: "gxa_0123456789", GRIDX_AGENT_NAME: "box" };
  it("defaults to 300 s, is read from the flag over the environment, and may be 0 but not negative", () => {
    expect(loadConfig([], env)).toMatchObject({ ok: true, config: { gitAuthTtlS: 300 } });
    expect(loadConfig(["--git-auth-ttl-s", "30"], { ...env, GRIDX_GIT_AUTH_TTL_S: "60" })).toMatchObject({ ok: true, config: { gitAuthTtlS: 30 } });
    expect(loadConfig([], { ...env, GRIDX_GIT_AUTH_TTL_S: "0" })).toMatchObject({ ok: true, config: { gitAuthTtlS: 0 } });
    expect(loadConfig([], { ...env, GRIDX_GIT_AUTH_TTL_S: "-1" })).toMatchObject({ ok: false, error: expect.stringMatching(/^gitAuthTtlS/) });
  });
});
