import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readResponse } from "../helpers/http.ts";
import { pollUntil } from "../helpers/poll.ts";
import { ROOT, type AgentProcess } from "../../scripts/local-grid.ts";
import { api, cp, isDone, launchOnlineAgent, newProject, uniqueName, waitForJob } from "./helpers.ts";

const SHOTS = join(ROOT, "test-output", "dashboard");

/** The body of a response that has the expected status (set-up steps, outside any test). */
function answered(res: { status: number; text: string; json: any }, status: number) {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${res.text}`);
  return res.json;
}

describe("dashboard in Chromium: a member follows an array, its failed task, a rerun and a dependent", () => {
  const pool = uniqueName("dashwf");
  const workerName = uniqueName("dashwf-node");
  let agent: AgentProcess;
  let browser: Browser;
  let page: Page;
  let project: string;
  let token: string;

  /** POST /v1/jobs with the member's token, as the member's own scripts would. */
  async function submitAsMember(body: Record<string, unknown>) {
    return answered(await readResponse(await fetch(cp().url + "/v1/jobs", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ kind: "python", pool, project, ...body }) })), 201);
  }

  const idOf = (url: string) => new URL(url).pathname.split("/").at(-1)!;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    project = await newProject(uniqueName("wfproj"));
    const user = uniqueName("grace");
    answered(await api("/v1/users", { method: "POST", json: { name: user } }), 201);
    answered(await api(`/v1/projects/${project}/members/${user}`, { method: "PUT", json: { role: "member" } }), 200);
    token = answered(await api("/v1/api-tokens", { method: "POST", json: { name: "browser", user } }), 201).token;

    agent = await launchOnlineAgent({ pool, name: workerName, slots: 3 });
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(cp().url + "/ui/login");
    await page.getByLabel("API or admin token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("header .who", { hasText: user }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop("SIGTERM");
  });

  it("shows the array's counts and failed task, the task's attempts and usage, reruns it, and shows the dependent's parent array", async () => {
    const array = await submitAsMember({ name: "three", python: { script: "import os, sys\nsys.exit(1 if os.environ['GRIDX_ARRAY_INDEX'] == '1' else 0)" }, array: { count: 3 } });
    const arrayId = array.array_id as string;
    const dependent = await submitAsMember({ name: "after-three", python: { script: "print('after')" }, depends_on: [{ job: arrayId, condition: "finished" }] });
    await pollUntil(async () => (await api(`/v1/arrays/${arrayId}`)).json, (a) => a.counts.completed + a.counts.failed === 3, { timeoutMs: 90_000, intervalMs: 200, what: `array ${arrayId}` });
    expect(await waitForJob(dependent.id, isDone, 90_000)).toMatchObject({ status: "completed" });
    const [failedTask] = (await api(`/v1/jobs?array=${arrayId}&status=failed`)).json.jobs;
    expect(failedTask).toMatchObject({ array_index: 1 });

    // The array page: progress by state, and the failed index linked to its task.
    await page.goto(`${cp().url}/ui/arrays/${arrayId}`);
    await page.getByRole("heading", { name: `Array ${arrayId}` }).waitFor();
    expect(await page.locator(".counts li[data-state='completed']").innerText()).toBe("completed 2");
    expect(await page.locator(".counts li[data-state='failed']").innerText()).toBe("failed 1");
    expect(await page.locator(".counts li").count()).toBe(2);
    expect(await page.locator("p.status-line").innerText()).toContain("3 tasks, 2 completed");
    const failedLink = page.getByRole("link", { name: "task 1", exact: true });
    expect(await failedLink.getAttribute("href")).toBe(`/ui/jobs/${failedTask.id}`);
    expect(await page.locator("ul.indices li").allInnerTexts()).toEqual(["task 1"]);
    await page.screenshot({ path: join(SHOTS, "array-desktop.png"), fullPage: true });

    // The failed task's page: its one attempt, how it ended, and its usage; it names its array.
    await failedLink.click();
    await page.getByRole("heading", { name: `Job ${failedTask.id}` }).waitFor();
    const attempt = page.locator("table.attempts tbody tr[data-attempt='1']");
    expect(await page.locator("table.attempts tbody tr").count()).toBe(1);
    expect(await attempt.locator("td[data-label='Worker']").innerText()).toBe(workerName);
    expect(await attempt.locator("td[data-label='Outcome']").innerText()).toBe("exit 1");
    const usage = /^\S+ \S+ CPU · \S+ \S+ peak · \S+ \S+ GPU · \S+ \S+ wall$/;
    expect(await attempt.locator("td[data-label='Usage']").innerText()).toMatch(usage);
    expect(await page.locator("#job-usage").innerText()).toMatch(usage);
    expect(await page.locator("#job-exit-code").innerText()).toBe("1");
    expect(await page.getByRole("link", { name: arrayId, exact: true }).getAttribute("href")).toBe(`/ui/arrays/${arrayId}`);
    await page.screenshot({ path: join(SHOTS, "array-task-desktop.png"), fullPage: true });

    // Rerun lands on the new job's page, which links back to the task it reran.
    await page.getByRole("button", { name: "Rerun", exact: true }).click();
    await page.waitForURL((url) => url.pathname !== `/ui/jobs/${failedTask.id}` && url.searchParams.get("done") === "rerun");
    const copyId = idOf(page.url());
    expect(copyId).toMatch(/^j_/);
    await page.getByRole("heading", { name: `Job ${copyId}` }).waitFor();
    expect(await page.getByRole("status").first().innerText()).toContain("Rerun submitted");
    expect((await api(`/v1/jobs/${copyId}`)).json).toMatchObject({ rerun_of: failedTask.id, project });
    const back = page.getByRole("link", { name: failedTask.id, exact: true });
    expect(await back.getAttribute("href")).toBe(`/ui/jobs/${failedTask.id}`);
    await back.click();
    await page.getByRole("heading", { name: `Job ${failedTask.id}` }).waitFor();

    // The dependent's page: the array is its parent, linked, with the condition it waited on.
    await page.goto(`${cp().url}/ui/jobs/${dependent.id}`);
    await page.getByRole("heading", { name: `Job ${dependent.id}` }).waitFor();
    const parents = page.locator("#dependencies table.relatives").first();
    expect(await parents.locator("tbody tr").count()).toBe(1);
    expect(await parents.locator("td[data-label='Needs']").innerText()).toBe("finished");
    const parent = parents.getByRole("link", { name: `array ${arrayId}` });
    expect(await parent.getAttribute("href")).toBe(`/ui/arrays/${arrayId}`);
    expect(await page.locator("#dependencies").innerText()).toContain("No job waits for it.");
    await parent.click();
    await page.getByRole("heading", { name: `Array ${arrayId}` }).waitFor();

    // Leave the agent idle for its stop: the rerun fails as its task did.
    expect(await waitForJob(copyId, isDone, 90_000)).toMatchObject({ status: "failed" });
  });
});
