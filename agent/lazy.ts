/**
 * The part of the agent that agent/main.ts loads only when the wal-push fast path does not answer:
 * the CLI, and the resident WAL pusher's process. In the one-file Node.js bundle this module is held as
 * its own CommonJS build in comments at the bundle's end and compiled only when one of these is called
 * (scripts/lib/agent-bundle), so that PostgreSQL's one wal-push per segment does not parse the whole
 * agent first (docs/adr/0012-wal-push-without-the-cli.md). Under tsx and in the single executable
 * (whose code cache already skips the parse) it is this module as written.
 */
import type { runWalPusherProcess } from '#agent/wal-pusher';

/** Runs the CLI on `process.argv` (agent/cli runs itself when it is loaded). */
export async function runCli(): Promise<void> {
  await import('#agent/cli');
}

/** The resident WAL pusher's process entry. */
export async function walPusherProcess(): Promise<typeof runWalPusherProcess> {
  return (await import('#agent/wal-pusher')).runWalPusherProcess;
}
