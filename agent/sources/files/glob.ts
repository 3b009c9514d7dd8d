/**
 * Glob patterns for the files source's excludes. A small translation to RegExp rather than node:path's
 * `matchesGlob`, which Node 20 marks experimental and announces with a warning on stderr.
 */

/**
 * Translates a glob into an anchored RegExp: `*` matches within one path segment, `**` across segments
 * (`a/**\/b` also matches `a/b`), `?` one character other than `/`, `[abc]`, `[a-z]` and `[!abc]` one
 * character of (or not of) a set; everything else is literal.
 * @example globToRegExp('*.log').test('app.log') // true
 */
export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        const slash = pattern[i + 2] === '/';
        out += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else out += '[^/]*';
    } else if (ch === '?') {
      out += '[^/]';
    } else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else {
      out += ch.replace(/[.+^${}()|\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}

/**
 * A predicate that says whether an absolute path is excluded: a pattern excludes a path when it matches
 * the whole absolute path or the path's base name. `/var/cache/**` and `*.tmp` both work.
 * @example excluder(['*.log'])('/etc/app/debug.log') // true
 */
export function excluder(patterns: readonly string[]): (absolutePath: string) => boolean {
  const regexps = patterns.map(globToRegExp);
  return (absolutePath) => {
    const base = absolutePath.slice(absolutePath.lastIndexOf('/') + 1);
    return regexps.some((re) => re.test(absolutePath) || re.test(base));
  };
}
