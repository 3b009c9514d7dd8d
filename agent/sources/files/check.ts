/** The drill check of a restored files backup: the number and bytes of regular files against the manifest. */
import { lstat, opendir } from 'node:fs/promises';
import type { Finding } from '#core/checks';
import type { TargetCheck } from '#core/ports';
import type { FilesDetails } from '#core/sources/index';

/**
 * Checks a restored directory against the manifest: the number of regular files (every path, hard links
 * included) and their bytes (each file once, however many names it has) — one check, `file-count`.
 * Findings carry `job: ''` for the caller to fill in.
 * @example (await checkFiles(manifest.source, '/srv/restore/app-config'))[0].passed // true
 */
export async function checkFiles(details: FilesDetails, targetDir: string): Promise<TargetCheck[]> {
  const found = await countFiles(targetDir);
  const findings: Finding[] = [];
  if (found.fileCount !== details.fileCount) {
    findings.push({
      job: '',
      severity: 'critical',
      check: 'file-count',
      message: `${targetDir} holds ${found.fileCount} files, the backup recorded ${details.fileCount}`,
    });
  }
  if (found.fileBytes !== details.fileBytes) {
    findings.push({
      job: '',
      severity: 'critical',
      check: 'file-bytes',
      message: `${targetDir} holds ${found.fileBytes} bytes of files, the backup recorded ${details.fileBytes}`,
    });
  }
  const passed = findings.length === 0;
  const detail = passed
    ? `${found.fileCount} files, ${found.fileBytes} bytes, as the backup recorded`
    : findings.map((f) => f.message).join('; ');
  return [{ check: 'file-count', passed, detail, findings }];
}

/**
 * Regular files below a directory (symbolic links not followed): every path counts, bytes count once
 * per file (a file with several hard links is stored once). Memory: one entry per multiply-linked file.
 */
export async function countFiles(dir: string): Promise<{ fileCount: number; fileBytes: number }> {
  const total = { fileCount: 0, fileBytes: 0 };
  await countBelow(Buffer.from(dir), total, new Set<string>());
  return total;
}

/** Adds the regular files below `dir` (names as bytes, so any name counts) to `total`. */
async function countBelow(
  dir: Buffer,
  total: { fileCount: number; fileBytes: number },
  linked: Set<string>,
): Promise<void> {
  const handle = await opendir(dir, { encoding: 'buffer' as BufferEncoding });
  for await (const entry of handle) {
    const path = Buffer.concat([dir, Buffer.from('/'), entry.name as unknown as Buffer]);
    if (entry.isDirectory()) {
      await countBelow(path, total, linked);
      continue;
    }
    if (!entry.isFile()) continue;
    total.fileCount++;
    const stat = await lstat(path);
    if (stat.nlink > 1) {
      const id = `${stat.dev}:${stat.ino}`;
      if (linked.has(id)) continue;
      linked.add(id);
    }
    total.fileBytes += stat.size;
  }
}
