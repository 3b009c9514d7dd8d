import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import { parsePlan } from '#core/plan';
import {
  chooseBaseBackup,
  parseRecoveryTarget,
  quoteConfValue,
  recoverySettings,
  walFetchCommand,
} from '#core/recovery';
import { checkRecoveryWindow, expiredWal } from '#core/recovery-window';
import { formatLsn, parseLsn, segmentOf } from '#core/wal';

describe('parseRecoveryTarget', () => {
  it.each([
    ['latest', { type: 'latest' }],
    ['time:2026-12-01T22:10:00.5+00:00', { type: 'time', time: '2026-12-01T22:10:00.5+00:00' }],
    ['lsn:0/3000060', { type: 'lsn', lsn: '0/3000060' }],
    ['xid:745', { type: 'xid', xid: '745' }],
    ['name:before-migration', { type: 'name', name: 'before-migration' }],
  ])('reads %s', (text, target) => {
    expect(parseRecoveryTarget(text)).toEqual(target);
  });

  it.each(['time:2026-12-01T22:10:00', 'lsn:3000060', 'xid:abc', 'name:', 'yesterday'])(
    'refuses %s with a PlanError',
    (text) => {
      expect(() => parseRecoveryTarget(text)).toThrow(PlanError);
    },
  );
});

describe('recoverySettings', () => {
  it('promotes at the target, follows the newest timeline and quotes the restore command', () => {
    expect(
      recoverySettings({ type: 'name', name: "it's" }, "strongbox wal-fetch --plan '/p q' %f %p"),
    ).toEqual({
      restore_command: "'strongbox wal-fetch --plan ''/p q'' %f %p'",
      recovery_target_timeline: "'latest'",
      recovery_target_name: "'it''s'",
      recovery_target_inclusive: 'on',
      recovery_target_action: "'promote'",
    });
    expect(recoverySettings({ type: 'latest' }, 'x')).toEqual({
      restore_command: "'x'",
      recovery_target_timeline: "'latest'",
    });
    expect(quoteConfValue('a\\b')).toBe("'a\\\\b'");
  });

  it("writes a UTC time with a numeric offset: PostgreSQL refuses 'Z' in recovery_target_time at start", () => {
    expect(
      recoverySettings(parseRecoveryTarget('time:2026-12-01T22:10:00.123456Z'), 'x').recovery_target_time,
    ).toBe("'2026-12-01T22:10:00.123456+00:00'");
    expect(
      recoverySettings({ type: 'time', time: '2026-12-01T23:10:00+01:00' }, 'x').recovery_target_time,
    ).toBe("'2026-12-01T23:10:00+01:00'");
  });

  it('builds the wal-fetch command with shell-quoted paths', () => {
    expect(walFetchCommand('strongbox', "/etc/it's/plan.yaml", 'pg-main')).toBe(
      "strongbox wal-fetch --plan '/etc/it'\\''s/plan.yaml' --job pg-main -q %f %p",
    );
    expect(walFetchCommand('strongbox', '/etc/plan.yaml', 'pg-main', 'offsite')).toBe(
      'strongbox wal-fetch --plan /etc/plan.yaml --job pg-main --from offsite -q %f %p',
    );
  });
});

describe('chooseBaseBackup', () => {
  const backups = [
    { backupId: '20261201T010000Z-aaaaaa', finishedAt: '2026-12-01T01:05:00Z', stopLsn: '0/5000000' },
    { backupId: '20261202T010000Z-bbbbbb', finishedAt: '2026-12-02T01:05:00Z', stopLsn: '0/9000000' },
  ];

  it('takes the newest backup that ended before a time or an LSN, and the newest otherwise', () => {
    expect(chooseBaseBackup(backups, { type: 'time', time: '2026-12-01T12:00:00+00:00' })?.backupId).toBe(
      '20261201T010000Z-aaaaaa',
    );
    expect(chooseBaseBackup(backups, { type: 'lsn', lsn: '0/9000001' })?.backupId).toBe(
      '20261202T010000Z-bbbbbb',
    );
    expect(chooseBaseBackup(backups, { type: 'xid', xid: '9' })?.backupId).toBe('20261202T010000Z-bbbbbb');
    expect(chooseBaseBackup(backups, { type: 'time', time: '2026-11-30T00:00:00Z' })).toBeUndefined();
  });
});

describe('WAL names', () => {
  it('maps LSNs to segments', () => {
    expect(segmentOf(1, parseLsn('0/2000028'), 16 * 1024 * 1024)).toBe('000000010000000000000002');
    expect(segmentOf(3, parseLsn('1/FF000000'), 16 * 1024 * 1024)).toBe('0000000300000001000000FF');
    expect(formatLsn(parseLsn('1/FF000028'))).toBe('1/FF000028');
  });
});

it('examples/pitr.yaml is a valid plan with a logical and a physical job', () => {
  const path = join(import.meta.dirname, '..', '..', '..', 'examples', 'pitr.yaml');
  const plan = parsePlan(readFileSync(path, 'utf8'), path);
  expect(plan.jobs.map((j) => j.source.kind)).toEqual(['postgres', 'postgres-physical']);
});

describe('expiredWal', () => {
  const base = (backupId: string, finishedAt: string, first: string, last: string) =>
    ({
      backupId,
      finishedAt,
      source: {
        kind: 'postgres-physical',
        timeline: Number.parseInt(first.slice(0, 8), 16),
        firstWalSegment: first,
        lastWalSegment: last,
        walSegmentBytes: 16 * 1024 * 1024,
      },
    }) as unknown as Manifest;
  const manifests = [
    base(
      '20261201T010000Z-aaaaaa',
      '2026-12-01T01:05:00Z',
      '000000010000000000000003',
      '000000010000000000000003',
    ),
    base(
      '20261208T010000Z-bbbbbb',
      '2026-12-08T01:05:00Z',
      '000000010000000000000009',
      '00000001000000000000000A',
    ),
  ];
  const names = [
    '000000010000000000000002',
    '000000010000000000000003',
    '000000010000000000000004.00000028.backup',
    '000000010000000000000008',
    '000000010000000000000009',
    '00000002.history',
    '00000002000000000000000B',
  ];

  it('expires the WAL before the newest base backup that ended before the window, never history files', () => {
    expect(expiredWal(manifests, names, new Date('2026-12-09T00:00:00Z'))).toEqual({
      anchorBackupId: '20261208T010000Z-bbbbbb',
      expire: [
        '000000010000000000000002',
        '000000010000000000000003',
        '000000010000000000000004.00000028.backup',
        '000000010000000000000008',
      ],
    });
    expect(expiredWal(manifests, names, new Date('2026-12-05T00:00:00Z')).expire).toEqual([
      '000000010000000000000002',
    ]);
  });

  it('keeps everything when no base backup ended before the window starts', () => {
    expect(expiredWal(manifests, names, new Date('2026-11-30T00:00:00Z'))).toEqual({ expire: [] });
  });
  it('verify counts WAL expired before the window as no gap: the older base backup restores to its own end', () => {
    const windowStart = new Date('2026-12-09T00:00:00Z');
    const kept = names.filter((n) => !expiredWal(manifests, names, windowStart).expire.includes(n));
    const facts = { job: 'pg', manifests, walNames: [...kept, '00000001000000000000000B'], now: windowStart };

    const withWindow = checkRecoveryWindow({ ...facts, windowStart });
    const without = checkRecoveryWindow(facts);

    expect(withWindow.findings.filter((f) => f.severity === 'critical')).toEqual([]);
    expect(withWindow.window.earliest).toBe('2026-12-08T01:05:00Z');
    expect(without.findings.find((f) => f.check === 'wal-gap')?.backupId).toBe('20261201T010000Z-aaaaaa');
  });
});
