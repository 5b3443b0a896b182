import { afterEach, describe, expect, it } from "vitest";
import { installLines, shQuote } from "../../control-plane/src/dashboard/install-lines.ts";
import { ORIGIN, signIn, ui } from "./dashboard-client.ts";
import { ADMIN, agentToken, api, caps, FakeAgent, newProject, uniquePool, userToken } from "./helpers.ts";

const agents: FakeAgent[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) a.close();
});

async function join(token: string, name: string, hello: Parameters<typeof FakeAgent.join>[1] = {}) {
  const joined = await FakeAgent.join(token, { name, ...hello });
  agents.push(joined.agent);
  return joined;
}

/** The text of the element with this id in a page, tags stripped and entities decoded. */
function textOf(html: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</code>`).exec(html);
  if (!m) throw new Error(`no #${id} in the page`);
  return m[1]!.replace(/<[^>]+>/g, "").replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

const ADMIN_PAGES = ["/ui/onboarding", "/ui/tokens", "/ui/audit", "/ui/probes", "/ui/datasets", "/ui/pools", "/ui/pools/default", "/ui/live/onboarding?token=tok_x"];

describe("install lines", () => {
  it("quotes the token and URL for sh, and names the release to install", () => {
    const lines = installLines({ url: "https://grid.example.com", token: "gxa_a'b", version: "0.3.0" });
    expect(shQuote("gxa_a'b")).toBe(`'gxa_a'\\''b'`);
    expect(lines.linux).toBe(`sudo npm install -g gridx@0.3.0 && sudo GRIDX_AGENT_TOKEN='gxa_a'\\''b' gridx-agent install --url 'https://grid.example.com'`);
    expect(lines.docker).toBe(
      "docker run --name gridx-agent -d --restart unless-stopped --init --network host --cap-add NET_ADMIN --cgroupns host -v /var/run/docker.sock:/var/run/docker.sock " +
        `-v /var/lib/gridx-agent:/var/lib/gridx-agent -v /sys/fs/cgroup:/sys/fs/cgroup -e GRIDX_AGENT_TOKEN='gxa_a'\\''b' gridx/agent:0.3.0 --url 'https://grid.example.com'`,
    );
    expect(lines.wsl).toBe(`wsl.exe -u root -- sh -c "npm install -g gridx@0.3.0 && GRIDX_AGENT_TOKEN='gxa_a'\\''b' gridx-agent install --url 'https://grid.example.com'"`);
    expect(lines.wslTask).toContain("gridx-agent install --url 'https://grid.example.com' --no-start\" && schtasks /Create /F /SC ONLOGON /TN gridx-agent");
    expect(lines.wslTask).toContain(". /etc/gridx/agent.env; while :; do gridx-agent run; [ $? -eq 3 ] && break; sleep 5; done");
  });

  it("installs the newest release when the control plane names none", () => {
    const lines = installLines({ url: "http://127.0.0.1:8787", token: "gxa_t", version: "" });
    expect(lines.linux).toContain("npm install -g gridx && ");
    expect(lines.docker).toContain(" gridx/agent:latest ");
  });
});

describe("dashboard admin pages: who sees them", () => {
  it("links them for the admin only, and gives anyone else a 403 page", async () => {
    const admin = await signIn(ADMIN);
    const overview = await ui("/ui", { cookie: admin });
    for (const href of ["/ui/onboarding", "/ui/tokens", "/ui/audit", "/ui/probes", "/ui/datasets", "/ui/pools"]) expect(overview.text).toContain(`href="${href}"`);
    for (const path of ADMIN_PAGES) expect([path, (await ui(path, { cookie: admin })).status]).toEqual([path, 200]);

    const { token } = await userToken({ role: "owner" });
    const user = await signIn(token);
    expect((await ui("/ui", { cookie: user })).text).not.toContain('href="/ui/tokens"');
    for (const path of ADMIN_PAGES) {
      const res = await ui(path, { cookie: user });
      expect([path, res.status]).toEqual([path, 403]);
      expect(res.text).toContain("this page is for the admin");
    }
    const revoke = await ui("/ui/tokens/agent/tok_x/revoke", { cookie: user, form: {}, headers: ORIGIN });
    expect(revoke.status).toBe(403);
  });
});

describe("dashboard onboarding", () => {
  it("serves the copy buttons' script from its linted file, as JavaScript, to anyone", async () => {
    const res = await ui("/ui/assets/copy.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.text).toContain('document.querySelectorAll("button[data-copy]")');
  });

  it("issues an agent token once, shows the commands with it, and shows the worker that joins with it", async () => {
    const pool = uniquePool();
    const cookie = await signIn(ADMIN);
    const form = await ui(`/ui/onboarding?pool=${pool}`, { cookie });
    expect(form.text).toContain(`value="${pool}"`);

    const issued = await ui("/ui/onboarding", { cookie, form: { pool, name: "lab-box" }, headers: ORIGIN });
    expect(issued.status).toBe(201);
    expect(issued.headers.get("cache-control")).toContain("no-store");
    const token = textOf(issued.text, "agent-token");
    expect(token).toMatch(/^gxa_/);
    expect(textOf(issued.text, "line-linux")).toBe(`sudo npm install -g gridx@0.3.0 && sudo GRIDX_AGENT_TOKEN='${token}' gridx-agent install --url 'http://gridx.test'`);
    expect(textOf(issued.text, "line-docker")).toContain(`-e GRIDX_AGENT_TOKEN='${token}' gridx/agent:0.3.0 --url 'http://gridx.test'`);
    expect(issued.text).toContain('src="/ui/assets/copy.js"');

    // The same code path as POST /v1/agent-tokens: listed, audited, never with its text.
    const listed = (await api("/v1/agent-tokens")).json.tokens.find((t: any) => t.name === "lab-box" && t.pool === pool);
    expect(listed).toBeDefined();
    const events = (await api(`/v1/audit?action=token.issue&limit=200`)).json.events;
    const event = events.find((e: any) => e.target === listed.id);
    expect(event.detail).toEqual({ kind: "agent", name: "lab-box", pool });
    expect(JSON.stringify(events)).not.toContain(token);

    // Polled until a worker joins with this token; another token's worker in the same pool is not it.
    const watch = `/ui/live/onboarding?token=${listed.id}&pool=${pool}`;
    expect(issued.text).toContain(`data-live="${watch.replace(/&/g, "&amp;")}"`);
    await join(await agentToken(pool, "other"), "someone-else");
    const waiting = await ui(watch, { cookie, headers: { "x-gridx-fragment": "1" } });
    expect(waiting.text).toContain("No agent has connected with this token yet");
    expect(waiting.text).toContain("data-live=");
    expect(waiting.text).not.toContain("someone-else");

    await join(token, "lab-box-1", { agent_version: "0.3.0", slots: 3, caps: caps({ cpu_cores: 12, labels: { zone: "lab" } }) });
    const joined = await ui(watch, { cookie, headers: { "x-gridx-fragment": "1" } });
    expect(joined.text).toContain("lab-box-1");
    expect(joined.text).toMatch(/<dt>Agent<\/dt><dd>0\.3\.0<\/dd>/);
    expect(joined.text).toMatch(/<dt>CPUs<\/dt><dd>12<\/dd>/);
    expect(joined.text).toContain("zone=lab");
    // Found: the region stops polling.
    expect(joined.text).not.toContain("data-live=");
  });

  it("links an empty workers page to onboarding, and watches only for a named token", async () => {
    const pool = uniquePool();
    const cookie = await signIn(ADMIN);
    expect((await ui(`/ui/workers?pool=${pool}`, { cookie })).text).toContain(`href="/ui/onboarding?pool=${pool}"`);
    expect((await ui("/ui/live/onboarding", { cookie, headers: { "x-gridx-fragment": "1" } })).status).toBe(400);
  });

  it("says why a token was refused, naming the field, and keeps what was typed", async () => {
    const cookie = await signIn(ADMIN);
    const res = await ui("/ui/onboarding", { cookie, form: { pool: "Bad Pool!", name: "x" }, headers: ORIGIN });
    expect(res.status).toBe(400);
    expect(res.text).toContain("Could not issue the token: pool");
    expect(res.text).toContain('value="Bad Pool!"');
  });

  it("refuses a token form posted from another origin", async () => {
    const pool = uniquePool();
    const cookie = await signIn(ADMIN);
    const res = await ui("/ui/onboarding", { cookie, form: { pool, name: "csrf" }, headers: { origin: "https://evil.example" } });
    expect(res.status).toBe(403);
    expect((await api("/v1/agent-tokens")).json.tokens.some((t: any) => t.pool === pool)).toBe(false);
  });
});

describe("dashboard tokens page", () => {
  it("lists agent and API tokens with their pool or user and revokes each through its own route", async () => {
    const pool = uniquePool();
    const agent = await agentToken(pool, "to-revoke");
    const agentId = (await api("/v1/agent-tokens")).json.tokens.find((t: any) => t.pool === pool).id;
    const user = await userToken();
    const apiId = user.tokenId;
    const cookie = await signIn(ADMIN);

    const list = await ui("/ui/tokens", { cookie });
    expect(list.text).toContain(`data-token="${agentId}"`);
    expect(list.text).toContain(`pool ${pool}`);
    expect(list.text).toContain(`user ${user.user}`);
    expect(list.text).toContain(`action="/ui/tokens/agent/${agentId}/revoke"`);
    expect(list.text).not.toContain(agent);

    // Another origin's post changes nothing.
    expect((await ui(`/ui/tokens/agent/${agentId}/revoke`, { cookie, form: {}, headers: { origin: "https://evil.example" } })).status).toBe(403);
    await join(agent, "still-good");

    const revoked = await ui(`/ui/tokens/agent/${agentId}/revoke`, { cookie, form: {}, headers: ORIGIN });
    expect(revoked.status).toBe(303);
    expect(revoked.headers.get("location")).toBe("/ui/tokens?done=token_revoked");
    expect((await ui("/ui/tokens?done=token_revoked", { cookie })).text).toContain("Token revoked");
    expect((await ui("/ui/tokens", { cookie })).text).not.toContain(`data-token="${agentId}"`);
    await expect(FakeAgent.connect(agent)).rejects.toThrow(/401/);

    expect((await ui(`/ui/tokens/user/${apiId}/revoke`, { cookie, form: {}, headers: ORIGIN })).status).toBe(303);
    expect((await api("/v1/me", { token: user.token })).status).toBe(401);
    // An agent token's id under the API kind is not found, as the API says.
    expect((await ui(`/ui/tokens/user/${agentId}/revoke`, { cookie, form: {}, headers: ORIGIN })).status).toBe(404);
  });
});

describe("dashboard audit page", () => {
  it("filters by action and project and pages with the API's cursor", async () => {
    const project = await newProject();
    await userToken({ project, role: "member" });
    await userToken({ project, role: "viewer" });
    const cookie = await signIn(ADMIN);
    const page = await ui(`/ui/audit?action=member.put&project=${project}&limit=1`, { cookie });
    expect(page.text).toContain("<code>member.put</code>");
    expect(page.text).not.toContain("<code>token.issue</code>");
    expect(page.text).toContain(`<option value="member.put" selected="">`);
    const first = /data-event="([^"]+)"/.exec(page.text)![1]!;
    const older = /href="([^"]+)" rel="next"/.exec(page.text)![1]!.replace(/&amp;/g, "&");
    expect(older).toContain(`project=${project}`);
    const next = await ui(older, { cookie });
    const second = /data-event="([^"]+)"/.exec(next.text)![1]!;
    expect(second).not.toBe(first);
    expect(next.text).toContain("<code>member.put</code>");
    expect((await ui("/ui/audit?action=no.such", { cookie })).status).toBe(400);
  });
});

describe("dashboard probes page", () => {
  it("lists a worker's probes and runs one through the API", async () => {
    const pool = uniquePool();
    const { agent, workerId } = await join(await agentToken(pool), "probed");
    const cookie = await signIn(ADMIN);
    const page = await ui(`/ui/probes?worker=${workerId}`, { cookie });
    expect(page.text).toContain("No probes on this worker yet");
    expect(page.text).toContain(`action="/ui/probes/${workerId}"`);

    // The API answers once the agent has: the agent plays its part while the form is posted.
    const sent = ui(`/ui/probes/${workerId}`, { cookie, form: { command: "uptime", timeout_s: "5" }, headers: ORIGIN });
    const probe = await agent.next("probe");
    expect(probe.payload).toMatchObject({ command: "uptime", timeout_s: 5 });
    agent.send({ type: "probe_result", payload: { probe_id: probe.payload.probe_id, status: "completed", exit_code: 0, output: "up 3 days <b>", truncated: false, error: null } });
    expect((await sent).headers.get("location")).toBe(`/ui/probes?worker=${workerId}&done=probe_done`);
    const done = await ui(`/ui/probes?worker=${workerId}&done=probe_done`, { cookie });
    expect(done.text).toContain("Probe finished");
    expect(done.text).toContain("<code>uptime</code>");
    expect(done.text).toContain("up 3 days &lt;b&gt;");
    // Answered: the table does not poll.
    expect(done.text).not.toContain("data-live=");

    const bad = await ui(`/ui/probes/${workerId}`, { cookie, form: { command: "uptime", timeout_s: "0" }, headers: ORIGIN });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("Could not run the probe: timeout_s");
    expect((await ui("/ui/probes?worker=w_nobody", { cookie })).status).toBe(404);
  });
});

describe("dashboard datasets page", () => {
  it("lists every project's datasets for the admin, and one project's when filtered", async () => {
    const [a, b] = [await newProject(), await newProject()];
    for (const [project, name] of [[a, "in-a.csv"], [b, "in-b.csv"]] as const) {
      expect((await api("/v1/datasets", { method: "POST", json: { name, size: 10, project } })).status).toBe(201);
    }
    const cookie = await signIn(ADMIN);
    const all = await ui("/ui/datasets", { cookie });
    expect(all.text).toContain("in-a.csv");
    expect(all.text).toContain("in-b.csv");
    const one = await ui(`/ui/datasets?project=${a}`, { cookie });
    expect(one.text).toContain("in-a.csv");
    expect(one.text).not.toContain("in-b.csv");
  });
});

describe("dashboard pool settings", () => {
  it("shows a pool's sandbox policy and saves the edited form through the API", async () => {
    const pool = uniquePool();
    const cookie = await signIn(ADMIN);
    expect((await ui(`/ui/pools?pool=${pool}`, { cookie })).headers.get("location")).toBe(`/ui/pools/${pool}`);
    const before = await ui(`/ui/pools/${pool}`, { cookie });
    expect(before.text).toContain("This pool has the defaults.");

    const saved = await ui(`/ui/pools/${pool}/sandbox`, {
      cookie,
      headers: ORIGIN,
      form: new URLSearchParams([["runtimes", "gvisor"], ["default_runtime", "gvisor"], ["egress", "1"], ["egress_allow", "pypi.org\n\n203.0.113.0/24\n"], ["build_network", "none"], ["images", "ghcr.io/acme/*"]]),
    });
    expect(saved.status).toBe(303);
    expect((await api(`/v1/pools/${pool}/sandbox`)).json.sandbox).toEqual({
      default_runtime: "gvisor",
      runtimes: ["gvisor"],
      egress: true,
      egress_allow: ["pypi.org", "203.0.113.0/24"],
      build_network: "none",
      images: ["ghcr.io/acme/*"],
      exec: false,
    });
    const after = await ui(`/ui/pools/${pool}?done=sandbox_saved`, { cookie });
    expect(after.text).toContain("Set by admin");
    expect(after.text).toContain('value="gvisor" checked=""');
    expect(after.text).not.toContain('value="runc" checked=""');

    const refused = await ui(`/ui/pools/${pool}/sandbox`, { cookie, headers: ORIGIN, form: { runtimes: "runc", default_runtime: "gvisor", build_network: "egress" } });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("Could not save the policy: default_runtime");
    expect((await api(`/v1/pools/${pool}/sandbox`)).json.sandbox.default_runtime).toBe("gvisor");
  });
});
