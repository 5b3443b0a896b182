/** The control plane as the CLI calls it: URL and token from GRIDX_URL / GRIDX_TOKEN. */
export class ApiClient {
  constructor(
    readonly base: string,
    private readonly token: string,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv): ApiClient {
    const url = env.GRIDX_URL;
    const token = env.GRIDX_TOKEN;
    if (!url || !token) throw new CliError("set GRIDX_URL and GRIDX_TOKEN (the control plane's URL and an API or admin token)", 2);
    return new ApiClient(url, token);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(path, this.base), {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
    });
    if (res.status === 302) return { location: res.headers.get("location") } as T;
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : null;
    if (!res.ok) {
      const err = (json as { error?: { message?: string } } | null)?.error?.message ?? text;
      throw new CliError(`${method} ${path}: ${res.status} ${err}`, 1);
    }
    return json as T;
  }
}

/** An error the CLI prints as one line and exits with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
