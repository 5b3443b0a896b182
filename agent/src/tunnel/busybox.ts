import { open } from "node:fs/promises";

/** Where a host's static busybox usually is (Debian's busybox-static puts it at /bin/busybox). */
export const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"];

const PT_INTERP = 3;

/**
 * Whether the file is an ELF executable with no program interpreter (PT_INTERP): linked
 * statically, so it runs in any container whatever libc the image has, or none. Reads only
 * the ELF and program headers; never throws (an unreadable file is not static).
 */
export async function isStaticElf(path: string): Promise<boolean> {
  let file;
  try {
    file = await open(path, "r");
    const head = Buffer.alloc(64);
    await file.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = head[4] === 2;
    const little = head[5] === 1;
    const u16 = (b: Buffer, at: number) => (little ? b.readUInt16LE(at) : b.readUInt16BE(at));
    const u32 = (b: Buffer, at: number) => (little ? b.readUInt32LE(at) : b.readUInt32BE(at));
    const phoff = is64 ? Number(little ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    if (phnum === 0 || phentsize < 4 || phnum > 1024) return false;
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === PT_INTERP) return false;
    return true;
  } catch {
    return false;
  } finally {
    await file?.close();
  }
}

/**
 * The static busybox mounted into containers of jobs with ports, as their relay (`nc`):
 * `configured` (GRIDX_RELAY_BUSYBOX) if given, else the first static one of the usual
 * places. Null when there is none, with why.
 */
export async function findRelayBusybox(configured: string | undefined): Promise<{ path: string } | { path: null; why: string }> {
  for (const path of configured ? [configured] : BUSYBOX_CANDIDATES) if (await isStaticElf(path)) return { path };
  const where = configured ? `${configured} (GRIDX_RELAY_BUSYBOX)` : BUSYBOX_CANDIDATES.join(" or ");
  return { path: null, why: `no statically linked busybox at ${where}; install busybox-static, or point GRIDX_RELAY_BUSYBOX at one` };
}
