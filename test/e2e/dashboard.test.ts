import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Cookie, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, type AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, launchOnlineAgent, submit, uniqueName, waitForJob } from "./helpers.ts";

/** Screenshots of every page, desktop and phone width, for a person to look at. */
const SHOTS = join(ROOT, "test-output", "dashboard");
const PHONE = { width: 375, height: 812 };

describe("dashboard in Chromium: sign in, run Python, follow jobs, drain a worker, switch project, sign out", () => {
  const pool = uniqueName("dash");
  const workerName = uniqueName("dash-node");
  let agent: AgentProcess;
  let browser: Browser;
  let desktop: BrowserContext;
  let page: Page;

  /**
   * Screenshots the page, then the same page at phone width with the same cookie (after
   * `prepare`, if given); fails if the phone page scrolls sideways.
   */
  async function shoot(name: string, prepare?: (phonePage: Page) => Promise<void>) {
    const path = new URL(page.url()).pathname + new URL(page.url()).search;
    await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`), fullPage: true });
    const phone = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, storageState: await desktop.storageState() });
    try {
      const p = await phone.newPage();
      await p.goto(cp().url + path);
      await prepare?.(p);
      await p.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect({ page: name, overflow }).toEqual({ page: name, overflow: 0 });
    } finally {
      await phone.close();
    }
  }

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    agent = await launchOnlineAgent({ pool, name: workerName, slots: 2 });
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
    desktop = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await desktop.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop("SIGTERM");
  });

  it("refuses a wrong token, then signs in with the admin token", async () => {
    await page.goto(cp().url + "/");
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    await page.getByLabel("API or admin token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.getByRole("alert"), "That token was refused");
    await shoot("login-refused", async (p) => {
      await p.getByLabel("API or admin token").fill("not-the-token");
      await p.getByRole("button", { name: "Sign in" }).click();
      await expectText(p.getByRole("alert"), "That token was refused");
    });

    await page.getByLabel("API or admin token").fill(cp().adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Pools" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/ui");
    const cookie = (await desktop.cookies()).find((c) => c.name === "gridx_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/ui" });
  });

  it("runs a Python snippet from the editor and shows its output and exit code", async () => {
    await page.getByRole("link", { name: "Run Python" }).click();
    const editor = page.getByLabel("Python code");
    await editor.fill("for i in range(3):\n");
    await editor.press("End");
    await editor.press("Tab");
    await editor.pressSequentially('print("square", i * i)');
    expect(await editor.inputValue()).toBe('for i in range(3):\n    print("square", i * i)');
    await page.getByLabel("Pool", { exact: true }).fill(pool);
    await page.getByLabel("Timeout (seconds)").fill("60");
    await editor.press("Control+Enter");

    const status = page.locator("#run-status");
    await expectText(status, "completed", 90_000);
    await expectText(status, "exit code 0");
    const output = page.getByLabel(/^Output of job /);
    await page.waitForFunction(() => document.querySelector("pre.log")?.hasAttribute("data-done"));
    expect((await output.locator(".ln.stdout").allInnerTexts()).join("")).toBe("square 0\nsquare 1\nsquare 4\n");
    expect(new URL(page.url()).searchParams.get("job")).toMatch(/^j_/);
    await shoot("run");
  });

  it("lists the job, and shows its timeline, log and downloadable artifacts", async () => {
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByLabel("Pool", { exact: true }).fill(pool);
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("link", { name: "completed" }).click();
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({ status: "completed", pool });
    const id = new URL((await page.locator("#jobs-live a[href^='/ui/jobs/j_']").first().getAttribute("href", { timeout: 10_000 }))!, cp().url).pathname.split("/").at(-1)!;
    expect((await api(`/v1/jobs/${id}`)).json).toMatchObject({ status: "completed", pool });
    await shoot("jobs");

    await page.locator(`a[href='/ui/jobs/${id}']`).click();
    await page.getByRole("heading", { name: `Job ${id}` }).waitFor();
    const timeline = await page.locator("ol.timeline").innerText();
    for (const step of ["Submitted", "Attempt 1 assigned", `to worker ${workerName}`, "Attempt 1 started", "Attempt 1 ended", "Job completed"]) expect(timeline).toContain(step);
    expect(await page.locator("#job-exit-code").innerText()).toBe("0");
    expect(await page.getByLabel(`Log of job ${id}`).innerText()).toContain("square 4");

    // The job's log is kept as an artifact; its link goes through a presigned URL.
    await waitForJob(id, (j) => j.artifacts.some((a: any) => a.name === ".gridx/job.log"));
    await page.reload();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: ".gridx/job.log" }).click()]);
    expect(readFileSync((await download.path())!, "utf8")).toContain("square 4");
    await shoot("job");
  });

  it("cancels a sleeping job from its page", async () => {
    await page.goto(cp().url + "/ui/run");
    await page.getByLabel("Python code").fill('import time\nprint("sleeping", flush=True)\ntime.sleep(600)');
    await page.getByLabel("Pool", { exact: true }).fill(pool);
    await page.getByRole("button", { name: "Run" }).click();
    await expectText(page.getByLabel(/^Output of job /), "sleeping", 90_000);
    await expectText(page.locator("#run-status"), "running");

    await page.getByRole("link", { name: /^Details of job / }).click();
    await expectText(page.locator("#job-status"), "running");
    await shoot("job-running");
    const id = new URL(page.url()).pathname.split("/").at(-1)!;
    await page.getByRole("button", { name: "Cancel job" }).click();
    await expectText(page.getByRole("status").first(), "Cancel requested");
    await expectText(page.locator("#job-status"), "canceled");
    expect((await api(`/v1/jobs/${id}`)).json.status).toBe("canceled");
  });

  it("shows the worker's capabilities and slots, and drains and undrains it", async () => {
    await page.getByRole("link", { name: "Workers" }).click();
    const row = page.locator(`tr[data-worker="${workerName}"]`);
    await expectText(row.locator(".badge"), "online");
    const cells = await row.innerText();
    expect(cells).toContain(pool);
    expect(cells).toMatch(/\d+ \/ 2/);
    expect(cells).toMatch(/ago/);
    await shoot("workers");

    await row.getByRole("button", { name: `Drain ${workerName}` }).click();
    await expectText(page.getByRole("status").first(), "Worker drained");
    await expectText(page.locator(`tr[data-worker="${workerName}"] .badge`), "draining");
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers[0].status).toBe("draining");

    await page.locator(`tr[data-worker="${workerName}"]`).getByRole("button", { name: `Undrain ${workerName}` }).click();
    await expectText(page.getByRole("status").first(), "Worker undrained");
    expect((await api(`/v1/workers?pool=${pool}`)).json.workers[0].status).toBe("online");
  });

  it("shows the pool's queue depth, running jobs and charts on the overview, then signs out", async () => {
    await page.getByRole("link", { name: "Overview" }).click();
    const card = page.locator("section.pool", { has: page.getByRole("heading", { name: new RegExp(`^Pool ${pool}`) }) });
    await card.waitFor();
    expect(await card.locator("dl.stats").innerText()).toMatch(/Queue depth\s+0/);
    expect(await card.getByRole("img").count()).toBe(2);
    expect(await card.locator("rect.bar.completed").count()).toBeGreaterThan(0);
    await shoot("overview");

    await page.getByRole("button", { name: "Log out" }).click();
    await expectText(page.getByRole("status"), "You are signed out");
    await page.goto(cp().url + "/ui/workers");
    expect(new URL(page.url()).pathname).toBe("/ui/login");
  });

  it("signs in as a user, switches project and sees only its jobs; after signing out neither the back button nor the old cookie gets back in", async () => {
    const [alpha, beta] = [uniqueName("alpha"), uniqueName("beta")];
    const user = uniqueName("ada");
    expect((await api("/v1/users", { method: "POST", json: { name: user } })).status).toBe(201);
    for (const project of [alpha, beta]) {
      expect((await api("/v1/projects", { method: "POST", json: { name: project } })).status).toBe(201);
      expect((await api(`/v1/projects/${project}/members/${user}`, { method: "PUT", json: { role: "member" } })).status).toBe(200);
    }
    const issued = await api("/v1/api-tokens", { method: "POST", json: { name: "browser", user } });
    expect(issued.status).toBe(201);
    const token = issued.json.token as string;
    // A pool no worker serves: the jobs stay queued, listed, and cost nothing.
    const idle = uniqueName("idle");
    const job = (project: string) => submit({ kind: "python", python: { script: "print(1)" }, pool: idle, project, name: `${project}-job` });
    await Promise.all([job(alpha), job(beta)]);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    let session: Cookie | undefined;
    try {
      const tab = await context.newPage();
      await tab.goto(cp().url + "/ui/jobs");
      await tab.getByLabel("API or admin token").fill(token);
      await tab.getByRole("button", { name: "Sign in" }).click();
      await tab.getByRole("heading", { name: "Jobs in all your projects" }).waitFor();
      session = (await context.cookies()).find((c) => c.name === "gridx_session");
      expect(session?.value).toMatch(/^gxs_/);
      expect(session?.value).not.toContain(token);
      expect(await tab.locator("header .who").innerText()).toBe(user);

      const list = tab.locator("#jobs-live");
      for (const [shown, hidden] of [
        [alpha, beta],
        [beta, alpha],
      ] as const) {
        await tab.getByLabel("Project", { exact: true }).selectOption(shown);
        await tab.getByRole("button", { name: "Switch" }).click();
        await tab.getByRole("heading", { name: `Jobs in ${shown}` }).waitFor();
        await expectText(list, `${shown}-job`);
        expect(await list.innerText()).not.toContain(`${hidden}-job`);
      }
      // The choice is remembered from page to page.
      await tab.getByRole("link", { name: "Overview" }).click();
      await tab.getByRole("link", { name: "Jobs", exact: true }).click();
      await tab.getByRole("heading", { name: `Jobs in ${beta}` }).waitFor();
      await tab.screenshot({ path: join(SHOTS, "jobs-of-a-project-desktop.png"), fullPage: true });

      await tab.getByRole("button", { name: "Log out" }).click();
      await expectText(tab.getByRole("status"), "You are signed out");
      await tab.goBack();
      await tab.waitForURL((url) => url.pathname === "/ui/login");
      expect(await tab.locator("body").innerText()).not.toContain(`${beta}-job`);
    } finally {
      await context.close();
    }

    // The cookie, replayed from elsewhere, names a session that has ended.
    const replay = await browser.newContext();
    try {
      await replay.addCookies([session!]);
      const tab = await replay.newPage();
      await tab.goto(cp().url + "/ui/jobs");
      expect(new URL(tab.url()).pathname).toBe("/ui/login");
    } finally {
      await replay.close();
    }
    const me = await fetch(cp().url + "/v1/me", { headers: { authorization: `Bearer ${session!.value}` } });
    expect(me.status).toBe(401);
  });
});

/** Waits until a locator's text contains the expected text (the pages update themselves). */
async function expectText(locator: ReturnType<Page["locator"]>, text: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.innerText({ timeout: timeoutMs }).catch(() => "")) ?? "";
    if (last.includes(text)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`expected "${text}" in ${locator.toString()}, last saw: ${JSON.stringify(last)}`);
}
