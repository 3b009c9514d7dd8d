/**
 * Throwaway PostgreSQL clusters for tests, `npm run demo` and the bench: initdb into a temp dir, start on
 * a free port of 127.0.0.1 with its own unix socket directory, stop and remove everything afterwards.
 * The agent itself never starts servers; this lives under scripts/ for that reason.
 *
 * As root, initdb, pg_ctl and postgres run under `runuser -u postgres --` (they refuse to run as root)
 * and the temp dir is chowned to postgres. Client tools (psql) run as the current user.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from '#agent/sources/kit';
import { SourceError } from '#core/errors';

/** A TCP port that was free on 127.0.0.1 a moment ago (the drivers' kit owns it). */
export { freePort };

/** A running throwaway cluster. Connect over TCP (`host`, `port`) or the unix socket in `socketDir`. */
export interface PgServer {
  host: '127.0.0.1';
  port: number;
  /** Superuser, trusted over the unix socket (and over TCP unless a password was set). */
  user: 'postgres';
  socketDir: string;
  dataDir: string;
  /** Directory of the server and client binaries that run it. */
  binDir: string;
  /** Major version of the server, e.g. 15. */
  major: number;
  /**
   * Runs SQL with psql over the unix socket (as the superuser, `ON_ERROR_STOP`) and returns its
   * unaligned, tuples-only output, trimmed: `SELECT count(*) FROM t` gives `'42'`.
   * @throws SourceError with psql's message when the SQL fails.
   */
  psql(sql: string, database?: string): Promise<string>;
  /** Stops the server at once (`pg_ctl stop -m immediate`) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Databases to create once the server is up. @default none (only postgres, template0/1) */
  databases?: string[];
  /** Extra postgresql.conf settings, e.g. `{ wal_level: 'replica' }`; values are written as given. */
  settings?: Record<string, string>;
  /**
   * Password of the `postgres` superuser. When set, TCP connections need it (scram-sha-256) while the
   * unix socket stays trusted (so `psql()` keeps working). @default unset: trust everywhere
   */
  password?: string;
}

const INSTALL_HINT = 'install postgresql (apt-get install postgresql)';
const running = new Set<{ binDir: string; dataDir: string }>();

/**
 * Directory of the PostgreSQL server binaries: `pg_config --bindir` when that has initdb, else the newest
 * `/usr/lib/postgresql/<major>/bin`.
 * @throws SourceError saying what to install when none is found.
 */
export function findServerBinDir(): string {
  const fromConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const configured = fromConfig.status === 0 ? fromConfig.stdout.trim() : '';
  if (configured && existsSync(join(configured, 'initdb'))) return configured;
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
        .map(Number)
        .sort((a, b) => b - a)
    : [];
  if (majors[0] === undefined) {
    throw new SourceError(`no PostgreSQL server binaries (initdb) found on this machine: ${INSTALL_HINT}`);
  }
  return join(root, String(majors[0]), 'bin');
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Runs a command, as the postgres user when we are root and `asPostgres` is set. */
function run(
  file: string,
  args: readonly string[],
  options: { asPostgres?: boolean; input?: string; cwd?: string } = {},
): Promise<string> {
  const [command, argv] =
    options.asPostgres && isRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, [...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      argv,
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, cwd: options.cwd ?? tmpdir(), env: cleanEnv() },
      (error, stdout, stderr) => {
        if (error) {
          const detail = stderr.trim().split('\n').slice(-8).join('\n') || error.message;
          reject(new SourceError(`${file.split('/').pop()} failed: ${detail}`, { cause: error }));
        } else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** The environment for cluster tools: ours without libpq variables that could point elsewhere. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
}

/**
 * Starts a throwaway cluster: `initdb -A trust` in a fresh temp dir, fsync off, listening on 127.0.0.1
 * at a free port (tried twice if another process takes the port first) and on its own socket directory.
 * @example
 * const server = await startCluster({ databases: ['app'] });
 * try { await server.psql('CREATE TABLE t (id int)', 'app'); } finally { await server.stop(); }
 * @throws SourceError when PostgreSQL is not installed or the server does not start.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<PgServer> {
  const binDir = findServerBinDir();
  const major = Number(/\/(\d+)\/bin$/.exec(binDir)?.[1] ?? (await serverMajor(binDir)));
  const root = await mkdtemp(join(tmpdir(), 'strongbox-pg-'));
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'socket');
  const logFile = join(root, 'server.log');
  const entry = { binDir, dataDir };
  let started = false;
  try {
    await mkdir(socketDir);
    const owner = isRoot() ? postgresIds() : undefined;
    if (owner) {
      await chown(root, owner.uid, owner.gid);
      await chown(socketDir, owner.uid, owner.gid);
    }
    await chmod(root, 0o700);
    const initdbArgs = ['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'];
    if (options.password === undefined) {
      initdbArgs.push('-A', 'trust');
    } else {
      const pwFile = join(root, 'pwfile');
      await writeFile(pwFile, `${options.password}\n`, { mode: 0o600 });
      if (owner) await chown(pwFile, owner.uid, owner.gid);
      initdbArgs.push('--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwFile}`);
    }
    await run(join(binDir, 'initdb'), initdbArgs, { asPostgres: true });
    await rm(join(root, 'pwfile'), { force: true });
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${socketDir}'`,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '50',
      shared_buffers: "'64MB'",
      ...options.settings,
    };
    await appendFile(
      join(dataDir, 'postgresql.conf'),
      `\n# strongbox throwaway cluster\n${Object.entries(settings)
        .map(([name, value]) => `${name} = ${value}`)
        .join('\n')}\n`,
    );
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      await appendFile(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      try {
        await run(join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], {
          asPostgres: true,
        });
        break;
      } catch (error) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        if (attempt < 2 && /already in use|could not bind/i.test(log)) continue;
        throw new SourceError(
          `PostgreSQL did not start in ${dataDir}: ${log.trim().split('\n').slice(-5).join(' | ')}`,
          { cause: error },
        );
      }
    }
    started = true;
    running.add(entry);
    const server: PgServer = {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      socketDir,
      dataDir,
      binDir,
      major,
      psql: (sql, database = 'postgres') =>
        run(join(binDir, 'psql'), [...psqlArgs(socketDir, port, database), '-f', '-'], { input: sql }).then(
          (out) => out.trim(),
        ),
      stop: async () => {
        if (running.delete(entry)) {
          await run(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], {
            asPostgres: true,
          }).catch(() => undefined);
        }
        await rm(root, { recursive: true, force: true });
      },
    };
    for (const database of options.databases ?? []) {
      await server.psql(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
    }
    return server;
  } catch (error) {
    if (started) {
      running.delete(entry);
      await run(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], {
        asPostgres: true,
      }).catch(() => undefined);
    }
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

/** psql flags for a quiet, scriptable session on the cluster's unix socket. */
function psqlArgs(socketDir: string, port: number, database: string): string[] {
  return [
    '-X',
    '-q',
    '-A',
    '-t',
    '-v',
    'ON_ERROR_STOP=1',
    '-h',
    socketDir,
    '-p',
    String(port),
    '-U',
    'postgres',
    '-d',
    database,
  ];
}

async function serverMajor(binDir: string): Promise<number> {
  const out = await run(join(binDir, 'postgres'), ['--version']);
  return Number(/(\d+)(\.\d+)?/.exec(out)?.[1] ?? 0);
}

function postgresIds(): { uid: number; gid: number } {
  const out = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gidOut = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (out.status !== 0 || gidOut.status !== 0) {
    throw new SourceError(`there is no 'postgres' user to run the server as: ${INSTALL_HINT}`);
  }
  return { uid: Number(out.stdout.trim()), gid: Number(gidOut.stdout.trim()) };
}

// A test run that dies half-way must not leave servers behind: stop what is still running on exit.
process.once('exit', () => {
  for (const { binDir, dataDir } of running) {
    const args = [join(binDir, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', 'stop'];
    if (isRoot()) spawnSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'ignore' });
    else spawnSync(args[0] as string, args.slice(1), { stdio: 'ignore' });
    rmSync(dirname(dataDir), { recursive: true, force: true });
  }
});

/** Options of {@link fillDemoDatabase}. */
export interface DemoDataOptions {
  /**
   * Size factor: 1 gives a database of about 70 MB with indexes (25k customers, 100k orders, 250k order
   * items, 50k events, 1k attachments of 4 KiB), in about 6 s here; fractions make test-sized data
   * (0.01 is about 1 MB).
   */
  scale: number;
}

/**
 * Fills a database with a realistic shop: customers, orders (foreign key to customers), order_items
 * (foreign key to orders), events with jsonb payloads and attachments with bytea content, plus indexes.
 * Text is random hex so the data compresses like real data, not 40×. Generated in SQL with
 * generate_series, so scale 1 takes seconds. The database must exist and hold none of these tables.
 * @example await fillDemoDatabase(server, 'shop', { scale: 0.01 })
 */
export async function fillDemoDatabase(
  server: Pick<PgServer, 'psql'>,
  database: string,
  options: DemoDataOptions,
): Promise<void> {
  if (!(options.scale > 0)) throw new RangeError(`scale must be positive, got ${options.scale}`);
  const n = (base: number) => Math.max(1, Math.round(base * options.scale));
  const customers = n(25_000);
  const orders = n(100_000);
  const items = n(250_000);
  const events = n(50_000);
  const attachments = n(1_000);
  await server.psql(
    `
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL UNIQUE,
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL,
  notes text
);
INSERT INTO customers
SELECT g, 'customer ' || substr(md5(random()::text), 1, 12), 'c' || g || '@' || substr(md5(random()::text), 1, 8) || '.example',
  (ARRAY['DE','FR','US','GB','NL','SE','JP','BR'])[1 + (g % 8)],
  now() - (random() * interval '1000 days'), md5(random()::text) || md5(random()::text)
FROM generate_series(1, ${customers}) g;

CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  placed_at timestamptz NOT NULL,
  status text NOT NULL,
  total_cents bigint NOT NULL
);
INSERT INTO orders
SELECT g, 1 + (random() * (${customers} - 1))::bigint, now() - (random() * interval '900 days'),
  (ARRAY['new','paid','shipped','delivered','returned'])[1 + (g % 5)], (random() * 100000)::bigint
FROM generate_series(1, ${orders}) g;
CREATE INDEX orders_customer_id ON orders (customer_id);

CREATE TABLE order_items (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders(id),
  sku text NOT NULL,
  quantity int NOT NULL,
  price_cents bigint NOT NULL
);
INSERT INTO order_items
SELECT g, 1 + (random() * (${orders} - 1))::bigint, 'SKU-' || substr(md5(random()::text), 1, 10),
  1 + (random() * 5)::int, (random() * 20000)::bigint
FROM generate_series(1, ${items}) g;
CREATE INDEX order_items_order_id ON order_items (order_id);

CREATE TABLE events (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  kind text NOT NULL,
  payload jsonb NOT NULL
);
INSERT INTO events (occurred_at, kind, payload)
SELECT now() - (random() * interval '90 days'), (ARRAY['login','view','cart','checkout','logout'])[1 + (g % 5)],
  jsonb_build_object('session', md5(random()::text), 'customer', 1 + (g % ${customers}),
    'agent', substr(md5(random()::text), 1, 16), 'trace', md5(random()::text) || md5(random()::text))
FROM generate_series(1, ${events}) g;
CREATE INDEX events_occurred_at ON events (occurred_at);

CREATE TABLE attachments (
  id bigint PRIMARY KEY,
  file_name text NOT NULL,
  content bytea NOT NULL
);
INSERT INTO attachments
SELECT g, 'scan-' || g || '.bin',
  (SELECT decode(string_agg(md5(random()::text || g::text || s::text), ''), 'hex') FROM generate_series(1, 256) s)
FROM generate_series(1, ${attachments}) g;

ANALYZE;
`,
    database,
  );
}
