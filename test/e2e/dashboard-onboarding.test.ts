import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, uniqueName, waitForWorker } from "./helpers.ts";

/** What the browser's clipboard holds after a copy button was pressed. */
const clipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText());

/** How far the page scrolls sideways at phone width (0: it fits), back at desktop width after. */
async function phoneOverflow(page: Page) {
  await page.setViewportSize({ width: 375, height: 812 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.setViewportSize({ width: 1280, height: 900 });
  return overflow;
}

describe("dashboard in Chromium: onboard a worker, watch it join, revoke its token", () => {
  const pool = uniqueName("onboard");
  const workerName = uniqueName("onboarded");
  let browser: Browser;
  let page: Page;
  let agent: AgentProcess | undefined;
  let tokenId = "";

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: cp().url });
    page = await context.newPage();
    await page.goto(cp().url + "/ui/login");
    await page.getByLabel("API or admin token").fill(cp().adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Add a worker" }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop("SIGTERM");
  });

  it("issues a token, copies the commands, and shows the agent started with them joining, without a reload", async () => {
    await page.getByRole("link", { name: "Add a worker" }).click();
    await page.getByLabel("Pool").fill(pool);
    await page.getByLabel("Token name").fill(workerName);
    await page.getByRole("button", { name: "Issue agent token" }).click();
    await page.getByRole("heading", { name: "Waiting for the worker" }).waitFor();
    // Marks this document: a reload or a navigation would lose it.
    await page.evaluate(() => document.documentElement.setAttribute("data-same-document", "1"));

    await page.getByRole("button", { name: "Copy Linux (systemd)" }).click();
    await page.locator("#line-linux-label ~ .copy-row [data-copy-status]").getByText("Copied.").waitFor();
    const linux = await clipboard(page);
    expect(linux).toBe(await page.locator("#line-linux").innerText());
    await page.getByRole("button", { name: "Copy Docker (the agent image)" }).click();
    const docker = await clipboard(page);
    expect(docker).toMatch(/^docker run --name gridx-agent -d --restart unless-stopped --init --network host .* -v \/var\/run\/docker\.sock:\/var\/run\/docker\.sock .*gridx\/agent:\d+\.\d+\.\d+ --url /);

    // The copied line's URL and token, given to a real agent the way the command would.
    const token = /GRIDX_AGENT_TOKEN='([^']+)'/.exec(docker)![1]!;
    const url = /--url '([^']+)'$/.exec(docker)![1]!;
    expect(url).toBe(cp().url);
    expect(linux).toContain(`GRIDX_AGENT_TOKEN='${token}'`);
    tokenId = (await api("/v1/agent-tokens")).json.tokens.find((t: any) => t.pool === pool).id;
    agent = startAgent({ url, token, name: workerName, stateDir: mkdtempSync(join(cp().stateDir, "agent-onboard-")), slots: 2 });

    const joined = page.locator(`#onboarding-status [data-worker="${workerName}"]`);
    await joined.waitFor({ timeout: 60_000 });
    const shown = await joined.innerText();
    const worker = await waitForWorker(pool, workerName);
    expect(shown).toContain(`Worker ${workerName} is online in pool ${pool}`);
    expect(shown).toContain(worker.agent_version);
    expect(shown).toContain(String(worker.caps.cpu_cores));
    expect(shown).toContain(worker.caps.runtimes.join(", "));
    expect(await page.evaluate(() => document.documentElement.getAttribute("data-same-document"))).toBe("1");
    expect(await phoneOverflow(page)).toBe(0);
  });

  it("revokes the token on the tokens page, and its agent is disconnected", async () => {
    await page.getByRole("link", { name: "Tokens" }).click();
    const row = page.locator(`tr[data-token="${tokenId}"]`);
    expect(await row.innerText()).toContain(`pool ${pool}`);
    expect(await phoneOverflow(page)).toBe(0);
    await row.getByRole("button", { name: /Revoke/ }).click();
    await page.getByRole("status").getByText("Token revoked").waitFor();
    expect(await page.locator(`tr[data-token="${tokenId}"]`).count()).toBe(0);
    await waitForWorker(pool, workerName, "offline");
    expect((await api("/v1/agent-tokens")).json.tokens.some((t: any) => t.id === tokenId)).toBe(false);
  });
});
