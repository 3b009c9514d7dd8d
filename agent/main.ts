#!/usr/bin/env node
/**
 * The `strongbox` entry. PostgreSQL runs `wal-push` once per WAL segment, so that call must not pay for
 * loading the whole agent: the fast path (agent/wal-pusher-client, Node built-ins only) answers it
 * through the resident WAL pusher. Everything else — and a wal-push the fast path declines — runs the
 * full CLI (agent/cli), loaded only then through agent/lazy: the one-file bundle holds it in comments
 * that are compiled only then. `__wal-pusher` runs the pusher itself (agent/wal-pusher), started by the
 * fast path.
 */
// First: V8 heap settings before the other modules load and allocate (agent/heap.ts).
import '#agent/heap';
import { isSea } from 'node:sea';
import { runCli, walPusherProcess } from '#agent/lazy';
import { walPushFastPath } from '#agent/wal-pusher-client';
import { agentFile, DEFAULT_WAL_PARALLEL, PUSHER_COMMAND } from '#agent/wal-pusher-protocol';

async function entry(): Promise<number | undefined> {
  const { argv, env } = process;
  if (argv[2] === PUSHER_COMMAND) {
    return (await walPusherProcess())(argv.slice(3), { ...env }, agentFile(isSea(), argv));
  }
  return walPushFastPath(
    {
      argv,
      execArgv: process.execArgv,
      env: { ...env },
      sea: isSea(),
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
    },
    DEFAULT_WAL_PARALLEL,
  );
}

entry().then(
  async (code) => {
    if (code === undefined) return void (await runCli());
    process.exitCode = code;
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  },
  (error: unknown) => {
    process.stderr.write(`strongbox: error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
