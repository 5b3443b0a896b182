/**
 * Page scripts kept as real JavaScript files (linted, readable in an editor) and bundled as
 * text by wrangler's module rules, so the Content-Security-Policy still allows only 'self'.
 * Their import type is declared in browser/modules.d.ts (in the tsconfigs that compile this).
 */
import COPY_JS from "./browser/copy.browser.js";

/** Script paths under /ui/assets and their text. */
export const PAGE_SCRIPTS: Record<string, string> = { "/ui/assets/copy.js": COPY_JS };
