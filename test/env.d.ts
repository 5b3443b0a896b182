declare namespace Cloudflare {
  interface Env {
    MIGRATIONS: import("cloudflare:test").D1Migration[];
    GRIDX_ADMIN_TOKEN: string;
    UPGRADE_DB: D1Database;
  }
}
