/** @jsxImportSource hono/jsx */
import type { FC } from "hono/jsx";
import { Layout } from "./parts.tsx";

export const LoginPage: FC<{ next: string; error?: string | undefined; signedOut?: boolean }> = ({ next, error, signedOut }) => (
  <Layout title="Sign in">
    <section class="card narrow" aria-labelledby="login-title">
      <h1 id="login-title">Sign in to gridx</h1>
      {signedOut && (
        <p class="notice" role="status">
          You are signed out.
        </p>
      )}
      <form method="post" action="/ui/login" class="stack">
        <input type="hidden" name="next" value={next} />
        <label for="token">API or admin token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          aria-describedby={error ? "token-help token-error" : "token-help"}
          aria-invalid={error ? "true" : undefined}
        />
        <p id="token-help" class="hint">
          The admin token is <code>GRIDX_ADMIN_TOKEN</code> (<code>npm start</code> prints it); an admin issues user tokens with{" "}
          <code>POST /v1/api-tokens</code>. Agent tokens cannot sign in.
        </p>
        {error && (
          <p id="token-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </section>
  </Layout>
);
