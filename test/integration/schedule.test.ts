/**
 * `strongbox schedule install|status|remove` through the real CLI into temporary unit directories:
 * the units a plan renders for each of its hosts, checked by systemd's own `systemd-analyze verify` and
 * `calendar` (skipped only where the binary is absent); cron files; installing twice changes nothing;
 * a job gone from the plan loses its units while files that are not this plan's stay; status reports
 * next and last runs from the agent's records; systemd is told through systemctl only when asked.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSchedules, type SchedulerHost, scheduleStatus } from '#agent/commands/schedule';
import { vaultScope } from '#agent/state';
import { localCalendar, nextRun } from '#core/local-schedule';
import { parsePlan } from '#core/plan';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

const run = promisify(execFile);

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-schedule-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A plan shaped like seed MODAX's: jobs on `db`, a drill on `drill`, Berlin time. */
function sitePlan(jobs = DEFAULT_JOBS): string {
  return `version: 1
name: site
timezone: Europe/Berlin
vault: { url: "file:///srv/vault" }
key: { type: local, path: master.key }
verify: { schedule: cron(0 7 * * ? *) }
hosts:
  db: { tags: { Role: db } }
  drill: { tags: { Role: drill } }
jobs:
${jobs}`;
}

const DEFAULT_JOBS = `  - name: app-db
    host: db
    schedule: cron(0 2 * * ? *)
    scheduleWindowMinutes: 10
    timeout: 4h
    source: { kind: postgres, database: app }
    drill: { schedule: cron(0 4 ? * SAT *), host: drill }
  - name: media
    host: db
    schedule: cron(30 1 ? * MON-FRI *)
    source: { kind: files, paths: [/srv/media] }
  - name: month-end
    host: db
    schedule: cron(0 3 L * ? *)
    source: { kind: files, paths: [/srv/ledger] }
  - name: adhoc
    schedule: cron(0 5 * * ? *)
    source: { kind: files, paths: [/srv/adhoc] }
`;

async function writePlan(name: string, text: string): Promise<string> {
  const path = join(work, `${name}.yaml`);
  await writeFile(path, text);
  return path;
}

async function systemdAnalyze(): Promise<boolean> {
  try {
    await run('systemd-analyze', ['--version']);
    return true;
  } catch {
    return false;
  }
}

const install = (plan: string, dir: string, ...more: string[]) =>
  strongbox(['schedule', 'install', '--plan', plan, '--unit-dir', dir, '--json', ...more]);

describe('schedule install (systemd)', () => {
  it('renders the units of each host, and systemd accepts them', async () => {
    // Prepare
    const plan = await writePlan('site', sitePlan());
    const dir = join(work, 'units-db');
    // Act
    const db = await install(plan, dir, '--systemd', '--host', 'db');
    // Assess: db runs its three scheduled backups and verify of its jobs; no drill, nothing of adhoc.
    expect(db.code, db.stderr).toBe(0);
    const units = [
      'strongbox-site-app-db-backup',
      'strongbox-site-media-backup',
      'strongbox-site-month-end-backup',
      'strongbox-site-verify',
    ].flatMap((unit) => [`${unit}.service`, `${unit}.timer`]);
    expect(db.json.written).toEqual(units);
    expect(db.json.notes).toEqual([
      'job adhoc names no host (jobs[3].host): its schedule is not installed anywhere',
    ]);
    expect((await readdir(dir)).sort()).toEqual([...units].sort());
    const timer = await readFile(join(dir, 'strongbox-site-app-db-backup.timer'), 'utf8');
    expect(timer).toContain('OnCalendar=*-*-* 02:00:00 Europe/Berlin\n');
    expect(timer).toContain('Persistent=true\n');
    expect(timer).toContain('RandomizedDelaySec=600\n');
    const service = await readFile(join(dir, 'strongbox-site-app-db-backup.service'), 'utf8');
    const exec = /^ExecStart=(\S+) .*? backup --plan (\S+) --job app-db$/m.exec(service);
    expect(exec?.[1]).toBe(process.execPath);
    expect(exec?.[2]).toBe(plan);
    expect(service).toContain('TimeoutStartSec=14400\n');
    expect(service).toContain('EnvironmentFile=-/etc/strongbox/site.env\n');
    expect(await readFile(join(dir, 'strongbox-site-verify.service'), 'utf8')).toMatch(
      / verify --plan \S+ --job app-db,media,month-end$/m,
    );
    expect(await readFile(join(dir, 'strongbox-site-month-end-backup.timer'), 'utf8')).toContain(
      'OnCalendar=*-*~01 03:00:00 Europe/Berlin\n',
    );
    // The drill host gets the drill only.
    const drill = await install(plan, join(work, 'units-drill'), '--systemd', '--host', 'drill');
    expect(drill.json.written).toEqual([
      'strongbox-site-app-db-drill.service',
      'strongbox-site-app-db-drill.timer',
    ]);
    if (!(await systemdAnalyze())) return; // only where systemd's tools are not installed at all
    for (const unitDir of [dir, join(work, 'units-drill')]) {
      const names = await readdir(unitDir);
      const verify = await run('systemd-analyze', ['verify', ...names.map((n) => join(unitDir, n))]);
      // verify exits 0 on settings it ignores, and says so on stderr: nothing may be said.
      expect(verify.stderr).toBe('');
    }
  });

  it("computes the same next runs as systemd's own calendar", async () => {
    if (!(await systemdAnalyze())) return; // only where systemd's tools are not installed at all
    const base = new Date('2026-03-27T12:00:00Z'); // the weekend Berlin moves to summer time
    for (const [expression, tz] of [
      ['cron(0 2 * * ? *)', 'Europe/Berlin'],
      ['cron(30 1 ? * MON-FRI *)', 'Europe/Berlin'],
      ['cron(0 3 L * ? *)', 'America/New_York'],
      ['rate(6 hours)', 'Asia/Kolkata'],
      ['cron(0/20 8-9 ? * SUN *)', 'UTC'],
    ] as const) {
      const calendar = localCalendar(expression, tz, 'schedule');
      const { onCalendar } = await import('#core/local-schedule');
      const { stdout } = await run(
        'systemd-analyze',
        [
          'calendar',
          '--iterations=5',
          `--base-time=${base.toISOString().replace('T', ' ').replace('.000Z', ' UTC')}`,
          onCalendar(calendar),
        ],
        { env: { ...process.env, TZ: 'UTC' } },
      );
      const systemd = [...stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC/g)].map((m) =>
        new Date(`${(m[1] as string).replace(' ', 'T')}Z`).toISOString(),
      );
      const ours: string[] = [];
      let after = base;
      for (let i = 0; i < 5; i++) {
        after = nextRun(calendar, after) as Date;
        ours.push(after.toISOString());
      }
      expect(ours, `${expression} in ${tz}`).toEqual(systemd);
    }
  });

  it('rewrites nothing when nothing changed, and removes only what this plan no longer has', async () => {
    // Prepare: an install, plus files that are not this plan's: someone's own unit, another plan's.
    const plan = await writePlan('idem', sitePlan());
    const dir = join(work, 'units-idem');
    expect((await install(plan, dir, '--systemd', '--host', 'db')).code).toBe(0);
    await writeFile(join(dir, 'strongbox-site-notes.timer'), '[Timer]\nOnCalendar=daily\n');
    const other = '# Managed by strongbox schedule install for plan other: …\n[Timer]\nOnCalendar=daily\n';
    await writeFile(join(dir, 'strongbox-other-db-backup.timer'), other);
    const before = await stat(join(dir, 'strongbox-site-media-backup.timer'));
    // Act: the same plan again.
    const again = await install(plan, dir, '--systemd', '--host', 'db');
    // Assess
    expect(again.code, again.stderr).toBe(0);
    expect(again.json.written).toEqual([]);
    expect(again.json.removed).toEqual([]);
    expect(again.json.unchanged).toHaveLength(8);
    expect((await stat(join(dir, 'strongbox-site-media-backup.timer'))).mtimeMs).toBe(before.mtimeMs);
    // Act: media leaves the plan and app-db moves to 03:00.
    await writeFile(
      plan,
      sitePlan(
        DEFAULT_JOBS.replace(/ {2}- name: media\n(?: {4}.*\n)+/, '').replace(
          'cron(0 2 * * ? *)',
          'cron(0 3 * * ? *)',
        ),
      ),
    );
    const changed = await install(plan, dir, '--systemd', '--host', 'db');
    // Assess: media's units are gone, app-db's timer and verify (its job list) rewritten, the rest kept.
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.json.removed).toEqual([
      'strongbox-site-media-backup.service',
      'strongbox-site-media-backup.timer',
    ]);
    expect(changed.json.written).toEqual([
      'strongbox-site-app-db-backup.service',
      'strongbox-site-app-db-backup.timer',
      'strongbox-site-verify.service',
      'strongbox-site-verify.timer',
    ]);
    expect(await readFile(join(dir, 'strongbox-site-app-db-backup.timer'), 'utf8')).toContain('03:00:00');
    expect(await readFile(join(dir, 'strongbox-site-notes.timer'), 'utf8')).toBe(
      '[Timer]\nOnCalendar=daily\n',
    );
    expect(await readFile(join(dir, 'strongbox-other-db-backup.timer'), 'utf8')).toBe(other);
    // remove takes this plan's files and nothing else.
    const removed = await strongbox([
      'schedule',
      'remove',
      '--plan',
      plan,
      '--unit-dir',
      dir,
      '--systemd',
      '--host',
      'db',
      '--json',
    ]);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([
      'strongbox-other-db-backup.timer',
      'strongbox-site-notes.timer',
    ]);
  });

  it("never overwrites a file of the same name that is not Strongbox's", async () => {
    const plan = await writePlan('foreign', sitePlan());
    const dir = join(work, 'units-foreign');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'strongbox-site-media-backup.timer'), '[Timer]\nOnCalendar=hourly\n');
    const result = await install(plan, dir, '--systemd', '--host', 'db');
    expect(result.code).toBe(2);
    expect(result.lastError).toBe(
      `strongbox: error: schedule install: ${join(dir, 'strongbox-site-media-backup.timer')} exists and was not written by strongbox for plan site; move it away or rename the job`,
    );
    expect(await readdir(dir)).toEqual(['strongbox-site-media-backup.timer']);
  });

  it.each([
    [
      ['--host', 'nope'],
      "--host: 'nope' is not one of the plan's hosts (db, drill); pass --host <name> to say which this is",
    ],
    [
      ['--host', 'db', '--cron'],
      'jobs[2].schedule: cron has no "last day of the month" (L); use a systemd timer, or name the days',
    ],
  ])('refuses %j, naming what is wrong', async (args, message) => {
    const plan = await writePlan('refuse', sitePlan());
    const dir = join(work, `units-refuse-${args.join('')}`);
    const result = await install(plan, dir, ...args);
    expect(result.code).toBe(2);
    expect(result.lastError).toBe(`strongbox: error: schedule install: ${message}`);
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('refuses a rate the clock cannot keep, naming the job field', async () => {
    const plan = await writePlan(
      'rate',
      sitePlan(
        '  - name: often\n    host: db\n    schedule: rate(7 minutes)\n    source: { kind: files, paths: [/srv] }\n',
      ),
    );
    const result = await install(plan, join(work, 'units-rate'), '--systemd', '--host', 'db');
    expect(result.code).toBe(2);
    expect(result.lastError).toMatch(
      /^strongbox: error: schedule install: jobs\[0\]\.schedule: rate\(7 minutes\): a local timer runs on the clock/,
    );
  });
});

describe('schedule install (cron)', () => {
  it('writes one cron.d file under the plan time zone; reinstalling changes nothing', async () => {
    const plan = await writePlan(
      'cron',
      sitePlan(DEFAULT_JOBS.replace('cron(0 3 L * ? *)', 'cron(0 3 1 * ? *)')).replace(
        'name: site',
        'name: crony',
      ),
    );
    const dir = join(work, 'cron.d');
    const first = await install(plan, dir, '--cron', '--host', 'db', '--user', 'backup');
    expect(first.code, first.stderr).toBe(0);
    expect(first.json.written).toEqual(['strongbox-crony']);
    const text = await readFile(join(dir, 'strongbox-crony'), 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^# Managed by strongbox schedule install for plan crony: /);
    expect(lines).toContain('CRON_TZ=Europe/Berlin');
    const entries = lines.filter((line) => /^[\d*]/.test(line));
    expect(entries.map((line) => line.split(' ').slice(0, 6).join(' '))).toEqual([
      '0 2 * * * backup',
      '30 1 * * 1-5 backup',
      '0 3 1 * * backup',
      '0 7 * * * backup',
    ]);
    expect(entries[0]).toContain(` backup --plan ${plan} --job app-db --quiet >/dev/null`);
    expect(entries[0]).toContain('[ ! -r /etc/strongbox/crony.env ] || . /etc/strongbox/crony.env;');
    const again = await install(plan, dir, '--cron', '--host', 'db', '--user', 'backup');
    expect(again.json).toMatchObject({ written: [], unchanged: ['strongbox-crony'], removed: [] });
  });
});

describe('schedule status', () => {
  it("reports next runs from the plan and last runs from the agent's records", async () => {
    // Prepare: a one-host plan (no hosts:) whose job is backed up once for real.
    const dir = join(work, 'status');
    await mkdir(dir, { recursive: true });
    const plan = await writeFileVaultPlan(
      dir,
      `  - name: notes
    schedule: cron(0 2 * * ? *)
    source:
      kind: command
      backup: { shell: "echo notes" }
      restore: { argv: [cat] }`,
    );
    const env = { STRONGBOX_STATE_DIR: join(dir, 'state') };
    const units = join(dir, 'units');
    const status = (...more: string[]) =>
      strongbox(
        ['schedule', 'status', '--plan', plan, '--unit-dir', units, '--cron', '--json', ...more],
        env,
      );
    // Not installed yet: status says so and exits 1.
    const missing = await status();
    expect(missing.code).toBe(1);
    expect(missing.json.schedules.map((s: { state: string }) => s.state)).toEqual(['missing', 'missing']);
    // Act
    expect(
      (await strongbox(['schedule', 'install', '--plan', plan, '--unit-dir', units, '--cron'], env)).code,
    ).toBe(0);
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'notes'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const after = await status();
    // Assess
    expect(after.code, after.stderr).toBe(0);
    const [notes, verify] = after.json.schedules;
    expect(notes).toMatchObject({
      command: 'backup',
      jobs: ['notes'],
      state: 'installed',
      result: 'ok',
      source: 'agent',
    });
    expect(Date.now() - Date.parse(notes.last)).toBeLessThan(120_000);
    const expected = nextRun(localCalendar('cron(0 2 * * ? *)', 'UTC', 's'), new Date());
    expect(notes.next).toBe(expected?.toISOString());
    expect(verify).toMatchObject({ command: 'verify', state: 'installed' });
    expect(verify.result).toBeUndefined();
    // A run refused because the job was running is what the record says last.
    await writeFile(
      join(dir, 'state', 'locks', `notes.${vaultScope({ url: `file://${join(dir, 'vault')}` })}.lock`),
      JSON.stringify({
        pid: process.pid,
        host: (await import('node:os')).hostname(),
        command: 'backup',
        startedAt: 'x',
        token: 't',
      }),
    );
    expect((await strongbox(['backup', '--plan', plan, '--job', 'notes'], env)).code).toBe(75);
    const refused = await status();
    expect(refused.code).toBe(1);
    expect(refused.json.schedules[0].result).toBe('refused (already running)');
  }, 300_000);
});

describe('systemd activation', () => {
  /** A systemd that records what it was told and answers `show` like systemctl. */
  function fakeSystemd(): SchedulerHost & { calls: string[][] } {
    const calls: string[][] = [];
    return {
      systemdRunning: true,
      calls,
      async systemctl(args) {
        calls.push(args);
        if (args[0] !== 'show') return '';
        return args.at(-1)?.endsWith('.timer')
          ? 'NextElapseUSecRealtime=Thu 2026-12-03 01:00:00 UTC\nLastTriggerUSec=Wed 2026-12-02 01:00:03 UTC\n'
          : 'Result=success\nExecMainStatus=0\n';
      },
    };
  }

  it('reloads, enables and restarts changed timers, stops removed ones first, and reads status from systemd', async () => {
    const dir = join(work, 'activate');
    const systemd = fakeSystemd();
    const options = (text: string) => ({
      plan: parsePlan(text),
      planPath: '/etc/strongbox/site.yaml',
      env: {},
      host: 'db',
      unitDir: dir,
      activate: true,
      agent: ['/usr/local/bin/strongbox'],
      now: new Date('2026-12-02T01:30:00Z'),
      scheduler: systemd,
    });
    await installSchedules(options(sitePlan()));
    expect(systemd.calls).toEqual([
      ['daemon-reload'],
      [
        'enable',
        'strongbox-site-app-db-backup.timer',
        'strongbox-site-media-backup.timer',
        'strongbox-site-month-end-backup.timer',
        'strongbox-site-verify.timer',
      ],
      [
        'restart',
        'strongbox-site-app-db-backup.timer',
        'strongbox-site-media-backup.timer',
        'strongbox-site-month-end-backup.timer',
        'strongbox-site-verify.timer',
      ],
    ]);
    systemd.calls.length = 0;
    await installSchedules(options(sitePlan()));
    expect(systemd.calls).toEqual([]);
    await installSchedules(
      options(sitePlan(DEFAULT_JOBS.replace(/ {2}- name: month-end\n(?: {4}.*\n)+/, ''))),
    );
    expect(systemd.calls).toEqual([
      ['disable', '--now', 'strongbox-site-month-end-backup.timer'],
      ['daemon-reload'],
      ['enable', 'strongbox-site-verify.timer'],
      ['restart', 'strongbox-site-verify.timer'],
    ]);
    const [first] = await scheduleStatus(
      options(sitePlan(DEFAULT_JOBS.replace(/ {2}- name: month-end\n(?: {4}.*\n)+/, ''))),
    );
    expect(first).toMatchObject({
      unit: 'strongbox-site-app-db-backup.timer',
      source: 'systemd',
      next: 'Thu 2026-12-03 01:00:00 UTC',
      last: 'Wed 2026-12-02 01:00:03 UTC',
      result: 'success (exit 0)',
      state: 'installed',
    });
  });
});
