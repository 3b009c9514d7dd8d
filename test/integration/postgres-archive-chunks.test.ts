/**
 * Real pg_dump archives with their data chunks joined (agent/sources/postgres/archive-chunks) mean to
 * pg_restore exactly what they meant before: `pg_restore -f -` writes the same script (its random
 * `\restrict` key aside) for rows, a large bytea value, large objects and an `--inserts` dump, and a
 * database restored from the joined archive holds the same rows. A zlib archive passes through as it is.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinedArchive } from '#agent/sources/postgres/archive-chunks';
import { type PgServer, startPostgres } from '#test/support/postgres';

const run = promisify(execFile);
let pg: PgServer;

beforeAll(async () => {
  pg = await startPostgres({ databases: ['app'] });
  await pg.psql(
    `CREATE TABLE orders (id int PRIMARY KEY, note text);
     INSERT INTO orders SELECT g, repeat(md5(g::text), g % 7) || E'\\n\\t' FROM generate_series(1, 30000) g;
     CREATE TABLE files (name text, body bytea);
     INSERT INTO files VALUES ('big', decode(repeat('0123456789abcdef', 40000), 'hex')), ('empty', '');
     CREATE TABLE nothing (x int);
     SELECT lo_from_bytea(0, decode(repeat('ff00', 90000), 'hex'));`,
    'app',
  );
}, 120_000);
afterAll(() => pg?.stop());

const conn = () => ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres'];

async function dump(...args: string[]): Promise<Buffer> {
  const { stdout } = await run(join(pg.binDir, 'pg_dump'), [...conn(), '-Fc', ...args, 'app'], {
    encoding: 'buffer',
    maxBuffer: 1 << 30,
  });
  return stdout;
}

/** `pg_restore` reading `archive` on its stdin with `args`; its stdout. */
function pgRestore(archive: Readable, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(pg.binDir, 'pg_restore'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out).toString()) : reject(new Error(err)),
    );
    archive.pipe(child.stdin);
  });
}

const script = async (archive: Readable) =>
  (await pgRestore(archive, ['-f', '-'])).replace(/^\\(un)?restrict \S+$/gm, '\\$1restrict KEY');

async function joined(bytes: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of joinedArchive(Readable.from([bytes]))) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

describe('joined archive chunks before pg_restore', () => {
  it.each([
    ['COPY data and large objects', ['-Z0']],
    ['INSERT statements', ['-Z0', '--inserts']],
  ])(
    'give pg_restore the same script: %s',
    async (_name, args) => {
      const bytes = await dump(...args);
      const joinedBytes = await joined(bytes);
      expect(joinedBytes.length).toBeLessThan(bytes.length);
      expect(await script(Readable.from([joinedBytes]))).toBe(await script(Readable.from([bytes])));
    },
    60_000,
  );

  it('restore the same rows into a database', async () => {
    await pg.psql('CREATE DATABASE copy');
    await pgRestore(joinedArchive(Readable.from([await dump('-Z0')])), [...conn(), '-d', 'copy']);
    const sums = `SELECT count(*), md5(string_agg(id || note, ',' ORDER BY id)) FROM orders;
      SELECT md5(string_agg(name || md5(body), ',' ORDER BY name)) FROM files;
      SELECT md5(lo_get(oid)) FROM pg_largeobject_metadata;`;
    expect(await pg.psql(sums, 'copy')).toBe(await pg.psql(sums, 'app'));
  }, 60_000);

  it('pass a compressed archive through as it is', async () => {
    const bytes = await dump('-Z1');
    expect((await joined(bytes)).equals(bytes)).toBe(true);
  }, 60_000);
});
