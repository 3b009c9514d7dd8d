/**
 * How the files source drives GNU tar: the arguments of an archive and an extraction, and how to read
 * what tar says while it archives — its verbose index (what was stored, for the manifest's counts) and
 * its diagnostics (which files changed, vanished or could not be read). GNU tar, not node-tar, because
 * it keeps what users restore for: xattrs, POSIX ACLs, sparse files, FIFOs and device nodes, sub-second
 * times (POSIX pax format), and it reports live files as warnings (exit 1) instead of failing.
 */

/** Options every archive is written with: pax format with xattrs, ACLs and sparse files. */
const CREATE_ARGS = [
  '--create',
  '--file=-',
  '--format=posix',
  '--xattrs',
  '--xattrs-include=*',
  '--acls',
  '--sparse',
  '--numeric-owner',
  '--directory=/',
  // Names come from our walk, NUL-separated, as raw bytes; tar must not recurse or unquote them.
  '--no-recursion',
  '--null',
  '--verbatim-files-from',
  '--files-from=-',
  // A file that vanished or cannot be read is reported and skipped (we classify it), not fatal.
  '--ignore-failed-read',
  // The verbose index (one line per stored entry) goes to stderr with the diagnostics, in order, names
  // quoted so that every entry is one line.
  '--verbose',
  '--verbose',
  '--quoting-style=escape',
];

/**
 * The arguments of `tar --create` for {@link CREATE_ARGS}: reads names on stdin, writes the archive to
 * stdout and its index and diagnostics to stderr. With `hardLinks`, a file met under a second name is
 * stored as a link to the first — for which GNU tar, given more than one name, remembers every file it
 * stores (~125 bytes each); without, every name is stored as a file of its own and nothing is
 * remembered (`--hard-dereference`).
 */
export function createArgs(options: { hardLinks: boolean }): string[] {
  return options.hardLinks ? [...CREATE_ARGS] : [...CREATE_ARGS, '--hard-dereference'];
}

/**
 * The arguments of an extraction into `dir`: metadata as archived (permissions exactly, numeric owners
 * when root, xattrs and ACLs), names with `..` or a leading `/` refused or stripped by tar itself.
 */
export function extractArgs(dir: string, options: { root: boolean; members?: readonly string[] }): string[] {
  return [
    '--extract',
    '--file=-',
    `--directory=${dir}`,
    '--xattrs',
    '--xattrs-include=*',
    '--acls',
    '--preserve-permissions',
    '--numeric-owner',
    options.root ? '--same-owner' : '--no-same-owner',
    '--warning=no-timestamp',
    ...(options.members?.length ? ['--wildcards', '--', ...options.members] : []),
  ];
}

/** One entry of tar's verbose index: its type letter (`-` file, `h` hard link, `d`, `l`, `p` …) and size. */
export interface IndexEntry {
  type: string;
  sizeBytes: number;
}

const INDEX_LINE =
  /^([-hlcbpdDCMSVN?])[-rwxsStT]{9}\S*\s+\S+\s+(\d+|\d+,\s*\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d /;

/** Parses a line of the verbose index, or undefined when the line is something else (a diagnostic). */
export function parseIndexLine(line: string): IndexEntry | undefined {
  const match = INDEX_LINE.exec(line);
  if (!match) return undefined;
  const size = match[2] as string;
  return { type: match[1] as string, sizeBytes: size.includes(',') ? 0 : Number(size) };
}

/** What a diagnostic of `tar --create` means for the backup. */
export type Diagnostic =
  | { kind: 'changed' | 'vanished' | 'unreadable'; path: string; message: string }
  | { kind: 'ignored' }
  | { kind: 'unknown'; line: string };

const DIAGNOSTICS: readonly { kind: 'changed' | 'vanished' | 'unreadable'; re: RegExp }[] = [
  { kind: 'changed', re: /^tar: (.+): (file changed as we read it)$/ },
  { kind: 'changed', re: /^tar: (.+): (File shrank by \d+ bytes?; padding with zeros)$/ },
  { kind: 'vanished', re: /^tar: (.+): (File removed before we read it)$/ },
  { kind: 'vanished', re: /^tar: (.+): (?:Warning: )?(Cannot [a-z ]+: No such file or directory)$/ },
  { kind: 'unreadable', re: /^tar: (.+): (?:Warning: )?(Cannot [a-z ]+: Permission denied)$/ },
];

const IGNORED = [/^tar: .+: socket ignored$/, /^tar: Exiting with failure status due to previous errors$/];

/**
 * Classifies one line tar wrote to stderr while archiving (index lines excluded). Paths are given
 * absolute, quoted as tar quotes them (non-printable bytes as `\ooo`).
 * @example classifyDiagnostic('tar: var/log/app.log: file changed as we read it')
 * // { kind: 'changed', path: '/var/log/app.log', message: 'file changed as we read it' }
 */
export function classifyDiagnostic(line: string): Diagnostic {
  for (const { kind, re } of DIAGNOSTICS) {
    const match = re.exec(line);
    if (match) {
      // `tar: NAME: Warning: Cannot …` (with --ignore-failed-read): the name ends before the warning.
      const name = (match[1] as string).replace(/: Warning$/, '');
      return {
        kind,
        path: name === '.' ? '/' : `/${name.replace(/^\.\//, '')}`,
        message: match[2] as string,
      };
    }
  }
  if (IGNORED.some((re) => re.test(line))) return { kind: 'ignored' };
  return { kind: 'unknown', line };
}
