/**
 * A failed backup whose cleanup fails too: the error says the cause first (the failed source) and the
 * cleanup problem as a sentence after it — never the S3 server's raw reply to the cleanup — and the
 * agent doctor's Object Lock check against a bucket that answers with another configuration.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { toVaultError } from '#adapters/vaults/s3';
import { runBackup } from '#agent/backup';
import { doctorCommand } from '#agent/commands/doctor';
import type { Runtime } from '#agent/runtime';
import { describeError, SourceError } from '#core/errors';
import type { Job } from '#core/plan';
import type { ObjectLockState, Vault } from '#core/ports';
import { testRuntime } from '#test/support/runtime';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** An S3 server's refusal, as the SDK throws it: the reply's XML body in the message. */
const accessDenied = () =>
  Object.assign(new Error('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>'), {
    name: 'AccessDenied',
    $metadata: { httpStatusCode: 403 },
  });

/** The vault with `delete` refused the way the S3 vault reports it, and maybe an Object Lock answer. */
function refusingDeletes(inner: Vault, lock?: ObjectLockState): Vault {
  return {
    url: inner.url,
    put: (key, body, options) => inner.put(key, body, options),
    get: (key, options) => inner.get(key, options),
    head: (key) => inner.head(key),
    list: (prefix) => inner.list(prefix),
    delete: async (keys) => {
      throw toVaultError(accessDenied(), `delete ${keys.length} object(s) in ${inner.url}`);
    },
    ...(lock ? { objectLock: async () => lock } : {}),
  };
}

describe('a failed backup whose cleanup is refused', () => {
  it('says the cause first and the cleanup problem as a sentence, not the raw reply', async () => {
    // Prepare: a source that writes data, then fails
    const { runtime, dir } = await testRuntime({
      jobs: [
        {
          name: 'dump',
          source: {
            kind: 'command',
            backup: { shell: 'head -c 100000 /dev/zero; exit 3' },
            restore: { argv: ['cat'] },
          },
        },
      ],
      wrapVault: (vault) => refusingDeletes(vault),
    });
    dirs.push(dir);

    // Act
    const thrown = await runBackup(runtime, runtime.plan.jobs[0] as Job).catch((e: unknown) => e);

    // Assess: still the source's error, with the cleanup after it
    expect(thrown).toBeInstanceOf(SourceError);
    const line = describeError(thrown);
    expect(line).toMatch(/exit(ed)?( with)?( status| code)? 3/);
    expect(line).toMatch(
      /; cleaning up also failed: the data of backup \S+ could not be removed from file:\/\/\S+ \(the server answered AccessDenied \(HTTP 403\)\); it stays as an incomplete backup, which verify reports and the next backup or prune removes$/,
    );
    expect(line.indexOf('cleaning up')).toBeGreaterThan(line.search(/3/));
    expect(line).not.toContain('<?xml');
  });
});

describe('doctor of a vault whose Object Lock differs from the plan', () => {
  async function doctorWith(lock: ObjectLockState): Promise<string> {
    const { runtime, dir } = await testRuntime({
      jobs: [{ name: 'files', source: { kind: 'files', paths: ['/etc/hostname'] } }],
      wrapVault: (vault) => refusingDeletes(vault, lock),
    });
    dirs.push(dir);
    const locked: Runtime = {
      ...runtime,
      plan: {
        ...runtime.plan,
        vault: { ...runtime.plan.vault, objectLock: { mode: 'compliance', days: 30 } },
      },
    };
    const outcome = await doctorCommand(locked, {});
    expect(outcome.exitCode).toBe(2);
    return outcome.text.split('\n').find((line) => line.includes('vault object lock')) ?? '';
  }

  it.each<[string, ObjectLockState, RegExp]>([
    ['none', { enabled: false }, /but the bucket of \S+ has none: backups can be deleted/],
    [
      'another mode',
      { enabled: true, mode: 'governance', days: 30 },
      /default retention is governance, 30 days, the plan says compliance, 30 days$/,
    ],
    [
      'other days',
      { enabled: true, mode: 'compliance', days: 7 },
      /default retention is compliance, 7 days, the plan says compliance, 30 days$/,
    ],
    [
      'no default retention',
      { enabled: true },
      /is no default retention, the plan says compliance, 30 days$/,
    ],
  ])('fails a bucket with %s', async (_what, lock, line) => {
    expect(await doctorWith(lock)).toMatch(new RegExp(`^FAIL  vault object lock: .*${line.source}`));
  });
});
