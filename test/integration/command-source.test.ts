/**
 * The command source with real commands (tar, sha256sum, sh): any command's stdout becomes a backup and
 * a restore command reads it back on stdin. A command that fails, writes nothing or exceeds its timeout
 * leaves no complete backup; argv runs without a shell; secrets reach commands through the environment
 * only; a restore command that fails or stops reading leaves no target behind.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { backupCommand, checkCommand, restoreCommand } from '#agent/sources/command/index';
import { listBackups, readManifest } from '#core/catalog';
import { PlanError, RestoreError, SourceError } from '#core/errors';
import { type Job, validatePlan } from '#core/plan';
import type { SourceContext } from '#core/ports';
import { commandSource } from '#core/sources/command';
import type { CommandSourceConfig } from '#core/sources/index';
import { testRuntime } from '#test/support/runtime';

let work: string;
let tree: string;
const ctx: SourceContext = { env: { PATH: process.env.PATH } };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-command-'));
  tree = join(work, 'tree');
  await mkdir(join(tree, 'conf'), { recursive: true });
  await writeFile(join(tree, 'conf', 'a.yaml'), 'a: 1\n');
  await writeFile(join(tree, 'blob.bin'), Buffer.alloc(500_000, 9));
  execFileSync('sh', ['-c', 'sha256sum conf/a.yaml blob.bin > SHA256SUMS'], { cwd: tree });
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A source config as the plan validates it. */
function source(fields: Record<string, unknown>): CommandSourceConfig {
  return commandSource.plan.parse({
    kind: 'command',
    restore: { argv: ['tar', '-xf', '-'] },
    ...fields,
  });
}

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Backs a source up through the driver alone: the bytes of its one object and its done. */
async function backupBytes(config: CommandSourceConfig, context = ctx) {
  const backup = await backupCommand(config, context);
  const reading = (async () => {
    const out: Buffer[] = [];
    for await (const object of backup.objects) out.push(await read(object.stream));
    return Buffer.concat(out);
  })();
  const [bytes, result] = await Promise.allSettled([reading, backup.done]);
  return { bytes, result };
}

/** Whether a process runs (a zombie waiting for its reaper does not). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
}

/** Files left in a test vault directory. */
async function vaultFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, 'vault'), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

describe('a backup through the vault', () => {
  it('stores tar -c output and restores it with tar -x; sha256sum -c checks the target', async () => {
    const { runtime, dir } = await testRuntime({
      jobs: [
        {
          name: 'tree',
          source: {
            kind: 'command',
            backup: { argv: ['tar', '-cf', '-', '-C', tree, '.'], timeout: '1m' },
            restore: { argv: ['tar', '-xf', '-'], timeout: '1m' },
            check: { argv: ['sha256sum', '--strict', '-c', 'SHA256SUMS'], timeout: '30s' },
          },
        },
      ],
    });
    try {
      const job = runtime.plan.jobs[0] as Job;
      const backup = await runBackup(runtime, job);
      const manifest = await readManifest(runtime.vault, 'tree', backup.backupId);
      const expected = execFileSync('tar', ['-cf', '-', '-C', tree, '.']);
      expect(manifest.source).toMatchObject({
        kind: 'command',
        command: `tar -cf - -C ${tree} .`,
        streamBytes: expected.length,
      });

      const target = join(work, 'restored');
      const restore = await runRestore(runtime, job, { target });
      expect(await readFile(join(target, 'conf', 'a.yaml'), 'utf8')).toBe('a: 1\n');
      expect((await stat(join(target, 'blob.bin'))).size).toBe(500_000);
      expect(restore.checks).toEqual([
        expect.objectContaining({
          check: 'check-command',
          passed: true,
          detail: expect.stringContaining('OK'),
        }),
      ]);

      await writeFile(join(target, 'conf', 'a.yaml'), 'a: 2\n');
      const [spoiled] = await checkCommand(
        job.source as CommandSourceConfig,
        manifest.source as never,
        target,
        ctx,
      );
      expect(spoiled?.passed).toBe(false);
      expect(spoiled?.detail).toMatch(/conf\/a\.yaml: FAILED/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [
      'exits non-zero',
      { shell: 'echo partial-output; echo disk full >&2; exit 3' },
      /exited with status 3:\ndisk full/,
    ],
    ['writes nothing', { argv: ['true'] }, /wrote nothing to stdout/],
    ['exceeds its timeout', { shell: 'echo started; sleep 30', timeout: '1s' }, /exceeded its timeout of 1s/],
    ['cannot be found', { argv: ['strongbox-no-such-tool'] }, /not found/],
  ])('leaves no complete backup when the command %s', async (_what, backup, message) => {
    const { runtime, dir, fileVault } = await testRuntime({
      jobs: [{ name: 'failing', source: { kind: 'command', backup, restore: { argv: ['cat'] } } }],
    });
    try {
      const started = Date.now();
      const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);
      await expect(attempt).rejects.toBeInstanceOf(SourceError);
      await expect(attempt).rejects.toThrow(message);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await listBackups(fileVault, 'failing')).toEqual([]);
      expect(await vaultFiles(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the backup command', () => {
  it('runs argv without a shell: shell syntax reaches the program as text', async () => {
    const { bytes, result } = await backupBytes(source({ backup: { argv: ['echo', '$HOME | ; `id`'] } }));
    expect(result.status).toBe('fulfilled');
    expect(bytes.status === 'fulfilled' && bytes.value.toString()).toBe('$HOME | ; `id`\n');
  });

  it('runs a shell line only when the plan gives one', async () => {
    const { bytes } = await backupBytes(source({ backup: { shell: 'printf a; printf b | tr b c' } }));
    expect(bytes.status === 'fulfilled' && bytes.value.toString()).toBe('ac');
  });

  it('kills the whole process group at the timeout: no orphan of a shell pipeline survives', async () => {
    const pidFile = join(work, 'sleeper.pid');
    const started = Date.now();
    const { result } = await backupBytes(
      source({ backup: { shell: `echo x; sleep 60 & echo $! > ${pidFile}; wait`, timeout: '1s' } }),
    );
    expect(result.status).toBe('rejected');
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await running(pid)).toBe(false);
  });

  it('hands secrets over in the environment, never argv, and keeps them out of the manifest', async () => {
    const secret = 's3cr3t-token-value';
    const config = source({
      backup: {
        argv: ['sh', '-c', 'printf %s "$API_TOKEN" | sha256sum'],
        secretEnv: { API_TOKEN: { env: 'HOST_TOKEN' } },
      },
    });
    const { bytes, result } = await backupBytes(config, { env: { ...ctx.env, HOST_TOKEN: secret } });
    const digest = execFileSync('sha256sum', { input: secret }).toString();
    expect(bytes.status === 'fulfilled' && bytes.value.toString()).toBe(digest);
    expect(result.status === 'fulfilled' && JSON.stringify(result.value)).not.toContain(secret);
  });

  it('refuses to start when a secret it names is not set, naming the field', async () => {
    const config = source({ backup: { argv: ['cat'], secretEnv: { API_TOKEN: { env: 'HOST_TOKEN' } } } });
    const attempt = backupCommand(config, ctx);
    await expect(attempt).rejects.toBeInstanceOf(PlanError);
    await expect(attempt).rejects.toThrow(
      'source.backup.secretEnv.API_TOKEN: environment variable HOST_TOKEN is not set',
    );
  });
});

describe('the restore command', () => {
  const big = Buffer.alloc(2_000_000, 1);

  it.each([
    [
      'fails',
      { shell: 'cat > /dev/null; echo cannot load >&2; exit 4' },
      /exited with status 4:\ncannot load/,
    ],
    ['stops reading early', { argv: ['true'] }, /stopped reading before the end|exited/],
    ['exceeds its timeout', { shell: 'sleep 30', timeout: '1s' }, /exceeded its timeout of 1s/],
  ])('removes the target when the restore command %s', async (_what, restore, message) => {
    const target = join(work, `restore-${Math.random().toString(36).slice(2)}`);
    const attempt = restoreCommand(
      source({ backup: { argv: ['cat'] }, restore }),
      Readable.from([big]),
      target,
      ctx,
    );
    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(message);
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });

  it('gives the restore command the backup on stdin, in the target, with STRONGBOX_TARGET set', async () => {
    const target = join(work, 'stdin-target');
    await restoreCommand(
      source({
        backup: { argv: ['cat'] },
        restore: { shell: 'cat > got.bin; printf %s "$STRONGBOX_TARGET" > where' },
      }),
      Readable.from([big]),
      target,
      ctx,
    );
    expect((await readFile(join(target, 'got.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(target, 'where'), 'utf8')).toBe(target);
  });
});

describe('the plan', () => {
  const plan = (backup: unknown) => ({
    version: 1,
    vault: { url: 'file:///tmp/v' },
    key: { type: 'local', path: 'k' },
    jobs: [{ name: 'c', source: { kind: 'command', backup, restore: { argv: ['cat'] } } }],
  });

  it.each([
    [{ argv: ['a'], shell: 'b' }, 'jobs[0].source.backup: give exactly one of argv'],
    [{}, 'jobs[0].source.backup: give exactly one of argv'],
    [{ argv: ['a'], timeout: 30 }, 'jobs[0].source.backup.timeout'],
    [{ argv: ['a'], timeout: 'soon' }, "'soon' is not a timeout"],
    [{ argv: ['a'], secretEnv: { T: { env: 'bad name' } } }, 'jobs[0].source.backup.secretEnv.T'],
  ])('refuses %j naming the field', (backup, message) => {
    expect(() => validatePlan(plan(backup))).toThrow(PlanError);
    expect(() => validatePlan(plan(backup))).toThrow(message);
  });
});

describe('doctor', () => {
  it('finds each program on PATH, names a missing one and a missing secret, and warns without a check', async () => {
    const { commandDriver } = await import('#agent/sources/command/index');
    const checks = await commandDriver.doctor(
      source({
        backup: { argv: ['strongbox-missing-tool'] },
        restore: { argv: ['tar', '-xf', '-'], secretEnv: { T: { env: 'UNSET_VAR' } } },
      }),
      ctx,
    );
    expect(checks.map((c) => [c.subject, c.ok, c.warning ?? false])).toEqual([
      ['source.backup', false, false],
      ['source.restore', false, false],
      ['source.check', false, true],
    ]);
    expect(checks[0]?.detail).toMatch(/strongbox-missing-tool not found/);
    expect(checks[1]?.detail).toMatch(/UNSET_VAR is not set/);
  });
});
