/**
 * Push-ahead (wal-push) and prefetch (wal-fetch) over the spool beside a data directory
 * (agent/wal-spool), with real files, a file vault and real encryption: several ready segments upload
 * at once, a pushed-ahead segment is acknowledged without a download, but never before the vault has
 * it; prefetched segments are served from the spool, never a partial one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultyVault } from '#adapters/vaults/faulty';
import { VaultWalArchive } from '#agent/wal-archive';
import { fetchWithPrefetch, nextSegments, pushWithAhead, SPOOL_DIR } from '#agent/wal-spool';
import { IntegrityError, NotFoundError, VaultError } from '#core/errors';
import type { Vault } from '#core/ports';
import { GatedVault } from '#test/support/gated-vault';
import { testRuntime } from '#test/support/runtime';

const MIB = 1024 * 1024;
const S = ['000000010000000000000003', '000000010000000000000004', '000000010000000000000005'] as const;
const S1 = S[0];
const S2 = S[1];
const S3 = S[2];
const S4 = '000000010000000000000006';
const dirs: string[] = [];
const log = () => {};

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A data directory with segments in pg_wal, each marked ready, and archives over chosen vaults. */
async function site(names: readonly string[] = S) {
  const { runtime, dir, fileVault } = await testRuntime({
    jobs: [{ name: 'pitr', source: { kind: 'postgres-physical' } }],
  });
  dirs.push(dir);
  const pgWal = join(dir, 'data', 'pg_wal');
  await mkdir(join(pgWal, 'archive_status'), { recursive: true });
  const contents = new Map<string, Buffer>();
  for (const name of names) {
    const data = Buffer.concat([randomBytes(MIB / 2), Buffer.alloc(MIB / 2)]);
    contents.set(name, data);
    await writeFile(join(pgWal, name), data);
    await writeFile(join(pgWal, 'archive_status', `${name}.ready`), '');
  }
  const archiveOver = (vault: Vault) =>
    new VaultWalArchive(vault, runtime.keys, 'pitr', { compression: 'zstd' });
  const archived = async () => {
    const names: string[] = [];
    for await (const entry of archiveOver(fileVault).list()) names.push(entry.name);
    return names;
  };
  return { dir, pgWal, fileVault, contents, archiveOver, archived, spool: join(dir, 'data', SPOOL_DIR) };
}

/** Byte equality without a deep comparison of a mebibyte. */
const same = (a: Buffer, b: Buffer | undefined) => b !== undefined && a.equals(b);

const push = (archive: VaultWalArchive, path: string, parallel = 4) =>
  pushWithAhead(archive, path, { job: 'pitr', parallel, log });

describe('wal-push with push-ahead', () => {
  it('uploads the segment asked for and the next ready ones at once', async () => {
    const { pgWal, fileVault, archiveOver, archived } = await site();
    const gated = new GatedVault(fileVault);

    expect(await push(archiveOver(gated), join(pgWal, S1))).toBe('stored');

    expect(await archived()).toEqual([...S]);
    expect(gated.maxInFlight).toBe(3);
  });

  it('acknowledges a pushed-ahead segment at once, without reading it back from the vault', async () => {
    const { pgWal, fileVault, archiveOver } = await site();
    await push(archiveOver(fileVault), join(pgWal, S1));
    const noReads = new FaultyVault(fileVault, { get: [{}] });

    expect(await push(archiveOver(noReads), join(pgWal, S2))).toBe('exists');
    expect(await push(archiveOver(noReads), join(pgWal, S3))).toBe('exists');
    expect(noReads.injected).toEqual([]);
  });

  it('does not acknowledge the segment asked for before the vault confirmed it', async () => {
    const { pgWal, fileVault, archiveOver } = await site([S1]);
    const gated = new GatedVault(fileVault);
    const release = gated.hold(S1);

    let settled = false;
    const pushing = push(archiveOver(gated), join(pgWal, S1)).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const before = settled;
    release();

    expect(before).toBe(false);
    expect(await pushing).toBe('stored');
  });

  it('answers once the segment asked for is durable, stopping a push-ahead stuck in the vault without leaving a marker', async () => {
    const { dir, pgWal, fileVault, archiveOver, archived, spool } = await site();
    const gated = new GatedVault(fileVault);
    gated.hold(S2);
    const lines: string[] = [];
    const started = Date.now();

    const result = await pushWithAhead(archiveOver(gated), join(pgWal, S1), {
      job: 'pitr',
      parallel: 3,
      log: (line) => lines.push(line),
      aheadGraceMs: 300,
    });

    expect(result).toBe('stored');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(gated.inFlight).toBe(0);
    expect(await archived()).toEqual([S1, S3]);
    expect((await readdir(join(spool, 'push-pitr'))).sort()).toEqual([`${S1}.done`, `${S3}.done`]);
    // Nothing half-written left in the vault either.
    expect((await readdir(join(dir, 'vault', 'wal', 'pitr', '00000001'))).sort()).toEqual([S1, S3]);
    expect(lines.join('\n')).toMatch(
      /push-ahead still running .* after 000000010000000000000003 was archived: stopped/,
    );
    // Its own call then uploads it.
    expect(await push(archiveOver(fileVault), join(pgWal, S2))).toBe('stored');
    expect(await archived()).toEqual([...S]);
  });

  it('does not acknowledge a pushed-ahead segment the vault no longer has: it uploads it again', async () => {
    const { pgWal, fileVault, archiveOver, archived } = await site();
    const archive = archiveOver(fileVault);
    await push(archive, join(pgWal, S1));
    await fileVault.delete([archive.keyOf(S2)]);

    expect(await push(archive, join(pgWal, S2))).toBe('stored');
    expect(await archived()).toEqual([...S]);
  });

  it('fails a segment whose push-ahead failed while the vault still refuses it, and leaves no marker', async () => {
    const { pgWal, fileVault, archiveOver, spool } = await site();
    const refusing = new FaultyVault(fileVault, {
      put: [{ when: (k) => k.endsWith(S3), fail: 'cut', afterBytes: 100 }],
    });
    const lines: string[] = [];

    expect(
      await pushWithAhead(archiveOver(refusing), join(pgWal, S1), {
        job: 'pitr',
        parallel: 4,
        log: (l) => lines.push(l),
      }),
    ).toBe('stored');
    expect(lines.join('\n')).toMatch(new RegExp(`push-ahead of ${S3} failed`));
    expect((await readdir(join(spool, 'push-pitr'))).sort()).toEqual([`${S1}.done`, `${S2}.done`]);
    await expect(push(archiveOver(refusing), join(pgWal, S3))).rejects.toBeInstanceOf(VaultError);
  });

  it('refuses a file whose content changed since its push-ahead, as any conflict', async () => {
    const { pgWal, fileVault, archiveOver, contents } = await site();
    await push(archiveOver(fileVault), join(pgWal, S1));
    const changed = Buffer.from(contents.get(S2) as Buffer);
    changed[10] = (changed[10] as number) ^ 1;
    await writeFile(join(pgWal, S2), changed);

    await expect(push(archiveOver(fileVault), join(pgWal, S2))).rejects.toBeInstanceOf(IntegrityError);
  });

  it('fails during an outage, stores nothing and leaves no marker', async () => {
    const { pgWal, fileVault, archiveOver, archived, spool } = await site();
    const down = new FaultyVault(fileVault, { put: [{ fail: 'before' }] });

    await expect(push(archiveOver(down), join(pgWal, S1))).rejects.toBeInstanceOf(VaultError);
    expect(await archived()).toEqual([]);
    expect(await readdir(join(spool, 'push-pitr')).catch(() => [])).toEqual([]);
  });

  it('pushes only the one file for a path outside pg_wal/', async () => {
    const { dir, fileVault, archiveOver, archived } = await site([]);
    await writeFile(join(dir, S1), randomBytes(1000));

    expect(await push(archiveOver(fileVault), join(dir, S1))).toBe('stored');
    expect(await archived()).toEqual([S1]);
  });
});

describe('wal-fetch with prefetch', () => {
  async function archivedSite() {
    const made = await site([S1, S2, S3, S4]);
    for (const name of [S1, S2, S3, S4])
      await push(made.archiveOver(made.fileVault), join(made.pgWal, name), 1);
    const fetch = (vault: Vault, name: string, prefetch = 3) =>
      fetchWithPrefetch(made.archiveOver(vault), name, join(made.pgWal, 'RECOVERYXLOG'), {
        job: 'pitr',
        prefetch,
        log,
      });
    return { ...made, fetch, recovered: () => readFile(join(made.pgWal, 'RECOVERYXLOG')) };
  }

  it('serves the next segments from the spool once the first fetch prefetched them', async () => {
    const { fileVault, fetch, recovered, contents, spool } = await archivedSite();
    const noReads = new FaultyVault(fileVault, { get: [{}] });

    await fetch(fileVault, S1);
    expect(same(await recovered(), contents.get(S1))).toBe(true);
    expect((await readdir(join(spool, 'fetch-pitr'))).sort()).toEqual([S2, S3, 'segment-bytes']);
    await fetch(noReads, S2);
    expect(same(await recovered(), contents.get(S2))).toBe(true);
    await fetch(noReads, S3);
    expect(same(await recovered(), contents.get(S3))).toBe(true);
    expect(noReads.injected).toEqual([]);
    await fetch(fileVault, S4);
    expect(same(await recovered(), contents.get(S4))).toBe(true);
  });

  it('never serves a partial download: a prefetch that breaks leaves nothing under the name', async () => {
    const { fileVault, fetch, recovered, contents, spool } = await archivedSite();
    const breaking = new FaultyVault(fileVault, { get: [{ when: (k) => k.endsWith(S2), afterBytes: 2000 }] });

    await fetch(breaking, S1);
    expect(breaking.injected.map((i) => i.key.slice(-24))).toEqual([S2]);
    expect((await readdir(join(spool, 'fetch-pitr'))).sort()).toEqual([S3, 'segment-bytes']);
    await writeFile(join(spool, 'fetch-pitr', `.${S2}.strongbox-partial`), 'not a segment');
    const down = new FaultyVault(fileVault, { get: [{}] });
    await expect(fetch(down, S2)).rejects.toBeInstanceOf(VaultError);
    await fetch(fileVault, S2);
    expect(same(await recovered(), contents.get(S2))).toBe(true);
  });

  it('answers NotFound at the end of the archive and empties the spool', async () => {
    const { fileVault, fetch, spool } = await archivedSite();
    await fetch(fileVault, S3);

    await expect(fetch(fileVault, '000000010000000000000009')).rejects.toBeInstanceOf(NotFoundError);
    await expect(readdir(join(spool, 'fetch-pitr'))).rejects.toThrow();
  });

  it('names the next segments across a log boundary for the segment size', () => {
    expect(nextSegments('0000000100000000000000FF', 16 * MIB, 2)).toEqual([
      '000000010000000100000000',
      '000000010000000100000001',
    ]);
    expect(nextSegments('000000020000000000000003', 1024 * MIB, 1)).toEqual(['000000020000000100000000']);
    expect(nextSegments('000000010000000000000003', 1000, 1)).toEqual([]);
  });
});
