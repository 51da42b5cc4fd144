/**
 * Regular expressions from configuration, matched in linear time (RE2), wherever a pattern meets
 * text l4p does not choose: a client's SNI or Host, a container's labels.
 */
import { RE2JS } from "re2js";

/**
 * A regular expression in RE2's syntax (Go's, which traefik uses), matched in linear time: a
 * pattern is the operator's, the text it meets is a client's, and a backtracking engine lets one
 * ClientHello hold the event loop for seconds.
 */
export interface Pattern {
  readonly source: string;
  /** Whether the pattern matches anywhere in `text` (Go's MatchString). */
  test(text: string): boolean;
}

/** Compiles `source` as RE2 does; throws with RE2's reason when it refuses it. */
export function compilePattern(source: string): Pattern {
  const re = RE2JS.compile(source);
  return { source, test: (text) => re.matcher(text).find() };
}
