/** Problems with a configuration: what is wrong, where, and what was probably meant. */

/** One thing wrong (or worth saying) about a configuration, with where it is. */
export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  /** The key path, `tcp.services.app.loadBalancer.servers[1].address`; "" for the file. */
  path: string;
  message: string;
  /** For a value from a store: its key (`l4p/tcp/services/app/…`), which locates it instead. */
  key?: string;
}

/** The configuration could not be used; `problems` says every reason. */
export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
  }
}

/** `file:line:column: path: message`, or `key: message` for a value from a store. */
export function formatProblem(p: ConfigProblem): string {
  if (p.key) return `${p.key}: ${p.message}`;
  // No line: the file as a whole (it cannot be read, say).
  if (p.line === 0) return `${p.file}: ${p.path ? `${p.path}: ` : ""}${p.message}`;
  return `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`;
}

/** Problems in reading order: by line, then column. */
export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The closest allowed key, if close enough to be a typo. */
export function didYouMean(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
