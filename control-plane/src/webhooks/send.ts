import { errorText } from "../errors.ts";
import { signatureHeader } from "./signature.ts";
import { checkTarget, type TargetClass } from "./target.ts";

export interface OutgoingDelivery {
  id: string;
  webhookId: string;
  url: string;
  secret: string;
  body: string;
}

/** How one try went: `ok` for a 2xx; otherwise the status (if one came) and why it failed. */
export type TryOutcome = { ok: boolean; status: number | null; error: string | null };

/** The longest `last_error` kept. */
const MAX_ERROR_CHARS = 300;

/**
 * POSTs one delivery, signed: the target is checked again (the operator's allowed classes may
 * have changed since the webhook was made), redirects are not followed (a 3xx is a failed try,
 * so a redirect cannot lead inward), and the try is cut off after `timeoutS`. Never throws.
 */
export async function tryDelivery(d: OutgoingDelivery, opts: { timeoutS: number; allowed: ReadonlySet<TargetClass>; now: number }): Promise<TryOutcome> {
  const target = checkTarget(d.url, opts.allowed);
  if (!target.ok) return { ok: false, status: null, error: `refused: ${target.reason}` };
  const timestamp = Math.floor(opts.now / 1000);
  try {
    const res = await fetch(target.url, {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(opts.timeoutS * 1000),
      headers: {
        "content-type": "application/json",
        "user-agent": "gridx-webhooks/1",
        "gridx-webhook-id": d.webhookId,
        "gridx-delivery-id": d.id,
        "gridx-timestamp": String(timestamp),
        "gridx-signature": await signatureHeader(d.secret, timestamp, d.body),
      },
      body: d.body,
    });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, error: null };
    const error = res.status >= 300 && res.status < 400 ? `redirect not followed (HTTP ${res.status})` : `HTTP ${res.status}`;
    return { ok: false, status: res.status, error };
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    return { ok: false, status: null, error: (timedOut ? `no answer within ${opts.timeoutS} s` : errorText(err)).slice(0, MAX_ERROR_CHARS) };
  }
}
