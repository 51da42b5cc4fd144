/**
 * traefik's provider constraints: which containers a provider keeps, by their labels, in a small
 * expression language: `Label(`name`, `value`)`, `LabelRegex(`name`, `regexp`)`, `&&`, `||`,
 * `!` and parentheses (`!` binds tightest, then `&&`, then `||`). A regexp is RE2's (linear
 * time) and matches anywhere in the value unless anchored, as Go's `regexp.MatchString` does. The expression is the operator's,
 * parsed once when the configuration loads.
 */

import { compilePattern, type Pattern } from "../net/pattern.ts";

/** Whether a container's labels satisfy the expression. */
export type Constraint = (labels: Record<string, string>) => boolean;

/** A constraint expression that does not parse: where, and why. */
export class ConstraintError extends Error {
  constructor(readonly at: number, message: string) {
    super(`at character ${at + 1}: ${message}`);
    this.name = "ConstraintError";
  }
}

type Token =
  | { kind: "name"; text: string; at: number }
  | { kind: "string"; text: string; at: number }
  | { kind: "op"; text: "(" | ")" | "," | "&&" | "||" | "!"; at: number }
  | { kind: "end"; at: number };

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "`" || c === '"') {
      const end = expr.indexOf(c, i + 1);
      if (end < 0) throw new ConstraintError(i, `a string opened with ${c} is not closed`);
      out.push({ kind: "string", text: expr.slice(i + 1, end), at: i });
      i = end + 1;
    } else if (expr.startsWith("&&", i) || expr.startsWith("||", i)) {
      out.push({ kind: "op", text: expr.slice(i, i + 2) as "&&" | "||", at: i });
      i += 2;
    } else if ("(),!".includes(c)) {
      out.push({ kind: "op", text: c as "(" | ")" | "," | "!", at: i });
      i++;
    } else if (/[A-Za-z]/.test(c)) {
      const m = expr.slice(i).match(/^[A-Za-z][A-Za-z0-9]*/)!;
      out.push({ kind: "name", text: m[0], at: i });
      i += m[0].length;
    } else {
      throw new ConstraintError(i, `unexpected ${JSON.stringify(c)}`);
    }
  }
  out.push({ kind: "end", at: expr.length });
  return out;
}

/** Parses `expr`; throws {@link ConstraintError} naming where it goes wrong. */
export function parseConstraint(expr: string): Constraint {
  const tokens = tokenize(expr);
  let pos = 0;
  const peek = () => tokens[pos];
  const isOp = (text: string) => {
    const t = peek();
    return t.kind === "op" && t.text === text;
  };
  const expect = (text: string) => {
    if (!isOp(text)) throw new ConstraintError(peek().at, `expected ${text}`);
    pos++;
  };
  // Nesting is bounded, so a hostile expression cannot exhaust the stack.
  let depth = 0;
  const or = (): Constraint => {
    if (++depth > 64) throw new ConstraintError(peek().at, "nested more than 64 deep");
    let left = and();
    while (isOp("||")) {
      pos++;
      const [a, b] = [left, and()];
      left = (l) => a(l) || b(l);
    }
    depth--;
    return left;
  };
  const and = (): Constraint => {
    let left = not();
    while (isOp("&&")) {
      pos++;
      const [a, b] = [left, not()];
      left = (l) => a(l) && b(l);
    }
    return left;
  };
  const not = (): Constraint => {
    if (isOp("!")) {
      pos++;
      const a = not();
      return (l) => !a(l);
    }
    if (isOp("(")) {
      pos++;
      const inner = or();
      expect(")");
      return inner;
    }
    return call();
  };
  const str = (): string => {
    const t = peek();
    if (t.kind !== "string") throw new ConstraintError(t.at, "expected a string in backquotes");
    pos++;
    return t.text;
  };
  const call = (): Constraint => {
    const t = peek();
    if (t.kind !== "name") {
      throw new ConstraintError(t.at, "expected Label(...) or LabelRegex(...)");
    }
    if (t.text !== "Label" && t.text !== "LabelRegex") {
      throw new ConstraintError(t.at, `unknown function ${t.text} (Label and LabelRegex are)`);
    }
    pos++;
    expect("(");
    const name = str();
    expect(",");
    const valueAt = peek().at;
    const value = str();
    expect(")");
    // A label a container lacks reads as empty, as in traefik.
    if (t.text === "Label") return (l) => (l[name] ?? "") === value;
    let re: Pattern;
    try {
      re = compilePattern(value);
    } catch (error) {
      throw new ConstraintError(valueAt, `not a regexp: ${(error as Error).message}`);
    }
    return (l) => re.test(l[name] ?? "");
  };
  const result = or();
  if (peek().kind !== "end") throw new ConstraintError(peek().at, "unexpected text after the end");
  return result;
}
