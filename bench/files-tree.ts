/**
 * The `files` bench suite (`npm run bench -- files`): a file tree of BENCH_FILES small files (default
 * 1,000,000) backed up and restored, side by side in one run, by strongbox (a `files` job, file vault), by
 * `tar -cf - | zstd -1` / `zstd -dc | tar -xf -`, and by restic (Debian's 0.14 package; a fresh local
 * repository per run, so every restic backup is a first one): wall time, stored size, peak RSS.
 *
 * The tree is a realistic mix, written by this process from a fixed seed (BENCH_SEED) in a temp dir on
 * the same disk as the vault and the repositories, and removed afterwards: config trees (small
 * `key = value` files in deep directories), source checkouts (many small text files, one in ten an exact
 * copy of another, as vendored code is), a few larger incompressible media files, and symbolic links.
 * It is laid out in ten parts of BENCH_FILES/10 files each; strongbox also backs up one part alone, so the
 * agent's peak RSS is measured at BENCH_FILES/10 and at BENCH_FILES in the same run.
 *
 * Goals (issue #15): strongbox's first backup not slower than restic's; the agent's peak RSS flat in the
 * number of files, which here means at most 1.2× from BENCH_FILES/10 to BENCH_FILES.
 *
 * Options (env): BENCH_FILES (default 1000000), BENCH_RUNS (default 3; medians), BENCH_SEED (default 1).
 */
import { createCipheriv } from 'node:crypto';
import { closeSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cli,
  duBytes,
  exec,
  type Goal,
  MiB,
  machineLine,
  measure,
  measureAgent,
  measureShell,
  type Run,
  runs,
  type StepMeasure,
  StepSeries,
  type Suite,
  stepTable,
} from './lib';

const files = Number(process.env.BENCH_FILES ?? 1_000_000);
const seed = Number(process.env.BENCH_SEED ?? 1);
const PARTS = 10;
/** The flat-RSS threshold: peak RSS at BENCH_FILES over peak RSS at BENCH_FILES/10. */
const FLAT_RSS = 1.2;

/** What the generator wrote. */
export interface TreeStats {
  /** Regular files (symbolic links not included). */
  files: number;
  symlinks: number;
  directories: number;
  bytes: number;
  mediaBytes: number;
}

/** mulberry32: a small deterministic PRNG, [0, 1). */
function prng(start: number): () => number {
  let a = start >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A pool of text lines drawn from `line()`, `bytes` long; files are slices of it. */
function pool(bytes: number, line: () => string): Buffer {
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const next = `${line()}\n`;
    parts.push(next);
    length += next.length;
  }
  return Buffer.from(parts.join(''));
}

/**
 * Writes the tree under `dir` (parts `part-0` … `part-9`, `filesPerPart` regular files each) and returns
 * what it wrote. One process, synchronous writes, no process per file.
 */
export function generateTree(dir: string, filesPerPart: number, seedValue: number): TreeStats {
  const rand = prng(seedValue);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
  const words = ['user', 'id', 'value', 'config', 'buffer', 'stream', 'node', 'index', 'result', 'error'];
  const more = ['count', 'name', 'path', 'size', 'time', 'key', 'data', 'item', 'list', 'map', 'state'];
  const vocab = [...words, ...more, 'request', 'response', 'handler', 'options', 'context', 'service'];
  const ident = () => `${pick(vocab)}${pick(vocab)[0]?.toUpperCase()}${pick(vocab).slice(1)}`;
  const code = pool(4 * MiB, () => {
    const indent = ' '.repeat(2 * Math.floor(rand() * 4));
    const forms = [
      () => `${indent}const ${ident()} = ${ident()}(${ident()}, ${Math.floor(rand() * 1000)});`,
      () => `${indent}if (${ident()}.${pick(vocab)} === ${ident()}) return ${ident()};`,
      () => `${indent}// ${pick(vocab)} ${pick(vocab)} ${pick(vocab)} of the ${pick(vocab)}`,
      () => `${indent}export function ${ident()}(${ident()}: ${pick(['string', 'number', 'Buffer'])}) {`,
      () => `${indent}}`,
    ];
    return pick(forms)();
  });
  const conf = pool(MiB, () => {
    const value =
      rand() < 0.5 ? String(Math.floor(rand() * 65536)) : `/var/lib/${pick(vocab)}/${pick(vocab)}`;
    return rand() < 0.1 ? `[${pick(vocab)}.${pick(vocab)}]` : `${pick(vocab)}_${pick(vocab)} = ${value}`;
  });
  const stats: TreeStats = { files: 0, symlinks: 0, directories: 0, bytes: 0, mediaBytes: 0 };
  const made = new Set<string>();
  const mkdirs = (path: string) => {
    if (made.has(path)) return;
    mkdirSync(path, { recursive: true });
    made.add(path);
    stats.directories++;
  };
  const write = (path: string, header: Buffer, body: Buffer) => {
    const fd = openSync(path, 'w', 0o644);
    try {
      writeSync(fd, header);
      writeSync(fd, body);
    } finally {
      closeSync(fd);
    }
    stats.files++;
    stats.bytes += header.length + body.length;
  };
  const slice = (from: Buffer, length: number) => {
    const start = Math.floor(rand() * (from.length - length));
    return from.subarray(start, start + length);
  };
  for (let part = 0; part < PARTS; part++) {
    const root = join(dir, `part-${part}`);
    let left = filesPerPart;
    const recent: { header: Buffer; body: Buffer }[] = [];
    // Media: about 512 bytes per small file of the part, in files of at most 12 MiB, incompressible.
    const mediaBytes = filesPerPart * 512;
    const mediaCount = Math.max(1, Math.ceil(mediaBytes / (12 * MiB)));
    mkdirs(join(root, 'media'));
    for (let m = 0; m < mediaCount && left > 0; m++, left--) {
      const iv = Buffer.alloc(16);
      iv.writeUInt32BE(seedValue, 0);
      iv.writeUInt32BE(part * 1000 + m, 4);
      const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), iv);
      const size = Math.floor(mediaBytes / mediaCount);
      const chunk = Buffer.alloc(MiB);
      const fd = openSync(join(root, 'media', `clip-${m}.mp4`), 'w', 0o644);
      try {
        for (let written = 0; written < size; written += MiB) {
          writeSync(fd, cipher.update(chunk.subarray(0, Math.min(MiB, size - written))));
        }
      } finally {
        closeSync(fd);
      }
      stats.files++;
      stats.bytes += size;
      stats.mediaBytes += size;
    }
    let serial = 0;
    while (left > 0) {
      serial++;
      if (rand() < 0.35) {
        // A config tree: a few small files five to seven directories deep.
        const depth = 5 + Math.floor(rand() * 3);
        const segments = Array.from({ length: depth }, () => `${pick(vocab)}.d`);
        const at = join(root, 'etc', `app-${Math.floor(rand() * 50)}`, ...segments);
        mkdirs(at);
        const count = Math.min(left, 3 + Math.floor(rand() * 10));
        for (let f = 0; f < count; f++) {
          const name = `${pick(vocab)}-${serial}-${f}.conf`;
          write(
            join(at, name),
            Buffer.from(`# ${at}/${name}\n`),
            slice(conf, 100 + Math.floor(rand() * 2900)),
          );
        }
        left -= count;
        if (rand() < 0.2) {
          symlinkSync(`${pick(vocab)}-${serial}-0.conf`, join(at, `current-${serial}`));
          stats.symlinks++;
        }
      } else {
        // A source directory of a checkout: 10 to 60 files, a tenth of them copies of recent ones.
        const at = join(
          root,
          'src',
          `repo-${Math.floor(rand() * 20)}`,
          pick(vocab),
          pick(vocab),
          `m${serial % 97}`,
        );
        mkdirs(at);
        const count = Math.min(left, 10 + Math.floor(rand() * 51));
        for (let f = 0; f < count; f++) {
          const name = `${ident()}-${serial}-${f}.ts`;
          if (recent.length > 0 && rand() < 0.1) {
            const copy = pick(recent);
            write(join(at, name), copy.header, copy.body);
            continue;
          }
          // Mostly small (2 KiB on average), a few up to 32 KiB: a long-tailed size.
          const length = Math.floor(40 * Math.exp(6.7 * rand() ** 2));
          const content = { header: Buffer.from(`// ${at}/${name}\n`), body: slice(code, length) };
          write(join(at, name), content.header, content.body);
          if (recent.length < 64) recent.push(content);
          else recent[Math.floor(rand() * 64)] = content;
        }
        left -= count;
        if (rand() < 0.3) {
          symlinkSync(`${ident()}-missing.ts`, join(at, `dangling-${serial}`));
          symlinkSync('..', join(at, `up-${serial}`));
          stats.symlinks += 2;
        }
      }
    }
  }
  return stats;
}

/** Regular files below `dir` (a restore's check, outside any timing). */
async function countFiles(dir: string): Promise<number> {
  const { stdout } = await exec('bash', ['-c', `find "$1" -type f -printf . | wc -c`, 'count', dir], {
    maxBuffer: 1024,
  });
  return Number(stdout.trim());
}

async function run(): Promise<{ markdown: string; goals: Goal[] }> {
  const work = await mkdtemp(join(tmpdir(), 'strongbox-bench-files-'));
  try {
    const tree = join(work, 'tree');
    const filesPerPart = Math.ceil(files / PARTS);
    process.stdout.write(`writing a tree of ${filesPerPart * PARTS} files (seed ${seed})…\n`);
    const started = Date.now();
    const stats = generateTree(tree, filesPerPart, seed);
    process.stdout.write(
      `  ${stats.files} files, ${stats.symlinks} symlinks, ${stats.directories} directories, ${(stats.bytes / MiB).toFixed(0)} MiB in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
    await exec(process.execPath, [cli, 'keygen', join(work, 'master.key')]);
    const plan = join(work, 'plan.yaml');
    await writeFile(
      plan,
      [
        'version: 1',
        `vault: { url: "file://${join(work, 'vault')}" }`,
        'key: { type: local, path: master.key }',
        'jobs:',
        `  - name: tree\n    source: { kind: files, paths: ["${tree}"] }`,
        `  - name: tenth\n    source: { kind: files, paths: ["${join(tree, 'part-0')}"] }`,
      ].join('\n'),
    );
    const password = join(work, 'restic-password');
    await writeFile(password, 'bench-only password\n', { mode: 0o600 });
    const series = new StepSeries();
    const add = (name: string, r: Run, bytes?: number) => series.add(name, r, bytes);
    const restored = async (name: string, dir: string) => {
      const count = await countFiles(dir);
      if (count !== stats.files) {
        throw new Error(`${name} restored ${count} regular files into ${dir}, the tree has ${stats.files}`);
      }
      await rm(dir, { recursive: true, force: true });
    };
    for (let n = 1; n <= runs; n++) {
      process.stdout.write(`run ${n}/${runs}\n`);
      const backup = await measureAgent(['backup', '--plan', plan, '--job', 'tree']);
      add('strongbox backup → file vault', backup, Number(backup.json.storedBytes));
      const sbTarget = join(work, `restore-sb-${n}`);
      add(
        'strongbox restore ← file vault',
        await measureAgent(['restore', '--plan', plan, '--job', 'tree', '--target', sbTarget]),
      );
      await restored('strongbox restore', sbTarget);
      const tenth = await measureAgent(['backup', '--plan', plan, '--job', 'tenth']);
      add(`strongbox backup, ${filesPerPart} files (one part)`, tenth, Number(tenth.json.storedBytes));

      const archive = join(work, `tree-${n}.tar.zst`);
      const parentOf = `-C "${work}" tree`;
      add(
        'tar -cf - | zstd -1',
        await measureShell(`tar -cf - ${parentOf} | zstd -1 -q > "${archive}"`),
        (await stat(archive)).size,
      );
      const tarTarget = join(work, `restore-tar-${n}`);
      await mkdir(tarTarget);
      add(
        'zstd -dc | tar -xf -',
        await measureShell(`zstd -dc -q "${archive}" | tar -xf - -C "${tarTarget}"`),
      );
      await restored('tar', tarTarget);
      await rm(archive);

      const repo = join(work, `restic-${n}`);
      const resticEnv = {
        ...process.env,
        RESTIC_REPOSITORY: repo,
        RESTIC_PASSWORD_FILE: password,
        RESTIC_CACHE_DIR: join(work, 'restic-cache'),
      };
      await exec('restic', ['init', '-q'], { env: resticEnv });
      add(
        'restic backup (first)',
        await measure(['restic', 'backup', '-q', tree], resticEnv),
        await duBytes(repo),
      );
      const resticTarget = join(work, `restore-restic-${n}`);
      add(
        'restic restore',
        await measure(['restic', 'restore', 'latest', '-q', '--target', resticTarget], resticEnv),
      );
      await restored('restic restore', resticTarget);
      await rm(repo, { recursive: true, force: true });
    }
    const measures = series.medians();
    const get = (name: string) => measures.find((m) => m.name.startsWith(name)) as StepMeasure;
    const sbBackup = get('strongbox backup → file vault');
    const sbTenth = get('strongbox backup, ');
    const resticBackup = get('restic backup');
    const rssRatio = sbBackup.rssMiB / sbTenth.rssMiB;
    const goals: Goal[] = [
      {
        goal: 'files: strongbox first backup ≤ restic first backup (wall)',
        measured: `${sbBackup.seconds.toFixed(1)} s vs ${resticBackup.seconds.toFixed(1)} s (${(sbBackup.seconds / resticBackup.seconds).toFixed(2)}×)`,
        met: sbBackup.seconds <= resticBackup.seconds,
      },
      {
        goal: `files: backup peak RSS (its largest process: the agent or GNU tar) flat, ≤ ${FLAT_RSS}× from ${filesPerPart} to ${filesPerPart * PARTS} files`,
        measured: `${sbTenth.rssMiB.toFixed(0)} → ${sbBackup.rssMiB.toFixed(0)} MiB (${rssRatio.toFixed(2)}×)`,
        met: rssRatio <= FLAT_RSS,
      },
    ];
    const markdown = [
      '### A tree of small files (`files`)',
      '',
      `Tree: ${stats.files} files (${stats.mediaBytes ? `${(stats.mediaBytes / MiB).toFixed(0)} MiB of it incompressible media` : 'no media'}), ${stats.symlinks} symlinks, ${stats.directories} directories, ${(stats.bytes / MiB).toFixed(0)} MiB (seed ${seed}). ${machineLine(runs)} CPU = user + system seconds of the whole process tree; RSS = the largest single process.`,
      '',
      stepTable(measures),
    ].join('\n');
    return { markdown, goals };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const filesSuite: Suite = {
  name: 'files',
  summary: `a tree of small files vs tar | zstd and restic (BENCH_FILES=${files}, BENCH_RUNS=${runs})`,
  run,
};
