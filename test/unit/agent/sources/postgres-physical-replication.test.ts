/**
 * BASE_BACKUP's COPY stream split into one stream per archive (agent/sources/postgres-physical/
 * replication.ts), driven with the protocol messages node-postgres hands a Submittable: archives in
 * order, the socket paused while a stream is full, and a server error mid-stream erroring the archive
 * being sent and the backup — never a clean end. A real cluster: test/integration/pitr-tablespaces.
 */
import { text } from 'node:stream/consumers';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  type ArrivingArchive,
  baseBackupCommand,
  runBaseBackup,
} from '#agent/sources/postgres-physical/replication';

/** A node-postgres client that submits the query to a fake protocol connection and returns it. */
function fakeClient() {
  const socket = { paused: 0, resumed: 0, pause: () => socket.paused++, resume: () => socket.resumed++ };
  const sent: string[] = [];
  let query: Record<string, (...args: unknown[]) => void> | undefined;
  const client = {
    query: (q: never) => {
      query = q;
      (q as { submit(c: unknown): void }).submit({ stream: socket, query: (t: string) => sent.push(t) });
    },
  } as unknown as pg.Client;
  const handle = (name: string, ...args: unknown[]) => query?.[name]?.(...args);
  return { client, socket, sent, handle };
}

const copy = (type: string, ...parts: (string | Buffer)[]) => ({
  chunk: Buffer.concat([
    Buffer.from(type),
    ...parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : p)),
  ]),
});

describe('baseBackupCommand', () => {
  it('asks for WAL, a fast checkpoint and a manifest, and server-side zstd only when given a level', () => {
    expect(baseBackupCommand()).toBe(
      "BASE_BACKUP (LABEL 'strongbox', CHECKPOINT 'fast', WAL true, WAIT true, MANIFEST 'yes')",
    );
    expect(baseBackupCommand(3)).toBe(
      "BASE_BACKUP (LABEL 'strongbox', CHECKPOINT 'fast', WAL true, WAIT true, MANIFEST 'yes', COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3')",
    );
  });

  it.each([0, 23, 1.5])('refuses zstd level %s', (level) => {
    expect(() => baseBackupCommand(level)).toThrow(RangeError);
  });
});

describe('runBaseBackup', () => {
  it('yields each archive in order with its bytes, then the manifest, and resolves with the positions', async () => {
    const { client, sent, handle } = fakeClient();
    const run = runBaseBackup(client);
    expect(sent).toEqual([baseBackupCommand()]);
    handle('handleRowDescription');
    handle('handleDataRow', { fields: ['0/2000028', '1'] });
    handle('handleRowDescription');
    handle('handleDataRow', { fields: ['16385', '/srv/ts', '100'] });
    handle('handleDataRow', { fields: [null, null, '200'] });
    handle('handleCopyData', copy('n', '16385.tar', '/srv/ts'));
    handle('handleCopyData', copy('d', Buffer.from('ts-bytes')));
    handle('handleCopyData', copy('n', 'base.tar', ''));
    handle('handleCopyData', copy('d', Buffer.from('base-')));
    handle('handleCopyData', copy('p', Buffer.alloc(8)));
    handle('handleCopyData', copy('d', Buffer.from('bytes')));
    handle('handleCopyData', copy('m'));
    handle('handleCopyData', copy('d', Buffer.from('{"WAL-Ranges": []}')));
    handle('handleRowDescription');
    handle('handleDataRow', { fields: ['0/2000100', '1'] });
    handle('handleReadyForQuery');
    const got: [string, string, string][] = [];
    for await (const a of run.archives) got.push([a.name, a.location, await text(a.stream)]);
    expect(got).toEqual([
      ['16385.tar', '/srv/ts', 'ts-bytes'],
      ['base.tar', '', 'base-bytes'],
      ['backup_manifest', '', '{"WAL-Ranges": []}'],
    ]);
    expect(await run.done).toEqual({
      startLsn: '0/2000028',
      startTimeline: 1,
      stopLsn: '0/2000100',
      stopTimeline: 1,
      tablespaces: [{ oid: 16385, location: '/srv/ts' }],
    });
  });

  it('pauses the socket once while the archive is full and resumes when it drains', async () => {
    const { client, socket, handle } = fakeClient();
    const run = runBaseBackup(client);
    handle('handleCopyData', copy('n', 'base.tar', ''));
    for (let i = 0; i < 4; i++) handle('handleCopyData', copy('d', Buffer.alloc(64 * 1024)));
    expect(socket.paused).toBe(1);
    const iterator = run.archives[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as ArrivingArchive;
    first.stream.resume();
    await new Promise((resolve) => first.stream.once('drain', resolve));
    expect(socket.resumed).toBe(1);
  });

  it('resumes the socket when the next archive starts while the full one is still being read', async () => {
    const { client, socket, handle } = fakeClient();
    const run = runBaseBackup(client);
    handle('handleCopyData', copy('n', 'base.tar', ''));
    for (let i = 0; i < 4; i++) handle('handleCopyData', copy('d', Buffer.alloc(64 * 1024)));
    expect(socket.paused).toBe(1);
    // Parsed before the pause took effect: the manifest starts, base.tar ends (and never emits 'drain').
    handle('handleCopyData', copy('m'));
    const iterator = run.archives[Symbol.asyncIterator]();
    const base = (await iterator.next()).value as ArrivingArchive;
    expect((await text(base.stream)).length).toBe(4 * 64 * 1024);
    expect(socket.resumed).toBe(1);
  });

  it('errors the archive being sent and rejects when the server fails mid-stream', async () => {
    const { client, handle } = fakeClient();
    const run = runBaseBackup(client);
    handle('handleCopyData', copy('n', 'base.tar', ''));
    handle('handleCopyData', copy('d', Buffer.from('half')));
    const iterator = run.archives[Symbol.asyncIterator]();
    const base = (await iterator.next()).value as ArrivingArchive;
    const read = text(base.stream);
    handle('handleError', new Error('could not read file "base/1/1259": Permission denied'));
    await expect(read).rejects.toThrow('BASE_BACKUP failed: could not read file "base/1/1259"');
    await expect(run.done).rejects.toThrow('BASE_BACKUP failed');
    await expect(iterator.next()).rejects.toThrow('BASE_BACKUP failed');
  }, 10_000);

  it('rejects a backup that ended without its final result', async () => {
    const { client, handle } = fakeClient();
    const run = runBaseBackup(client);
    handle('handleRowDescription');
    handle('handleDataRow', { fields: ['0/2000028', '1'] });
    handle('handleReadyForQuery');
    await expect(run.done).rejects.toThrow('BASE_BACKUP returned 1 result sets, not 3');
  });
});
