/**
 * Waiting until influxd has taken every shard that `influxd restore` sent it. The 1.x tool sends each
 * shard on its own connection to the RPC service and exits 0 once the bytes are written into the socket:
 * it never waits for the server to read or import them. The server imports a shard and closes its
 * connection only after the shard's files are in place; a connection still queued when the server shuts
 * down is dropped whole (`tcp.Mux: handler not registered: 3`), its shard left empty. So a restore waits
 * until no connection to the RPC port is open any more, seen in the kernel's TCP tables (Linux
 * /proc/net/tcp and tcp6), before it stops a scratch server or calls a restore done.
 */
import { readFile } from 'node:fs/promises';
import { RestoreError } from '#core/errors';

/** TCP states of /proc/net/tcp: LISTEN, and the ones a socket is in once it is gone for good. */
const LISTEN = '0A';
const GONE = new Set(['06' /* TIME_WAIT */, '07' /* CLOSE */]);

/** What the kernel says of a local TCP port: whether something listens on it, its open connections. */
async function portState(port: number): Promise<{ listening: boolean; open: number }> {
  let listening = false;
  let open = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || !state || Number.parseInt(local.split(':')[1] ?? '', 16) !== port) continue;
      if (state === LISTEN) listening = true;
      else if (!GONE.has(state)) open++;
    }
  }
  return { listening, open };
}

/**
 * Resolves once no connection to the local TCP port `port` is open (influxd has finished every upload
 * sent to it). Returns false without waiting when no socket of this host listens on that port (a server
 * on another host, or /proc unreadable): nothing can be seen, the caller relies on its counts alone.
 * @throws RestoreError when connections stay open for `timeoutMs`.
 */
export async function waitUntilUploadsTaken(
  port: number,
  options: { timeoutMs: number; signal?: AbortSignal; where: string },
): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const { listening, open } = await portState(port);
    if (!listening) return false;
    if (open === 0) return true;
    options.signal?.throwIfAborted();
    if (Date.now() > deadline) {
      throw new RestoreError(
        `${options.where}: ${open} shard upload(s) of influxd restore were still not taken after ${options.timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
