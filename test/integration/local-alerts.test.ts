/**
 * The agent's own alerts, metrics and storage watch, through the real CLI: Slack and a generic webhook
 * answered by a local HTTP server, e-mail through a fake sendmail on PATH, the node_exporter textfile
 * parsed with a Prometheus text-format parser, and the vault's fill level from a real statfs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema } from '#core/alerts';
import { strongbox } from '#test/support/cli';

interface Received {
  path: string;
  body: string;
  /** Processes whose command line held a secret while the request was being answered. */
  secretsInArgv: string[];
}

/** A local HTTP server standing in for Slack and the webhook; records each request. */
async function startReceiver(
  secrets: () => string[],
): Promise<{ server: Server; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', async () => {
      received.push({
        path: request.url ?? '',
        body: Buffer.concat(parts).toString('utf8'),
        secretsInArgv: await processesHolding(secrets()),
      });
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, received };
}

/** Every process whose /proc/<pid>/cmdline contains one of the secrets. */
async function processesHolding(secrets: readonly string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (secrets.some((secret) => cmdline.includes(secret)))
      hits.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return hits;
}

const FAKE_SENDMAIL = `#!/bin/sh
# Records how it was called, its parent's command line (the agent) and the message on stdin.
printf '%s\\n' "$@" > "$SENDMAIL_DIR/argv.$$"
tr '\\0' ' ' < /proc/$PPID/cmdline > "$SENDMAIL_DIR/parent.$$"
cat > "$SENDMAIL_DIR/message.$$"
`;

async function mails(dir: string): Promise<{ argv: string; parent: string; message: string }[]> {
  const names = (await readdir(dir)).filter((n) => n.startsWith('message.'));
  return Promise.all(
    names.map(async (name) => {
      const pid = name.slice('message.'.length);
      return {
        argv: await readFile(join(dir, `argv.${pid}`), 'utf8'),
        parent: await readFile(join(dir, `parent.${pid}`), 'utf8'),
        message: await readFile(join(dir, name), 'utf8'),
      };
    }),
  );
}

/** The sum of the textfile's series of one metric whose labels include `labels` (counters split by tier). */
function sumOf(text: string, name: string, labels: Record<string, string>): number {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  return (family?.metrics ?? [])
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value), 0);
}

/** The textfile's value of one series, by name and labels (subset). */
function seriesValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const metric = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return metric?.value === undefined ? undefined : Number(metric.value);
}

describe('local alerts and metrics', () => {
  let work: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let slackUrl: string;
  let hookUrl: string;
  const token = randomBytes(8).toString('hex');
  const slackSecret = `slack-secret-${token}`;
  const hookSecret = `hook-secret-${token}`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'strongbox-alerts-'));
    receiver = await startReceiver(() => [slackSecret, hookSecret]);
    slackUrl = `http://127.0.0.1:${receiver.port}/services/T0/B0/${slackSecret}`;
    hookUrl = `http://127.0.0.1:${receiver.port}/hook/${hookSecret}`;
    await mkdir(join(work, 'bin'));
    await writeFile(join(work, 'bin', 'sendmail'), FAKE_SENDMAIL, { mode: 0o755 });
    const keygen = await strongbox(['keygen', join(work, 'master.key')]);
    expect(keygen.code).toBe(0);
  });

  afterAll(async () => {
    await new Promise((resolve) => receiver.server.close(resolve));
    await rm(work, { recursive: true, force: true });
  });

  /** A plan in its own directory: a command job that fails unless `<dir>/ok` exists. */
  async function writePlan(
    name: string,
    sections: string,
  ): Promise<{ dir: string; plan: string; mail: string }> {
    const dir = join(work, name);
    const mail = join(dir, 'mail');
    await mkdir(mail, { recursive: true });
    const plan = join(dir, 'plan.yaml');
    await writeFile(join(dir, 'hook-url'), `${hookUrl}\n`, { mode: 0o600 });
    await writeFile(
      plan,
      `version: 1
name: site
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: ${join(work, 'master.key')} }
${sections}
jobs:
  - name: exports
    source:
      kind: command
      backup: { shell: 'test -f ${dir}/ok && echo exported-rows || { echo "export tool lost its database" >&2; exit 3; }' }
      restore: { shell: 'cat > restored' }
`,
    );
    return { dir, plan, mail };
  }

  const envOf = (mail: string, extra: Record<string, string> = {}) => ({
    PATH: `${join(work, 'bin')}:${process.env.PATH}`,
    SENDMAIL_DIR: mail,
    ...extra,
  });

  it('a failing backup sends one alert per channel naming job, host, the error and what to do; counters carry on', async () => {
    // Prepare
    const { dir, plan, mail } = await writePlan(
      'failing',
      `notify:
  slack: { webhookUrl: { env: TEST_SLACK_URL } }
  webhook: { url: { file: ${join(work, 'failing', 'hook-url')} } }
  email: { to: [ops@example.com], from: strongbox@example.com, sendmail: sendmail }
metrics: { textfile: ${join(work, 'failing', 'textfile', 'strongbox.prom')} }`,
    );
    const textfile = join(dir, 'textfile', 'strongbox.prom');
    const env = envOf(mail, { TEST_SLACK_URL: slackUrl });
    const before = receiver.received.length;
    await writeFile(join(dir, 'ok'), '');

    // Act 1: a successful backup (alerts go out for failures and warnings by default)
    const ok = await strongbox(['backup', '--plan', plan, '--json'], env);

    // Assess 1
    expect(ok.code, ok.stderr).toBe(0);
    expect(receiver.received.length).toBe(before);
    expect(await mails(mail)).toEqual([]);
    const labels = { job: 'exports', kind: 'command', vault: `file://${join(dir, 'vault')}` };
    let text = await readFile(textfile, 'utf8');
    expect(seriesValue(text, 'strongbox_backup_success_total', { ...labels, tier: ok.json.tier })).toBe(1);
    expect(seriesValue(text, 'strongbox_backup_size_bytes', labels)).toBe(ok.json.storedBytes);
    expect(seriesValue(text, 'strongbox_backup_age_seconds', labels)).toBeLessThan(60);
    expect(seriesValue(text, 'strongbox_backup_failure_total', labels)).toBe(0);
    expect(seriesValue(text, 'strongbox_backup_last_run_success', labels)).toBe(1);

    // Act 2: the same job fails
    await rm(join(dir, 'ok'));
    const failed = await strongbox(['backup', '--plan', plan, '--job', 'exports'], env);

    // Assess 2: the run failed as before, with its error line last
    expect(failed.code).toBe(2);
    expect(failed.lastError).toMatch(/^strongbox: error: backup exports: .*lost its database/);
    // one Slack message and one webhook POST
    const sent = receiver.received.slice(before);
    expect(sent.map((r) => r.path).sort()).toEqual([`/hook/${hookSecret}`, `/services/T0/B0/${slackSecret}`]);
    const slack = JSON.parse(sent.find((r) => r.path.startsWith('/services/'))?.body ?? '{}');
    expect(slack.text).toBe(`CRITICAL — Backup failed: exports on ${hostname()}`);
    const slackText = JSON.stringify(slack.blocks);
    expect(slackText).toContain('lost its database');
    expect(slackText).toContain('What to do next');
    expect(slackText).toContain(`strongbox doctor --plan ${plan} --job exports`);
    const alert = alertSchema.parse(JSON.parse(sent.find((r) => r.path.startsWith('/hook/'))?.body ?? '{}'));
    expect(alert).toMatchObject({ severity: 'critical', job: 'exports', host: hostname(), plan: 'site' });
    expect(alert.details.join('\n')).toContain('lost its database');
    expect(alert.nextSteps.length).toBeGreaterThan(0);
    // one e-mail, through sendmail -t -oi with the recipients in the headers
    const [email, ...more] = await mails(mail);
    expect(more).toEqual([]);
    expect(email?.argv).toBe('-t\n-oi\n');
    expect(email?.message).toMatch(
      /^From: strongbox@example\.com\nTo: ops@example\.com\nSubject: \[Strongbox CRITICAL\] Backup failed: exports on /,
    );
    expect(email?.message).toContain('What to do next');
    expect(email?.message).toContain('lost its database');
    // secrets: in no process's argv while delivering, not in any output, mail or the textfile
    expect(sent.flatMap((r) => r.secretsInArgv)).toEqual([]);
    text = await readFile(textfile, 'utf8');
    for (const secret of [slackSecret, hookSecret]) {
      for (const output of [
        ok.stdout,
        ok.stderr,
        failed.stdout,
        failed.stderr,
        email?.parent,
        email?.message,
        text,
      ]) {
        expect(output).not.toContain(secret);
      }
    }
    // metrics: the failure counted, the success and the newest backup's size kept
    expect(seriesValue(text, 'strongbox_backup_success_total', labels)).toBe(1);
    expect(seriesValue(text, 'strongbox_backup_failure_total', labels)).toBe(1);
    expect(seriesValue(text, 'strongbox_backup_last_run_success', labels)).toBe(0);
    expect(seriesValue(text, 'strongbox_backup_size_bytes', labels)).toBe(ok.json.storedBytes);
    expect(seriesValue(text, 'strongbox_backup_age_seconds', labels)).toBeGreaterThanOrEqual(0);

    // Act 3: it works again; the counters carried over from the file
    await writeFile(join(dir, 'ok'), '');
    const again = await strongbox(['backup', '--plan', plan, '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    text = await readFile(textfile, 'utf8');
    expect(sumOf(text, 'strongbox_backup_success_total', labels)).toBe(2);
    expect(sumOf(text, 'strongbox_backup_failure_total', labels)).toBe(1);
    expect(seriesValue(text, 'strongbox_backup_size_bytes', labels)).toBe(again.json.storedBytes);
    expect(seriesValue(text, 'strongbox_backup_success_total', { ...labels, tier: again.json.tier })).toBe(
      again.json.tier === ok.json.tier ? 2 : 1,
    );
    expect(await readdir(join(dir, 'textfile'))).toEqual(['strongbox.prom']);
  });

  it('an alert that cannot be delivered is a printed warning and never fails the backup', async () => {
    // Prepare: alerts on success too; the webhook's port is closed, the Slack variable unset
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const { dir, plan, mail } = await writePlan(
      'undeliverable',
      `notify:
  on: [failure, warning, success]
  slack: { webhookUrl: { env: TEST_SLACK_URL_UNSET } }
  webhook: { url: { file: ${join(work, 'undeliverable', 'hook-url')} } }
  email: { to: [ops@example.com], sendmail: sendmail }`,
    );
    const deadSecret = `dead-secret-${token}`;
    await writeFile(join(dir, 'hook-url'), `http://127.0.0.1:${closedPort}/${deadSecret}\n`);
    await writeFile(join(dir, 'ok'), '');

    // Act
    const run = await strongbox(['backup', '--plan', plan], envOf(mail));

    // Assess
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      'strongbox: warning: alert not delivered (slack): notify.slack.webhookUrl: environment variable TEST_SLACK_URL_UNSET is not set on this host',
    );
    expect(run.stderr).toMatch(
      /strongbox: warning: alert not delivered \(webhook\): the webhook did not take the message after 3 attempts \(last: network error ECONNREFUSED\)/,
    );
    expect(run.stderr).not.toContain(deadSecret);
    expect(run.stderr).not.toContain('strongbox: error:');
    const [email] = await mails(mail);
    expect(email?.message).toContain(`Subject: [Strongbox INFO] Backup done: exports on ${hostname()}`);
  });

  it('the storage watch reports a file vault fuller than the threshold, from a real statfs, also before the vault exists', async () => {
    // Prepare: thresholds just below and just above what the temp file system holds now
    const stats = await statfs(work);
    const used = (stats.blocks - stats.bfree) / (stats.blocks - stats.bfree + stats.bavail);
    const percent = used * 100;
    expect(percent).toBeGreaterThan(2);
    expect(percent).toBeLessThan(98);
    const below = Math.floor(percent) - 1;
    const above = Math.ceil(percent) + 1;
    const over = await writePlan(
      'fill-over',
      `storage: { warnAbovePercent: ${below}, criticalAbovePercent: ${above} }
metrics: { textfile: ${join(work, 'fill-over', 'strongbox.prom')} }`,
    );
    const under = await writePlan(
      'fill-under',
      `storage: { warnAbovePercent: ${above}, criticalAbovePercent: ${above} }`,
    );

    // Act: verify before any backup (the vault directory does not exist yet), and doctor
    const verifyOver = await strongbox(['verify', '--plan', over.plan, '--json']);
    const verifyUnder = await strongbox(['verify', '--plan', under.plan, '--json']);
    const doctor = await strongbox(['doctor', '--plan', over.plan, '--json']);
    await writeFile(join(over.dir, 'ok'), '');
    const backup = await strongbox(['backup', '--plan', over.plan]);

    // Assess
    const fill = verifyOver.json.findings.filter((f: { check: string }) => f.check === 'vault-fill');
    expect(fill).toHaveLength(1);
    expect(fill[0]).toMatchObject({ severity: 'warning', job: 'exports' });
    expect(fill[0].message).toContain(`(${over.dir}) is `);
    expect(fill[0].message).toContain(`% full, above ${below}%`);
    expect(verifyUnder.json.findings.filter((f: { check: string }) => f.check === 'vault-fill')).toEqual([]);
    expect(doctor.json.checks.find((c: { subject: string }) => c.subject === 'vault fill')).toMatchObject({
      ok: false,
      warning: true,
    });
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stderr).toMatch(
      /strongbox: warning: the file system of vault .* % full|strongbox: warning: the file system of vault .*% full, above/,
    );
    const text = await readFile(join(over.dir, 'strongbox.prom'), 'utf8');
    const ratio = seriesValue(text, 'strongbox_vault_used_ratio', {
      vault: `file://${join(over.dir, 'vault')}`,
    });
    expect(ratio).toBeGreaterThan((percent - 1) / 100);
    expect(ratio).toBeLessThan((percent + 1) / 100);
  });

  it('verify and drill alert with their findings and write drill and freshness metrics', async () => {
    // Prepare: a webhook for every run, and a vault with no backup yet
    const { dir, plan, mail } = await writePlan(
      'verify-drill',
      `notify:
  on: [failure, warning, success]
  webhook: { url: { file: ${join(work, 'verify-drill', 'hook-url')} } }
metrics: { textfile: ${join(work, 'verify-drill', 'strongbox.prom')} }`,
    );
    const env = envOf(mail);
    const alerts = () =>
      receiver.received
        .filter((r) => r.path === `/hook/${hookSecret}`)
        .map((r) => alertSchema.parse(JSON.parse(r.body)));
    const before = alerts().length;

    // Act 1: verify finds no backup
    const empty = await strongbox(['verify', '--plan', plan], env);

    // Assess 1: one critical alert carrying the verify findings
    expect(empty.code).toBe(2);
    const [verifyAlert] = alerts().slice(before);
    expect(verifyAlert?.title).toBe(`Verification: 1 critical in 1 of 1 job on ${hostname()}`);
    expect(verifyAlert?.findings).toContainEqual(
      expect.objectContaining({ severity: 'critical', job: 'exports', check: 'no-backup' }),
    );
    expect(verifyAlert?.nextSteps.join('\n')).toContain(`strongbox backup --plan ${plan} --job exports`);

    // Act 2: a backup, a drill and a verify, all passing
    await writeFile(join(dir, 'ok'), '');
    expect((await strongbox(['backup', '--plan', plan], env)).code).toBe(0);
    const drill = await strongbox(['drill', '--plan', plan, '--json'], env);
    const verify = await strongbox(['verify', '--plan', plan, '--json'], env);

    // Assess 2
    expect(drill.code, drill.stderr).toBe(0);
    expect(verify.code, verify.stderr).toBe(0);
    const titles = alerts()
      .slice(before + 1)
      .map((a) => a.title);
    expect(titles).toEqual([
      `Backup done: exports on ${hostname()}`,
      `Restore drill passed: exports on ${hostname()}`,
      `Verification passed: 1 job on ${hostname()}`,
    ]);
    const text = await readFile(join(dir, 'strongbox.prom'), 'utf8');
    const labels = { job: 'exports', kind: 'command' };
    expect(seriesValue(text, 'strongbox_drill_duration_seconds', labels)).toBeCloseTo(
      drill.json.durationSeconds,
      3,
    );
    expect(seriesValue(text, 'strongbox_drill_success', labels)).toBe(1);
    expect(seriesValue(text, 'strongbox_findings', { ...labels, severity: 'critical' })).toBe(0);
    expect(seriesValue(text, 'strongbox_backup_age_seconds', labels)).toBeLessThan(120);
    expect(
      seriesValue(text, 'strongbox_last_run_timestamp_seconds', { ...labels, command: 'drill' }),
    ).toBeGreaterThan(0);
  });

  it('a failing wal-push alerts once an hour at most, naming the job; a stored segment sends none, even with on: success, and re-arms the alert', async () => {
    // Prepare: a point-in-time job (wal-push needs no server) alerting on every status
    const dir = join(work, 'wal');
    const mail = join(dir, 'mail');
    await mkdir(mail, { recursive: true });
    const plan = join(dir, 'plan.yaml');
    await writeFile(
      plan,
      `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: ${join(work, 'master.key')} }
notify:
  on: [failure, warning, success]
  email: { to: [dba@example.com], sendmail: sendmail }
jobs:
  - name: pitr
    source: { kind: postgres-physical, host: 127.0.0.1, port: 5432, user: postgres }
`,
    );
    await writeFile(join(dir, '000000010000000000000001'), randomBytes(64 * 1024));

    const env = envOf(mail, { STRONGBOX_STATE_DIR: join(dir, 'state') });
    const push = (name: string) =>
      strongbox(['wal-push', '--plan', plan, '--job', 'pitr', join(dir, name)], env);

    // Act
    const stored = await push('000000010000000000000001');
    const missing = await push('000000010000000000000002');
    // PostgreSQL calls archive_command again a minute later, and again: no alert storm.
    const retried = await push('000000010000000000000002');

    // Assess
    expect(stored.code, stored.stderr).toBe(0);
    expect(missing.code).toBe(2);
    expect(missing.lastError).toMatch(/^strongbox: error: wal-push pitr: /);
    expect(retried.code).toBe(2);
    expect(retried.stderr).toContain('alert not sent: wal-push of pitr already alerted at');
    const sent = await mails(mail);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.message).toContain(
      `Subject: [Strongbox CRITICAL] WAL archiving failed: pitr on ${hostname()}`,
    );
    expect(sent[0]?.message).toContain('PostgreSQL keeps the WAL file and calls archive_command again');

    // Once a segment is stored again, the next failure alerts at once.
    await writeFile(join(dir, '000000010000000000000002'), randomBytes(64 * 1024));
    expect((await push('000000010000000000000002')).code).toBe(0);
    expect((await push('000000010000000000000003')).code).toBe(2);
    expect(await mails(mail)).toHaveLength(2);
  });
});
